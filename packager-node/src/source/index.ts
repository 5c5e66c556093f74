/** Public surface of the encoder-pool live source (`understudy source`). */
export {
  loadSourceConfig,
  resolveSourceConfig,
  type SourceConfig,
  type SourceFileConfig,
  sourceConfigSchema,
} from "./config.ts";
export {
  defaultFixtureDir,
  describeFixture,
  describeRendition,
  type Fixture,
  FixtureError,
  type FixtureManifest,
  type FixturePart,
  type FixturePartManifest,
  type FixtureRendition,
  type FixtureRenditionManifest,
  type FixtureTrackManifest,
  loadFixture,
  type RenditionInput,
  sha256Hex,
} from "./fixture.ts";
export { main } from "./main.ts";
export {
  classifyReply,
  createHttpClient,
  defaultPushLimits,
  type HttpSend,
  type PushLimits,
  type TargetStatus,
} from "./pusher.ts";
export {
  createManualScheduler,
  type ManualScheduler,
  type Scheduler,
  systemScheduler,
  type TimerHandle,
} from "./scheduler.ts";
export {
  type Assignment,
  parseShardMap,
  rangeOf,
  type ShardMap,
  type ShardRange,
  type StaticPool,
  shardMapSchema,
  targetsFor,
} from "./shard-map.ts";
export {
  createSource,
  type LiveSource,
  type SegmentPush,
  type SourceOptions,
  type SourceStatus,
} from "./source.ts";
export { type StatusServer, startStatusServer } from "./status-server.ts";
export {
  buildSegment,
  buildShard,
  firstShardOf,
  partsInSegment,
  type ScheduleEntry,
  type ShardPosition,
  segmentDurationMs,
  sequenceNumberOf,
  shardAt,
  shardPosition,
  type Timeline,
  timelineOf,
} from "./timeline.ts";
