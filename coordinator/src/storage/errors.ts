/**
 * Storage failures that stop a coordinator node. Both are fatal by design: a
 * node that guesses past damaged or unsynced state can forget a vote or a
 * committed entry, which breaks Raft's safety for the whole cluster.
 */

/**
 * The data directory holds damage that is not a torn tail: opening refuses
 * rather than drop entries that may have been acknowledged. `file` and
 * `offset` (bytes from the start of the file) locate the first damage.
 */
export class StorageCorruptionError extends Error {
  override readonly name = "StorageCorruptionError";
  readonly code = "STORAGE_CORRUPTION";

  constructor(
    readonly file: string,
    readonly offset: number | undefined,
    readonly detail: string,
  ) {
    const where = offset === undefined ? file : `${file} at byte offset ${offset}`;
    super(
      `storage corruption in ${where}: ${detail}; the node refuses to start because continuing could ` +
        "lose acknowledged Raft state (replace this member: RemoveMember it, discard its data directory " +
        "and join a node with a new id, which catches up from its peers; `understudy coordinator " +
        "--check-data` lists what is damaged)",
    );
  }
}

/**
 * A write, fsync or file operation failed while the log was open. The log
 * stops accepting saves (an fsync failure may have dropped dirty pages, so a
 * retry could report durability that does not exist); the node must restart
 * and recover from what is on disk.
 */
export class StorageFailedError extends Error {
  override readonly name = "StorageFailedError";
  readonly code = "STORAGE_FAILED";

  constructor(message: string, options?: { cause?: unknown }) {
    super(`${message}; the durable log accepts no more writes and the node must restart`, options);
  }
}
