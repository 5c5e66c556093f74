/**
 * Executes coordinator directives under the agent's own rules.
 *
 * - Only services named in the config allowlist can be started or stopped; a
 *   directive names a service (or the unit of an allowlisted entry) and never
 *   carries anything that reaches a command line. Everything else is refused,
 *   logged and answered ok=false.
 * - Idempotent: a repeated (directive_id, epoch) gets the recorded result
 *   without running again (a repeat arriving while the first run is still in
 *   progress waits for it). The last `rememberMax` results are kept.
 * - Fenced: directives from a stream whose leader term is below the highest
 *   term seen are refused, and so are epochs below the highest epoch already
 *   executed for the same stream_id.
 * - Bounded: SET_SAMPLING_INTERVAL outside the configured range is refused;
 *   every action runs under a timeout (the directive deadline, or
 *   `defaultTimeoutMs`).
 */
import { create } from "@bufbuild/protobuf";
import type { Clock } from "../../common/clock.ts";
import { errorMessage } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import {
  type Directive,
  DirectiveKind,
  type DirectiveResult,
  DirectiveResultSchema,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import type { ServiceEntry } from "./config.ts";
import type { ServiceControl } from "./service-control.ts";

export interface DirectiveHooks {
  setSamplingIntervalMs(ms: number): void;
  /** Asks the local component to drain by the deadline (agent clock); resolves to a message. */
  drain(deadlineAgentMs: number | undefined, timeoutMs: number): Promise<string>;
}

export interface DirectiveExecutorOptions {
  services: Readonly<Record<string, ServiceEntry>>;
  control: ServiceControl;
  hooks: DirectiveHooks;
  intervalMsMin: number;
  intervalMsMax: number;
  clock: Clock;
  logger: Logger;
  defaultTimeoutMs?: number;
  rememberMax?: number;
}

/** Where a directive came from. */
export interface DirectiveSource {
  /** Welcome.term of the stream that delivered it. */
  term: bigint;
  /** agent clock minus coordinator clock (from Welcome), to read deadlines. */
  clockOffsetMs: number;
}

export interface DirectiveExecutor {
  /** Records a leader term seen in a Welcome (fencing). */
  observeTerm(term: bigint): void;
  execute(d: Directive, from: DirectiveSource): Promise<DirectiveResult>;
}

const directiveIdPattern = /^[A-Za-z0-9-]{1,64}$/;
/** Distinct stream_ids whose highest epoch is remembered; the oldest is forgotten past this. */
const streamEpochsMax = 4096;

export function createDirectiveExecutor(opts: DirectiveExecutorOptions): DirectiveExecutor {
  const rememberMax = opts.rememberMax ?? 1024;
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
  const results = new Map<string, Promise<DirectiveResult>>();
  const epochs = new Map<string, bigint>();
  let highestTerm = 0n;
  const log = opts.logger;

  const result = (d: Directive, ok: boolean, message: string): DirectiveResult =>
    create(DirectiveResultSchema, {
      directiveId: d.directiveId,
      epoch: d.epoch,
      ok,
      message: message.slice(0, 1024),
      finishedUnixMs: BigInt(Math.round(opts.clock.nowMs())),
    });

  const refuse = (d: Directive, reason: string): DirectiveResult => {
    log.warn("directive refused", {
      directiveId: d.directiveId,
      epoch: d.epoch,
      kind: DirectiveKind[d.kind] ?? d.kind,
      service: d.service,
      reason,
    });
    return result(d, false, reason);
  };

  /** Allowlist lookup: by entry name, or by the exact unit of an entry. */
  const allowlisted = (service: string): [string, ServiceEntry] | undefined => {
    if (Object.hasOwn(opts.services, service)) return [service, opts.services[service]!];
    for (const [name, entry] of Object.entries(opts.services)) {
      if (entry.unit !== undefined && entry.unit === service) return [name, entry];
    }
    return undefined;
  };

  const run = async (d: Directive, from: DirectiveSource): Promise<DirectiveResult> => {
    if (d.streamId !== "") {
      const highest = epochs.get(d.streamId);
      if (highest !== undefined && d.epoch < highest) {
        return refuse(
          d,
          `stale epoch ${d.epoch} for stream ${d.streamId} (highest executed ${highest})`,
        );
      }
      epochs.delete(d.streamId);
      epochs.set(d.streamId, highest !== undefined && highest > d.epoch ? highest : d.epoch);
      if (epochs.size > streamEpochsMax) epochs.delete(epochs.keys().next().value!);
    }
    const deadlineAgentMs =
      d.deadlineUnixMs > 0n ? Number(d.deadlineUnixMs) + from.clockOffsetMs : undefined;
    const timeoutMs =
      deadlineAgentMs === undefined
        ? defaultTimeoutMs
        : Math.min(defaultTimeoutMs, deadlineAgentMs - opts.clock.nowMs());
    if (timeoutMs <= 0) return refuse(d, "deadline already passed");

    try {
      switch (d.kind) {
        case DirectiveKind.START_SERVICE:
        case DirectiveKind.STOP_SERVICE: {
          const hit = allowlisted(d.service);
          if (!hit)
            return refuse(
              d,
              `service "${d.service.slice(0, 256)}" is not in this agent's allowlist`,
            );
          const [name, entry] = hit;
          const msg =
            d.kind === DirectiveKind.START_SERVICE
              ? await opts.control.start(name, entry, timeoutMs)
              : await opts.control.stop(name, entry, timeoutMs);
          log.info("directive executed", {
            directiveId: d.directiveId,
            service: name,
            result: msg,
          });
          return result(d, true, msg);
        }
        case DirectiveKind.SET_SAMPLING_INTERVAL: {
          const ms = d.intervalMs;
          if (!(ms >= opts.intervalMsMin && ms <= opts.intervalMsMax)) {
            return refuse(
              d,
              `interval_ms ${ms} is outside the allowed ${opts.intervalMsMin}..${opts.intervalMsMax}`,
            );
          }
          opts.hooks.setSamplingIntervalMs(ms);
          return result(d, true, `sampling interval set to ${ms} ms`);
        }
        case DirectiveKind.DRAIN: {
          const msg = await opts.hooks.drain(deadlineAgentMs, timeoutMs);
          return result(d, true, msg);
        }
        default:
          return refuse(d, `unsupported directive kind ${d.kind}`);
      }
    } catch (err) {
      log.warn("directive failed", { directiveId: d.directiveId, err });
      return result(d, false, errorMessage(err));
    }
  };

  return {
    observeTerm(term) {
      if (term > highestTerm) highestTerm = term;
    },
    execute(d, from) {
      if (!directiveIdPattern.test(d.directiveId)) {
        return Promise.resolve(refuse(d, "directive_id must be 1–64 chars of [A-Za-z0-9-]"));
      }
      // Not recorded: the same directive re-sent by the current leader must still run.
      if (from.term < highestTerm) {
        return Promise.resolve(
          refuse(d, `stale leader term ${from.term} (highest seen ${highestTerm})`),
        );
      }
      const key = `${d.directiveId}@${d.epoch}`;
      const known = results.get(key);
      if (known) return known;
      const p = run(d, from);
      results.set(key, p);
      if (results.size > rememberMax) results.delete(results.keys().next().value!);
      return p;
    },
  };
}
