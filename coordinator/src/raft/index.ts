/**
 * Public surface of the pure Raft core. Everything a driver, transport or
 * storage needs is exported here; nothing else in this folder is API.
 */
export type { ConfChange, ConfChangeType } from "./conf-change.ts";
export {
  bootstrapState,
  checkConfChange,
  decodeConfChange,
  encodeConfChange,
  nextConfState,
} from "./conf-change.ts";
export type {
  ConfState,
  Entry,
  EntryType,
  HardState,
  NodeId,
  RecoveredState,
  Snapshot,
  SnapshotMetadata,
} from "./log-types.ts";
export {
  emptyConfState,
  emptyHardState,
  emptyRecoveredState,
  emptySnapshot,
} from "./log-types.ts";
export type {
  AppendEntries,
  AppendEntriesResponse,
  InstallSnapshot,
  InstallSnapshotResponse,
  RaftMessage,
  RaftMessageKind,
  ReadIndex,
  ReadIndexResponse,
  RequestVote,
  RequestVoteResponse,
  TimeoutNow,
} from "./messages.ts";
export type { ProgressState } from "./progress.ts";
export type {
  Failure,
  ProposeError,
  ProposeResult,
  RaftConfig,
  ReadIndexResult,
  ReadState,
  Role,
  TestingBugs,
  TransferResult,
} from "./raft.ts";
export type {
  BasicStatus,
  ProgressStatus,
  RawNode,
  Ready,
  SoftState,
  Status,
} from "./raw-node.ts";
export { createRawNode } from "./raw-node.ts";
export type { InitialState, LogStorage, MemoryStorage } from "./storage.ts";
export { createMemoryStorage, entrySizeBytes } from "./storage.ts";
