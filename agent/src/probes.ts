/**
 * Role probes: the packager's status endpoint, ffmpeg's `-progress` file and
 * generic HTTP checks.
 *
 * Probes never hold up a report: `launch()` starts every probe that is not
 * still running (a slow one is not started twice), and `collect()` hands over
 * what finished since the previous collect. A report therefore carries the
 * results of probes started one sampling interval earlier, and a probe whose
 * timeout is longer than the interval simply reports less often.
 */
import { open, stat } from "node:fs/promises";
import type { Clock } from "../../common/clock.ts";
import { errorMessage } from "../../common/errors.ts";
import type { HttpProbeConfig } from "./config.ts";
import { httpRequest } from "./http-request.ts";
import type { AgentSample } from "./metric-names.ts";

export type ProbeKindName = "packager_status" | "encoder_progress" | "http" | "coordinator_rtt";

/** One probe outcome (mapped to RoleProbe on the wire). */
export interface ProbeResult {
  kind: ProbeKindName;
  target: string;
  ok: boolean;
  latencyMs: number;
  values: Record<string, number>;
  error: string;
}

export interface ProbeOutput {
  samples: AgentSample[];
  probes: ProbeResult[];
}

export interface ProbeSet {
  launch(): void;
  collect(): ProbeOutput;
  /** Resolves when probes in flight have finished (tests, shutdown). */
  settle(): Promise<void>;
}

export interface ProbeSetOptions {
  packagerStatusUrl?: string;
  packagerStatusTimeoutMs: number;
  encoderProgressFile?: string;
  encoderProgressStaleMs: number;
  http: readonly HttpProbeConfig[];
  clock: Clock;
}

/** JSON bodies larger than this are refused (a status document is a few KB). */
const statusBodyBytesMax = 1024 * 1024;
/** How much of the progress file's tail is read; one ffmpeg block is ~300 bytes. */
const progressTailBytes = 8192;

interface Probe {
  run(): Promise<ProbeOutput>;
}

export function createProbeSet(opts: ProbeSetOptions): ProbeSet {
  const probes: Probe[] = [];
  if (opts.packagerStatusUrl) {
    probes.push(
      packagerStatusProbe(opts.packagerStatusUrl, opts.packagerStatusTimeoutMs, opts.clock),
    );
  }
  if (opts.encoderProgressFile) {
    probes.push(
      encoderProgressProbe(opts.encoderProgressFile, opts.encoderProgressStaleMs, opts.clock),
    );
  }
  for (const h of opts.http) probes.push(httpProbe(h, opts.clock));

  const inFlight = new Map<Probe, Promise<void>>();
  let done: ProbeOutput[] = [];
  return {
    launch() {
      for (const p of probes) {
        if (inFlight.has(p)) continue;
        const run = p
          .run()
          .then((out) => {
            done.push(out);
          })
          .finally(() => inFlight.delete(p));
        inFlight.set(p, run);
      }
    },
    collect() {
      const out: ProbeOutput = { samples: [], probes: [] };
      for (const d of done) {
        out.samples.push(...d.samples);
        out.probes.push(...d.probes);
      }
      done = [];
      return out;
    },
    async settle() {
      await Promise.all(inFlight.values());
    },
  };
}

/** Keeps the last `size` outcomes of a probe for probe.loss_ratio. */
export function createLossWindow(size: number) {
  const outcomes: boolean[] = [];
  return {
    record(ok: boolean) {
      outcomes.push(ok);
      if (outcomes.length > size) outcomes.shift();
    },
    ratio(): number {
      if (outcomes.length === 0) return 0;
      return outcomes.filter((ok) => !ok).length / outcomes.length;
    },
  };
}

