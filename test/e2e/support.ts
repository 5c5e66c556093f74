/**
 * Shared pieces of the end-to-end tests: real `understudy packager` and
 * `understudy source` processes under deploy/local-cluster's supervisor, in a
 * temp run directory (configs and logs) that is removed afterwards unless
 * UNDERSTUDY_E2E_KEEP=1.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep, waitUntil } from "../../deploy/local-cluster/cluster.ts";
import {
  createSupervisor,
  freePorts,
  type RoleProcess,
  type Supervisor,
} from "../../deploy/local-cluster/supervisor.ts";

export { freePorts, sleep, waitUntil };

/** The committed fixture's ladder (packager-node/fixtures/README.md), as packager stream config. */
export const fixtureRenditions = [
  {
    id: "360p",
    bandwidth: 709684,
    averageBandwidth: 690891,
    codecs: "avc1.42c01e,mp4a.40.2",
    resolution: "640x360",
    frameRate: 30,
  },
  {
    id: "180p",
    bandwidth: 292064,
    averageBandwidth: 276502,
    codecs: "avc1.42c01e,mp4a.40.2",
    resolution: "320x180",
    frameRate: 30,
  },
] as const;

export const renditionIds = fixtureRenditions.map((r) => r.id);

/** Parts per segment of the fixture timeline (2 s segments of 0.5 s parts). */
export const partsPerSegment = 4;
export const partDurationMs = 500;
export const segmentDurationMs = 2000;
/** The fixture loops every 8 s of media (4 segments); timestamps keep increasing across loops. */
export const loopMs = 8000;

/** A timeline origin every encoder of a test agrees on: a segment boundary a little in the past. */
export function timelineOriginMs(nowMs = Date.now()): number {
  return Math.floor(nowMs / segmentDurationMs) * segmentDurationMs - 4 * segmentDurationMs;
}

export async function getText(
  url: string,
  timeoutMs = 5000,
  signal?: AbortSignal,
): Promise<{ status: number; text: string }> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const res = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  return { status: res.status, text: await res.text() };
}

export interface E2ERun {
  readonly sup: Supervisor;
  readonly runDir: string;
  /** Stops every process (SIGTERM, then SIGKILL after 3 s) and removes the run directory. */
  cleanup(): Promise<void>;
}

export function createRun(name: string): E2ERun {
  const runDir = mkdtempSync(join(tmpdir(), `understudy-e2e-${name}-`));
  const sup = createSupervisor({ runDir, env: { UNDERSTUDY_LOG_LEVEL: "warn" } });
  return {
    sup,
    runDir,
    async cleanup() {
      await sup.stopAll();
      if (process.env.UNDERSTUDY_E2E_KEEP === "1") {
        process.stdout.write(`      (kept ${runDir})\n`);
      } else {
        rmSync(runDir, { recursive: true, force: true });
      }
    },
  };
}

export interface PackagerProc {
  readonly id: string;
  /** Base URL, e.g. http://127.0.0.1:PORT */
  readonly url: string;
  readonly proc: RoleProcess;
}

/** An origin packager with the fixture's streams (`streamId`, then `more`) configured statically. */
export async function startStaticPackager(
  run: E2ERun,
  id: string,
  port: number,
  streamId: string,
  more: readonly string[] = [],
): Promise<PackagerProc> {
  const listen = `127.0.0.1:${port}`;
  const proc = await run.sup.start(
    id,
    "packager",
    {
      nodeId: id,
      mode: "origin",
      listen,
      streams: [streamId, ...more].map((sid) => ({ id: sid, renditions: fixtureRenditions })),
      log: { level: "warn" },
    },
    { ready: /listening on/ },
  );
  return { id, url: `http://${listen}`, proc };
}

/** `understudy source` as encoder `index` of a static pool of `size`, pushing to every target. */
export async function startStaticSource(
  run: E2ERun,
  opts: {
    encoderId: string;
    streamId: string;
    originMs: number;
    index: number;
    size: number;
    unit: "segment" | "shard";
    targets: readonly string[];
  },
): Promise<RoleProcess> {
  return run.sup.start(
    opts.encoderId,
    "source",
    {
      streamId: opts.streamId,
      encoderId: opts.encoderId,
      timelineOriginMs: opts.originMs,
      pool: { index: opts.index, size: opts.size, unit: opts.unit },
      targets: [...opts.targets],
      logLevel: "warn",
    },
    { ready: "spawn" },
  );
}

/** Number of #EXTINF (closed segments) in a media playlist. */
export function closedSegments(playlist: string): number {
  return playlist.match(/^#EXTINF/gm)?.length ?? 0;
}
