/**
 * Fencing (see proto/understudy/packager/v1/packager.proto): the highest
 * coordinator term seen, and per stream the highest epoch. A command or an
 * ingest with a lower value is refused naming both values; an equal value is
 * a retry. With a data dir the values are persisted (temp + fsync + rename)
 * so a restart does not reopen the fence.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { failedPrecondition } from "../../../common/errors.ts";

interface FenceFile {
  term: number;
  epochs: Record<string, number>;
}

export class Fence {
  private term = 0;
  private readonly epochs = new Map<string, number>();
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly file?: string) {}

  async load(): Promise<void> {
    if (!this.file) return;
    let parsed: FenceFile;
    try {
      parsed = JSON.parse(await readFile(this.file, "utf8")) as FenceFile;
    } catch {
      return;
    }
    this.term = Math.max(this.term, parsed.term ?? 0);
    for (const [k, v] of Object.entries(parsed.epochs ?? {}))
      this.epochs.set(k, Math.max(v, this.epochs.get(k) ?? 0));
  }

  highestTerm(): number {
    return this.term;
  }

  epochOf(streamId: string): number {
    return this.epochs.get(streamId) ?? 0;
  }

  /** Throws FAILED_PRECONDITION when `term` is older than the highest seen. */
  checkTerm(term: number): void {
    if (term < this.term) {
      throw failedPrecondition(
        `stale coordinator term ${term} < ${this.term} (highest seen by this node)`,
      );
    }
  }

  /** Throws FAILED_PRECONDITION when `epoch` is older than the highest seen for the stream. */
  checkEpoch(streamId: string, epoch: number): void {
    const highest = this.epochOf(streamId);
    if (epoch < highest) {
      throw failedPrecondition(
        `stale epoch ${epoch} < ${highest} for stream "${streamId}" (highest seen by this node)`,
      );
    }
  }

  /** Raises the remembered values after a command took effect; persists when they grew. */
  observe(term: number, streamId: string | undefined, epoch: number): Promise<void> {
    let grew = false;
    if (term > this.term) {
      this.term = term;
      grew = true;
    }
    if (streamId !== undefined && epoch > this.epochOf(streamId)) {
      this.epochs.set(streamId, epoch);
      grew = true;
    }
    if (grew && this.file)
      this.saving = this.saving.then(() => this.save()).catch(() => this.save());
    return this.saving;
  }

  private async save(): Promise<void> {
    const file = this.file!;
    const data: FenceFile = { term: this.term, epochs: Object.fromEntries(this.epochs) };
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${randomBytes(6).toString("hex")}`;
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(JSON.stringify(data));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }
}
