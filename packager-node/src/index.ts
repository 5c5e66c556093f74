/**
 * packager-node public surface. Other components import only from here.
 */
export type { CmcdData, CmcdParseResult } from "./cmcd/cmcd.ts";
export { cmcdFromRequest, parseCmcd } from "./cmcd/cmcd.ts";
export type { CmsdDynamic, CmsdStatic } from "./cmcd/cmsd.ts";
export { formatCmsdDynamic, formatCmsdStatic } from "./cmcd/cmsd.ts";
export type { HandoverHint, HandoverHints } from "./cmcd/handover-hint.ts";
export { HANDOVER_HINT_KEYS } from "./cmcd/handover-hint.ts";
export type { DemandRow } from "./cmcd/sessions.ts";
export type { EdgeConfig, PackagerConfig, RenditionConfig, StreamConfig } from "./config.ts";
export { loadPackagerConfig, packagerConfigSchema, parsePackagerConfig } from "./config.ts";
export type { PackagerServiceOptions } from "./control/packager-service.ts";
export {
  createPackagerServiceImpl,
  startPackagerControl,
  streamDefFromSpec,
} from "./control/packager-service.ts";
export type { ReplicaInventory } from "./http/node-routes.ts";
export type { CmsdHintProvider } from "./http/origin-playback.ts";
export { main } from "./main.ts";
export type { PackagerNode, PackagerNodeDeps, PackagerNodeUrls, StatusReport } from "./node.ts";
export { createPackagerNode, streamDefFromConfig } from "./node.ts";
export { writeDashMpd } from "./playlist/dash-mpd.ts";
export { writeMediaPlaylist } from "./playlist/hls-media.ts";
export { writeMultivariantPlaylist } from "./playlist/hls-multivariant.ts";
export type {
  LatencyMode,
  MediaPlaylistInput,
  MultivariantInput,
  RenditionInfo,
  SegmentView,
  SteeringInfo,
} from "./playlist/model.ts";
export type { StreamDef } from "./store/media-store.ts";
