/** Shared fixtures for the storage tests: temp data dirs, entries, a capturing logger. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../../common/log.ts";
import type { Entry } from "../../../coordinator/src/raft/log-types.ts";

export async function makeTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "understudy-storage-"));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

const enc = new TextEncoder();

/** Entry `index` with a payload derived from it, so content can be checked after recovery. */
export function entry(index: number, term = 1, tag = "e"): Entry {
  return { index, term, type: "normal", data: enc.encode(`${tag}${index}@${term}`) };
}

export function entries(from: number, to: number, term = 1, tag = "e"): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, tag));
  return out;
}

export function text(data: Uint8Array): string {
  return new TextDecoder().decode(data);
}

export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

export function captureLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const make = (base: Record<string, unknown>): Logger => {
    const put = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
      lines.push({ level, msg, fields: { ...base, ...fields } });
    };
    return {
      debug: put("debug"),
      info: put("info"),
      warn: put("warn"),
      error: put("error"),
      child: (f) => make({ ...base, ...f }),
    };
  };
  return Object.assign(make({}), { lines });
}
