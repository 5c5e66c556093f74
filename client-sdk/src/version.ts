/** Sent as ClientReport.sdk_version. Keep in step with package.json. */
export const sdkVersion = "understudy-client-sdk/0.1.0";