function httpProbe(cfg: HttpProbeConfig, clock: Clock): Probe {
  const loss = createLossWindow(cfg.lossWindow);
  const labels = { target: cfg.name };
  return {
    async run() {
      const t0 = clock.monotonicMs();
      let status = 0;
      let error = "";
      try {
        // Redirects are not followed: a 3xx is this URL's answer.
        const res = await httpRequest(cfg.url, { timeoutMs: cfg.timeoutMs });
        status = res.status;
        if (status !== cfg.expectedStatus) error = `HTTP ${status}, expected ${cfg.expectedStatus}`;
      } catch (err) {
        error = errorMessage(err).slice(0, 1024);
      }
      const latencyMs = clock.monotonicMs() - t0;
      const ok = error === "";
      loss.record(ok);
      const samples: AgentSample[] = [{ name: "probe.loss_ratio", value: loss.ratio(), labels }];
      if (status !== 0) samples.push({ name: "probe.rtt_ms", value: latencyMs, labels });
      const values: Record<string, number> = {};
      if (status !== 0) values.http_status = status;
      return { samples, probes: [{ kind: "http", target: cfg.url, ok, latencyMs, values, error }] };
    },
  };
}

/**
 * First finite number among the keys (camelCase proto JSON or snake_case
 * names); a dotted key ("ingest.lagMs.p50") reads a nested field.
 */
function pick(doc: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const k of keys) {
    let v: unknown = doc;
    for (const part of k.split(".")) {
      v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[part] : undefined;
    }
    const n = typeof v === "string" ? Number(v) : v;
    if (typeof n === "number" && Number.isFinite(n)) return n;
  }
  return undefined;
}

/**
 * packager-node `/status`: its own nested document (ingest.recentLagMs.p50/p99
 * over the last 5 s, else the 60 s ingest.lagMs,
 * http.errorRatio, http.requestsPerSecond, cache.hitRatio, draining), or the
 * flat JSON form of packager.v1 GetStatusResponse (ingestLatencyP50Ms, ...,
 * snake_case accepted) that other packagers may expose.
 */
export function parsePackagerStatus(doc: unknown): {
  samples: AgentSample[];
  values: Record<string, number>;
} {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error("status is not a JSON object");
  }
  const d = doc as Record<string, unknown>;
  const p50 = pick(
    d,
    "ingest.recentLagMs.p50",
    "ingest.lagMs.p50",
    "ingestLatencyP50Ms",
    "ingest_latency_p50_ms",
    "ingestLatencyMs",
    "ingest_latency_ms",
  );
  const p99 = pick(
    d,
    "ingest.recentLagMs.p99",
    "ingest.lagMs.p99",
    "ingestLatencyP99Ms",
    "ingest_latency_p99_ms",
  );
  const errorRatio = pick(
    d,
    "http.errorRatio",
    "errorRatio",
    "error_ratio",
    "errorRate",
    "error_rate",
  );
  const hit = pick(d, "cache.hitRatio", "cacheHitRatio", "cache_hit_ratio");
  const rps = pick(d, "http.requestsPerSecond", "requestsPerSecond", "requests_per_second");
  const samples: AgentSample[] = [];
  const values: Record<string, number> = {};
  if (p50 !== undefined) {
    samples.push({ name: "packager.ingest_latency_ms", value: p50 });
    values.ingest_latency_p50_ms = p50;
  }
  if (p99 !== undefined) values.ingest_latency_p99_ms = p99;
  if (errorRatio !== undefined) {
    samples.push({ name: "packager.error_rate", value: errorRatio });
    values.error_ratio = errorRatio;
  }
  if (hit !== undefined) {
    samples.push({ name: "packager.cache_hit_ratio", value: hit });
    values.cache_hit_ratio = hit;
  }
  if (rps !== undefined) values.requests_per_second = rps;
  if (typeof d.draining === "boolean") values.draining = d.draining ? 1 : 0;
  return { samples, values };
}

function packagerStatusProbe(url: string, timeoutMs: number, clock: Clock): Probe {
  return {
    async run() {
      const t0 = clock.monotonicMs();
      const result: ProbeResult = {
        kind: "packager_status",
        target: url,
        ok: false,
        latencyMs: 0,
        values: {},
        error: "",
      };
      let samples: AgentSample[] = [];
      try {
        const res = await httpRequest(url, {
          timeoutMs,
          headers: { accept: "application/json" },
          bodyBytesMax: statusBodyBytesMax,
        });
        result.values.http_status = res.status;
        if (res.status < 200 || res.status > 299) {
          throw new Error(`HTTP ${res.status}: ${res.body.slice(0, 200)}`);
        }
        const parsed = parsePackagerStatus(JSON.parse(res.body));
        samples = parsed.samples;
        Object.assign(result.values, parsed.values);
        result.ok = true;
      } catch (err) {
        result.error = errorMessage(err).slice(0, 1024);
      }
      result.latencyMs = clock.monotonicMs() - t0;
      return { samples, probes: [result] };
    },
  };
}

