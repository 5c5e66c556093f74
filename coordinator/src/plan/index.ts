/**
 * Pure planners for the live data plane: packager assignments, shard maps,
 * segment granularity, and the FSM commands that apply their diffs. No I/O,
 * no clock, no randomness: the leader passes state and run-time facts in and
 * proposes the commands that come out.
 */
export {
  type AssignmentInput,
  type AssignmentOptions,
  type AssignmentPlan,
  type AssignmentWeights,
  balancePoints,
  compareCost,
  defaultAssignmentOptions,
  type PackagerInput,
  type PackagerLoad,
  type PlanCost,
  planAssignments,
  type RenditionInput,
  type RenditionPlan,
  type StreamAssignmentPlan,
  type StreamInput,
  statusMessageCharsMax,
  validateAssignmentOptions,
  validateStreamInput,
} from "./assignment-planner.ts";
export {
  applyAssignmentPlan,
  assignmentRowsPerRenditionMax,
  openRows,
  sameAssignmentRows,
} from "./assignment-rows.ts";
export {
  assignmentsCommand,
  type PlanDiff,
  type PlannedCommand,
  segmentScheduleCommand,
  shardMapCommand,
  streamCommands,
} from "./commands.ts";
export {
  defaultRoundOptions,
  firstUnreceivedShard,
  type NewestMedia,
  planRound,
  type RoundInput,
  type RoundOptions,
  type RoundPlan,
  type RoundStream,
  roundInputFromFsm,
  type StreamRoundPlan,
  type StreamRuntime,
} from "./plan-round.ts";
export {
  assignmentRowsFromProto,
  assignmentRowsToProto,
  encodersFromComponents,
  packagersFromComponents,
  placementFromSpec,
  segmentPolicyFromSpec,
  shardRangesFromProto,
  shardRangesToProto,
  streamInputFromProto,
} from "./proto-adapter.ts";
export {
  defaultGranularityOptions,
  desiredLevel,
  entryAtShard,
  entryOfMsn,
  firstShardOfMsn,
  firstShardOfMsnIn,
  type GranularityDecision,
  type GranularityInput,
  type GranularityLevel,
  type GranularityOptions,
  granularityLevels,
  msnOfShard,
  msnOfShardIn,
  planSegmentDuration,
  type SegmentPolicyInput,
  type SegmentSchedule,
  type SegmentScheduleList,
  scheduleChangeProblem,
  segmentUnitMs,
  validateGranularityOptions,
} from "./segment-granularity.ts";
export {
  defaultShardOptions,
  type EncoderInput,
  planShardMaps,
  type ShardOptions,
  type ShardPlan,
  type ShardPlanInput,
  type ShardStreamInput,
  type StreamShardPlan,
  sameRanges,
  validateShardOptions,
  validateShardRanges,
} from "./shard-planner.ts";
export { type ScoredStandby, type StandbyInput, scoreStandbys } from "./standby.ts";
export {
  type AssignmentRow,
  anywhere,
  type Holders,
  isPlaceable,
  type PlacementPolicy,
  type ShardRangeRow,
} from "./types.ts";
