/**
 * What the device can tell about itself, for client reports. Each entry
 * point supplies a probe: the browser one reads performance.memory, screen
 * size and MediaSource.isTypeSupported; the Node one reads process CPU and
 * memory. Everything is optional: unknown stays absent (0 on the wire).
 */
export interface PlatformInfo {
  /** Device CPU load in [0, 1]. */
  cpuLoadRatio?: number;
  /** Memory used by the player/process, bytes. */
  memoryUsedBytes?: number;
  /** Screen size in device pixels. */
  screenWidth?: number;
  screenHeight?: number;
  /** RFC 6381 codec strings the device can decode. */
  decodableCodecs?: readonly string[];
}

export interface PlatformProbe {
  sample(): PlatformInfo;
}

export const emptyPlatformProbe: PlatformProbe = { sample: () => ({}) };

/** Codecs a browser probe asks MediaSource about (a short, common list). */
export const probedCodecs: readonly string[] = [
  "avc1.42e01e",
  "avc1.4d401f",
  "avc1.640028",
  "hvc1.1.6.L93.B0",
  "av01.0.05M.08",
  "vp09.00.10.08",
  "mp4a.40.2",
  "ec-3",
  "opus",
];
