/**
 * Durable storage for a coordinator node: a segmented, checksummed
 * write-ahead log with group commit, plus snapshot files. The Raft driver
 * opens it at start, feeds `recovered` to the core, and calls `save` with each
 * Ready's hard state and entries before sending the Ready's messages.
 */
export { crc32c, crc32cUpdate } from "./crc32c.ts";
export type { DiskHooks, DiskStats } from "./disk.ts";
export type {
  CompactResult,
  DurableLog,
  DurableLogOptions,
  DurableLogStats,
  OpenedDurableLog,
  SaveRequest,
} from "./durable-log.ts";
export { openDurableLog } from "./durable-log.ts";
export { StorageCorruptionError, StorageFailedError } from "./errors.ts";
export type { DurableLogInspection } from "./inspect.ts";
export { formatInspection, inspectDurableLog } from "./inspect.ts";
