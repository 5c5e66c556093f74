/**
 * Bearer-token auth of the control port (PackagerService), from the config's
 * `controlAuth` (common/rpc-auth.ts). The coordinators send a token with role
 * coordinator (their packagerControl.tokenFile); reader may only look.
 */
import type { Interceptor } from "@connectrpc/connect";
import type { Clock } from "../../../common/clock.ts";
import type { Logger } from "../../../common/log.ts";
import {
  type AuthPolicy,
  createAuthInterceptor,
  createAuthPolicy,
  createTokenSet,
  serviceRules,
  standardServiceRules,
} from "../../../common/rpc-auth.ts";
import { PackagerService } from "../../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { type PackagerConfig, packagerControlRoles } from "../config.ts";

/** Who may call the control port: coordinator tokens drive it; reader may look. */
export const controlPolicy: AuthPolicy = createAuthPolicy([
  serviceRules(PackagerService, {
    assign: ["coordinator"],
    unassign: ["coordinator"],
    replicate: ["coordinator"],
    inventory: ["coordinator", "reader"],
    drain: ["coordinator"],
    getStatus: ["coordinator", "reader"],
    setHandoverHint: ["coordinator"],
    clearHandoverHint: ["coordinator"],
  }),
  ...standardServiceRules(["coordinator", "reader"]),
]);

/** The control port's auth from `controlAuth` (none, with a warning, when it is absent). */
export function controlAuthInterceptors(
  config: PackagerConfig,
  logger: Logger,
  clock?: Clock,
): Interceptor[] {
  const log = logger.child({ part: "auth" });
  if (!config.controlAuth) {
    log.warn(
      "the control port is unauthenticated: anyone who reaches it can assign, drain and replicate streams; set controlAuth.tokens (packager-node/README.md)",
      { control: config.control },
    );
    return [];
  }
  const tokens = createTokenSet({
    entries: config.controlAuth.tokens,
    ...(config.controlAuth.tokensFile ? { file: config.controlAuth.tokensFile } : {}),
    roles: packagerControlRoles,
    log,
    ...(clock ? { clock } : {}),
  });
  return [
    createAuthInterceptor({
      tokens,
      policy: controlPolicy,
      log,
      listener: "control",
      configHint: "controlAuth.tokens",
      ...(clock ? { clock } : {}),
    }),
  ];
}