export interface EncoderProgress {
  frame?: number;
  fps?: number;
  speed?: number;
  dropFrames?: number;
  dupFrames?: number;
  outTimeMs?: number;
  /** "continue" or "end" (ffmpeg finished). */
  progress: string;
}

/**
 * The last complete block of ffmpeg `-progress` output: key=value lines
 * ending with `progress=continue|end`. Values ffmpeg reports as "N/A" (e.g.
 * speed before the first frame) are left out. Returns undefined if no block
 * is complete yet.
 */
export function parseEncoderProgress(text: string): EncoderProgress | undefined {
  const lines = text.split("\n").map((l) => l.trim());
  let end = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith("progress=")) {
      end = i;
      break;
    }
  }
  if (end < 0) return undefined;
  let start = end - 1;
  while (start >= 0 && !lines[start]!.startsWith("progress=")) start--;
  const kv = new Map<string, string>();
  for (const line of lines.slice(start + 1, end + 1)) {
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const num = (k: string, strip?: RegExp) => {
    const raw = kv.get(k);
    if (raw === undefined) return undefined;
    const n = Number(strip ? raw.replace(strip, "") : raw);
    return raw !== "" && Number.isFinite(n) ? n : undefined;
  };
  const out: EncoderProgress = { progress: kv.get("progress") ?? "" };
  const set = <K extends keyof EncoderProgress>(k: K, v: EncoderProgress[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set("frame", num("frame"));
  set("fps", num("fps"));
  set("speed", num("speed", /x$/));
  set("dropFrames", num("drop_frames"));
  set("dupFrames", num("dup_frames"));
  // out_time_ms is in microseconds too (a long-standing ffmpeg quirk); out_time_us is explicit.
  const us = num("out_time_us") ?? num("out_time_ms");
  if (us !== undefined) out.outTimeMs = us / 1000;
  return out;
}

async function readTail(file: string, bytes: number): Promise<{ text: string; mtimeMs: number }> {
  const st = await stat(file);
  const fh = await open(file, "r");
  try {
    const len = Math.min(bytes, st.size);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, st.size - len);
    return { text: buf.toString("utf8"), mtimeMs: st.mtimeMs };
  } finally {
    await fh.close();
  }
}

function encoderProgressProbe(file: string, staleMs: number, clock: Clock): Probe {
  return {
    async run() {
      const t0 = clock.monotonicMs();
      const result: ProbeResult = {
        kind: "encoder_progress",
        target: file,
        ok: false,
        latencyMs: 0,
        values: {},
        error: "",
      };
      const samples: AgentSample[] = [];
      try {
        const { text, mtimeMs } = await readTail(file, progressTailBytes);
        const ageMs = Math.max(0, clock.nowMs() - mtimeMs);
        result.values.age_ms = ageMs;
        const p = parseEncoderProgress(text);
        if (!p) throw new Error("no complete progress block yet");
        if (p.frame !== undefined) result.values.frame = p.frame;
        if (p.outTimeMs !== undefined) result.values.out_time_ms = p.outTimeMs;
        if (p.progress === "end") throw new Error("encoder finished (progress=end)");
        if (ageMs > staleMs)
          throw new Error(`progress is stale: last written ${Math.round(ageMs)} ms ago`);
        const add = (name: AgentSample["name"], key: string, v: number | undefined) => {
          if (v === undefined) return;
          samples.push({ name, value: v });
          result.values[key] = v;
        };
        add("encoder.fps", "fps", p.fps);
        add("encoder.speed", "speed", p.speed);
        add("encoder.dropped_frames", "drop_frames", p.dropFrames);
        add("encoder.dup_frames", "dup_frames", p.dupFrames);
        result.ok = true;
      } catch (err) {
        result.error = errorMessage(err).slice(0, 1024);
      }
      result.latencyMs = clock.monotonicMs() - t0;
      return { samples, probes: [result] };
    },
  };
}
