/**
 * @understudy/client-sdk — browser-compatible core. Entry points that also
 * bring a NATS transport: "@understudy/client-sdk/node" (nats over TCP) and
 * "@understudy/client-sdk/browser" (nats.ws over WebSocket). This module
 * imports no node:* module and no NATS client.
 */
export { type BackoffOptions, backoffDelayMs, percentile } from "./async.ts";
export { type BandwidthEstimator, createBandwidthEstimator } from "./bandwidth.ts";
export {
  type BusStatus,
  type BusSubscription,
  createMemoryNoticeBus,
  type MemoryNoticeBus,
  type NoticeBus,
} from "./bus.ts";
export {
  type ChainEvent,
  type ClientStats,
  type ConnectionEvent,
  type ConnectionStatus,
  chainSubject,
  createUnderstudyClient,
  type EventStreamOptions,
  type HandoverEvent,
  handoverSubject,
  type NoticeTransport,
  type NoticeVia,
  streamIdPattern,
  type UnderstudyClient,
  type UnderstudyClientOptions,
  type UnderstudyEvent,
} from "./client.ts";
export { type Clock, systemClock } from "./clock.ts";
export { type CmcdData, type CmcdObjectType, encodeCmcd, withCmcdQuery } from "./cmcd.ts";
export {
  type CoordinatorPool,
  type CoordinatorPoolOptions,
  createCoordinatorPool,
  leaderHeader,
  leaderUrlFromError,
} from "./coordinator.ts";
export {
  type ChainGraph,
  type ChainNode,
  ChainNodeStage,
} from "./gen/understudy/api/v1/chain_service_pb.ts";
export { HandoverReason, HandoverState } from "./gen/understudy/common/v1/handover_pb.ts";
export {
  type ChainUpdateNotice,
  ChainUpdateNoticeSchema,
  type HandoverNotice,
  HandoverNoticeSchema,
  type OriginRef,
} from "./gen/understudy/notice/v1/notice_pb.ts";
export {
  findSegment,
  isMultivariant,
  type MediaPlaylist,
  type MediaSegment,
  type MultivariantPlaylist,
  nextMsn,
  type Part,
  type Playlist,
  PlaylistParseError,
  parseAttributes,
  parseMediaPlaylist,
  parseMultivariantPlaylist,
  parsePlaylist,
  type Variant,
} from "./m3u8.ts";
export {
  createNatsNoticeBus,
  type NatsBusOptions,
  type NatsConnectionLike,
  type NatsNoticeBus,
  natsNoticeBusFromConnection,
} from "./nats-bus.ts";
export { emptyPlatformProbe, type PlatformInfo, type PlatformProbe } from "./platform.ts";
export {
  createPlaybackBuffer,
  type PlaybackBuffer,
  type PlaybackSnapshot,
  type PlaybackState,
} from "./playback-buffer.ts";
export {
  createPlayerSession,
  type PlayerEvent,
  type PlayerSession,
  type PlayerSessionOptions,
  type PlayerStats,
  type SwitchRecord,
  splitOriginUrl,
} from "./player.ts";
export { type BoundedQueue, createBoundedQueue } from "./queue.ts";
export {
  buildClientReport,
  type ClientReporter,
  type ClientReporterOptions,
  createClientReporter,
  type ReporterStats,
} from "./reporter.ts";
export { sdkVersion } from "./version.ts";
export {
  runViewers,
  type ViewerRecord,
  type ViewerSwitch,
  type ViewersOptions,
  type ViewersReport,
  viewersCountMax,
} from "./viewers.ts";
