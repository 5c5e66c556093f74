/** Agent ingest on the leader: AgentService streams, metric windows, downsampled history files. */
export {
  AGENT_MESSAGE_OVERHEAD_BYTES,
  type AgentIngest,
  type AgentIngestLimits,
  type AgentIngestOptions,
  type AgentStreamView,
  agentIngestReadMaxBytes,
  createAgentIngest,
  defaultAgentIngestLimits,
  type IngestedReport,
  type IngestSample,
  type IngestStats,
} from "./agent-ingest.ts";
export { type ComponentCluster, type ComponentTable, notLeaderMessage } from "./cluster.ts";
export {
  createHistoryWriter,
  defaultHistoryFileLimits,
  type HistoryFileLimits,
  type HistoryReadStats,
  type HistoryWriter,
  type HistoryWriterStats,
  readHistory,
} from "./history-files.ts";
export {
  type BucketStats,
  type ComponentSeries,
  componentBytesMax,
  createComponentSeries,
  defaultSeriesStoreLimits,
  type HistoryRecord,
  type HistorySeriesRecord,
  type MemoryAccount,
  type QueriedSeries,
  type QueryResult,
  type RawWindow,
  type SampleLabels,
  type SeriesPoint,
  type SeriesQuery,
  type SeriesStoreLimits,
  type SeriesView,
  seriesKey,
} from "./series-store.ts";
export {
  ID_PATTERN,
  isKnownRole,
  METRIC_NAME_PATTERN,
  type RejectReason,
  rejectReasons,
} from "./validate.ts";
export {
  type AgentMessageFrame,
  agentMessageFrameSchema,
  agentServiceFrames,
  type DecodedBody,
  decodeAgentFrame,
  type IngestProbe,
  type IngestReport,
} from "./wire.ts";
