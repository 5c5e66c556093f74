/**
 * Optional disk persistence of closed segments and init segments:
 * {dir}/{stream}/{rendition}/{msn}.m4s plus {msn}.json (metadata, written
 * after the data, so a segment without its .json is ignored on load).
 * Every file is written to a temp name, fsynced, then renamed, so a crash
 * never leaves a torn object under a real name.
 *
 * Writes go through one bounded queue (`queueMax`); when it is full the
 * write is dropped and counted — serving from memory never waits for disk.
 * Retention: `retainSegments` per rendition (older files are deleted).
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../../common/log.ts";
import { describeSegment, type SegmentMeta, segmentFromMeta } from "./segment-meta.ts";
import type { StoredInit, StoredSegment } from "./timeline.ts";

/** On disk, the shared segment description plus when it first became available. */
interface SegmentMetaFile extends SegmentMeta {
  availableAtMs: number;
}

export interface DiskStoreOptions {
  dir: string;
  retainSegments: number;
  queueMax: number;
  logger: Logger;
}

export class DiskStore {
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  dropped = 0;
  written = 0;
  failed = 0;

  constructor(private readonly opts: DiskStoreOptions) {}

  private dirOf(streamId: string, renditionId: string): string {
    return join(this.opts.dir, streamId, renditionId);
  }

  private enqueue(what: string, job: () => Promise<void>): void {
    if (this.queued >= this.opts.queueMax) {
      this.dropped++;
      this.opts.logger.warn("disk queue full; not persisting", {
        what,
        queueMax: this.opts.queueMax,
      });
      return;
    }
    this.queued++;
    this.queue = this.queue
      .then(job)
      .then(
        () => {
          this.written++;
        },
        (err: unknown) => {
          this.failed++;
          this.opts.logger.error("disk write failed", { what, err });
        },
      )
      .finally(() => {
        this.queued--;
      });
  }

  /** Resolves when every queued write has finished (tests, shutdown). */
  flush(): Promise<void> {
    return this.queue;
  }

  writeInit(streamId: string, renditionId: string, init: StoredInit): void {
    const dir = this.dirOf(streamId, renditionId);
    this.enqueue(`${streamId}/${renditionId}/init.mp4`, async () => {
      await mkdir(dir, { recursive: true });
      await atomicWrite(join(dir, "init.mp4"), init.bytes);
    });
  }

  writeSegment(streamId: string, renditionId: string, seg: StoredSegment): void {
    const dir = this.dirOf(streamId, renditionId);
    this.enqueue(`${streamId}/${renditionId}/${seg.msn}.m4s`, async () => {
      await mkdir(dir, { recursive: true });
      const meta: SegmentMetaFile = { ...describeSegment(seg), availableAtMs: seg.availableAtMs };
      await atomicWrite(join(dir, `${seg.msn}.m4s`), seg.bytes);
      await atomicWrite(join(dir, `${seg.msn}.json`), Buffer.from(JSON.stringify(meta)));
      const old = seg.msn - this.opts.retainSegments;
      if (old >= 0) {
        await rm(join(dir, `${old}.json`), { force: true });
        await rm(join(dir, `${old}.m4s`), { force: true });
      }
    });
  }

  async readSegment(
    streamId: string,
    renditionId: string,
    msn: number,
  ): Promise<StoredSegment | undefined> {
    const dir = this.dirOf(streamId, renditionId);
    let meta: SegmentMetaFile;
    let bytes: Buffer;
    try {
      meta = JSON.parse(await readFile(join(dir, `${msn}.json`), "utf8")) as SegmentMetaFile;
      bytes = await readFile(join(dir, `${msn}.m4s`));
    } catch {
      return undefined;
    }
    return segmentFromMeta(meta, bytes, meta.availableAtMs);
  }

  async readInit(streamId: string, renditionId: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.dirOf(streamId, renditionId), "init.mp4"));
    } catch {
      return undefined;
    }
  }

  /** The newest `count` contiguous segments on disk, ascending (restart recovery). */
  async loadWindow(streamId: string, renditionId: string, count: number): Promise<StoredSegment[]> {
    let names: string[];
    try {
      names = await readdir(this.dirOf(streamId, renditionId));
    } catch {
      return [];
    }
    const msns = names
      .map((n) => /^(\d+)\.json$/.exec(n)?.[1])
      .filter((m): m is string => m !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
    const out: StoredSegment[] = [];
    for (const msn of msns) {
      if (out.length >= count) break;
      if (out.length > 0 && out[0]!.msn !== msn + 1) break;
      const seg = await this.readSegment(streamId, renditionId, msn);
      if (!seg) break;
      out.unshift(seg);
    }
    return out;
  }

  async removeRendition(streamId: string, renditionId: string): Promise<void> {
    await this.queue;
    await rm(this.dirOf(streamId, renditionId), { recursive: true, force: true });
  }
}

async function atomicWrite(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString("hex")}`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
