/**
 * The few file operations the durable log needs, each with the fsync that
 * makes it durable, counted so operators (and tests) can see how many syncs
 * the log really issues. Linux semantics are assumed: fsync on a directory
 * file descriptor makes creations, renames and deletions in it durable.
 */
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";

export interface DiskStats {
  /** fdatasync calls on WAL segments after appending a batch (one per group commit). */
  walFsyncs: number;
  /** fsync calls on new files (segment preambles, snapshot files) before they are renamed into place. */
  fileFsyncs: number;
  /** fsync calls on directories after creating, renaming or deleting files. */
  dirFsyncs: number;
  /** write calls appending batches to WAL segments. */
  walWrites: number;
  walBytesWritten: number;
}

/** Test seams for fault injection; production passes none. */
export interface DiskHooks {
  /** Runs before every WAL fdatasync; throwing simulates an fsync failure, awaiting delays it. */
  beforeWalFsync?: (segmentPath: string) => void | Promise<void>;
}

export class Disk {
  readonly stats: DiskStats = {
    walFsyncs: 0,
    fileFsyncs: 0,
    dirFsyncs: 0,
    walWrites: 0,
    walBytesWritten: 0,
  };

  constructor(private readonly hooks: DiskHooks = {}) {}

  /** Writes all of `buf` at `position` (a pwrite loop: short writes are legal). */
  async writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes`);
      done += bytesWritten;
    }
  }

  async appendWal(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
    await this.writeAll(fh, buf, position);
    this.stats.walWrites++;
    this.stats.walBytesWritten += buf.length;
  }

  /**
   * fdatasync is enough for appends: it also flushes the file size, which is
   * the metadata needed to read the data back; timestamps need not be durable.
   */
  async syncWal(fh: FileHandle, path: string): Promise<void> {
    await this.hooks.beforeWalFsync?.(path);
    await fh.datasync();
    this.stats.walFsyncs++;
  }

  async syncFile(fh: FileHandle): Promise<void> {
    await fh.sync();
    this.stats.fileFsyncs++;
  }

  async syncDir(dir: string): Promise<void> {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
      this.stats.dirFsyncs++;
    } finally {
      await fh.close();
    }
  }

  /**
   * Creates `path` with exactly `content` so that after a crash it either does
   * not exist or is complete: write `<path>.tmp`, fsync, rename, fsync the
   * directory. When `keepOpen` is set the handle (positioned after the
   * content) is returned for further appends; otherwise it is closed.
   */
  async createFileAtomic(path: string, content: Uint8Array, keepOpen: true): Promise<FileHandle>;
  async createFileAtomic(path: string, content: Uint8Array, keepOpen?: false): Promise<undefined>;
  async createFileAtomic(
    path: string,
    content: Uint8Array,
    keepOpen = false,
  ): Promise<FileHandle | undefined> {
    const tmp = `${path}${TEMP_SUFFIX}`;
    const fh = await open(tmp, "w+");
    try {
      await this.writeAll(fh, content, 0);
      await this.syncFile(fh);
      await rename(tmp, path);
      await this.syncDir(dirname(path));
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
    if (keepOpen) return fh;
    await fh.close();
    return undefined;
  }
}

/** Suffix of files being created; any left at open are remains of a crash and are deleted. */
export const TEMP_SUFFIX = ".tmp";
