/**
 * DEVELOPMENT ONLY: fault injection for the demo and tests. It exists only
 * when the process was started with `--dev-fault-injection`; without that
 * flag `/dev/fault` is a 404 like any unknown path. A "degrade" fault makes
 * the node fail the way real origins often do — slowly, then fast: ingest
 * handling backs up like a queue that cannot drain (the delay doubles at a
 * steady rate, from 10 ms to `ingestDelayMaxMs` at `rampMs`; "linear" ramps
 * evenly instead) and the process leaks memory linearly up to `leakBytesMax`.
 * Viewers of this origin are unaffected at first and stall once the delay
 * reaches about a second, which is when a predictive system must already
 * have moved them.
 *
 *   POST   /dev/fault  {"kind":"degrade","rampMs":20000,"ingestDelayMaxMs":5000,"shape":"exponential","leakBytesMax":268435456}
 *   DELETE /dev/fault  stops the fault and frees the leaked memory
 *   GET    /dev/fault  current fault state
 */
import type http from "node:http";
import type { Clock } from "../../common/clock.ts";
import type { Logger } from "../../common/log.ts";

export interface DegradeFault {
  readonly kind: "degrade";
  readonly shape: "exponential" | "linear";
  readonly rampMs: number;
  readonly ingestDelayMaxMs: number;
  readonly leakBytesMax: number;
}

export interface FaultInjector {
  /** Handles /dev/fault; false when the path is not ours. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<boolean>;
  /** Extra delay to add to an ingest request now (0 without a fault). */
  ingestDelayMs(): number;
  stop(): void;
}

const limits = {
  rampMsMax: 3_600_000,
  ingestDelayMaxMs: 10_000,
  leakBytesMax: 2 * 1024 ** 3,
  bodyBytesMax: 4096,
};
const leakChunkBytes = 1024 * 1024;

export function createFaultInjector(clock: Clock, log: Logger): FaultInjector {
  let fault: DegradeFault | undefined;
  let startedMs = 0;
  let leaked: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;

  const progress = () =>
    fault ? Math.min(1, (clock.monotonicMs() - startedMs) / fault.rampMs) : 0;

  const reply = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(`${JSON.stringify(body)}\n`);
  };

  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    fault = undefined;
    leaked = [];
  };

  return {
    ingestDelayMs: () => {
      if (!fault) return 0;
      const p = progress();
      if (fault.shape === "linear") return Math.round(p * fault.ingestDelayMaxMs);
      const startMs = Math.min(10, fault.ingestDelayMaxMs);
      return Math.round(startMs * (fault.ingestDelayMaxMs / startMs) ** p);
    },
    stop,
    async handle(req, res, path) {
      if (path !== "/dev/fault") return false;
      if (req.method === "GET") {
        reply(res, 200, {
          fault: fault ?? null,
          progress: progress(),
          leakedBytes: leaked.length * leakChunkBytes,
        });
        return true;
      }
      if (req.method === "DELETE") {
        stop();
        log.warn("dev fault injection stopped");
        reply(res, 200, { fault: null });
        return true;
      }
      if (req.method !== "POST") {
        res.writeHead(405, { allow: "GET, POST, DELETE", "content-type": "text/plain" });
        res.end("use POST to start a fault, DELETE to stop it\n");
        return true;
      }
      let text = "";
      for await (const chunk of req) {
        text += chunk;
        if (text.length > limits.bodyBytesMax) {
          reply(res, 413, { error: `body over ${limits.bodyBytesMax} bytes` });
          return true;
        }
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text || "{}") as Record<string, unknown>;
      } catch {
        reply(res, 400, { error: "body must be JSON" });
        return true;
      }
      const num = (k: string, dflt: number, max: number): number | string => {
        const v = body[k] ?? dflt;
        return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= max
          ? v
          : `${k}: a number in 0..${max}`;
      };
      if (body.kind !== "degrade") {
        reply(res, 400, { error: 'kind: must be "degrade"' });
        return true;
      }
      const shape = body.shape ?? "exponential";
      if (shape !== "exponential" && shape !== "linear") {
        reply(res, 400, { error: 'shape: must be "exponential" or "linear"' });
        return true;
      }
      const rampMs = num("rampMs", 30_000, limits.rampMsMax);
      const ingestDelayMaxMs = num("ingestDelayMaxMs", 5000, limits.ingestDelayMaxMs);
      const leakBytesMax = num("leakBytesMax", 256 * 1024 ** 2, limits.leakBytesMax);
      const bad = [rampMs, ingestDelayMaxMs, leakBytesMax].find((v) => typeof v === "string");
      if (bad !== undefined || (rampMs as number) < 1) {
        reply(res, 400, { error: bad ?? "rampMs: must be >= 1" });
        return true;
      }
      stop();
      fault = {
        kind: "degrade",
        shape,
        rampMs: rampMs as number,
        ingestDelayMaxMs: ingestDelayMaxMs as number,
        leakBytesMax: leakBytesMax as number,
      };
      startedMs = clock.monotonicMs();
      const f = fault;
      timer = setInterval(() => {
        const want = Math.floor((progress() * f.leakBytesMax) / leakChunkBytes);
        while (leaked.length < want) leaked.push(Buffer.alloc(leakChunkBytes, 1));
      }, 250);
      log.warn("DEV fault injection: degrading this node", { ...fault });
      reply(res, 202, { fault });
      return true;
    },
  };
}
