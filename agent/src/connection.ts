/**
 * One agent stream to the coordinator leader, kept alive forever.
 *
 * Protocol (agent.v1): Hello first; a follower answers Redirect and ends the
 * stream; the leader answers Welcome{resume_after_sequence}, and the agent
 * sends every buffered report above that watermark (marked replayed, oldest
 * first), then live reports, in strictly increasing sequence order on the
 * wire. The leader acks watermarks and drops sequences at or below its own,
 * so a leader change or a coordinator restart loses nothing the buffer still
 * holds and duplicates nothing.
 *
 * Reconnects (a leader change must cost about one election, not a backoff
 * ladder):
 * - After a welcomed stream ends, a short jittered backoff (reset by every
 *   Welcome), then: if the leader is lost (connection broken, keepalive
 *   timed out, leadership lost) the next configured address, which is the
 *   new leader or redirects to it; the lost one counts as failed in the
 *   round (a hung leader would eat a whole Hello timeout). If the leader
 *   refused the stream while leading (e.g. ABORTED), the same address again.
 * - A Redirect with a leader address is followed at once, at most
 *   `redirectHopsMax` times in a row.
 * - An unreachable coordinator (or one that does not answer Hello within
 *   `helloTimeoutMs`) moves on to the next configured address at once; only
 *   when every configured address failed in a row (a "round") does the agent
 *   wait the exponential backoff. A follower that redirected to a leader that
 *   then turned out unreachable counts as failed in the round too.
 * - Every Hello names the leader the agent lost (`lost_leader_id`: the one
 *   whose stream ended, or an unreachable redirect target) until the next
 *   Welcome. A follower that has not yet noticed that loss, or knows no
 *   leader, holds the Hello until the election settles and then redirects to
 *   the new leader, so agents do not poll followers during an election.
 *
 * The link's own health is measured from acks: round trip from sending a live
 * report to the ack naming its sequence, and the share of live reports not
 * acked within `ackTimeoutMs` (probe.rtt_ms / probe.loss_ratio, target
 * "coordinator"). The leader batches acks (at most one per ack interval), so
 * a single sample includes up to one report period of batching delay; the
 * minimum over each sampling interval is reported, the closest to the path's
 * round trip.
 */
import type { Clock } from "../../common/clock.ts";
import { errorMessage } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import type {
  CoordinatorMessage,
  Directive,
  Welcome,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import type { Backoff } from "./backoff.ts";
import type { AgentSample } from "./metric-names.ts";
import { createLossWindow, type ProbeResult } from "./probes.ts";
import type { ReportBuffer } from "./report-buffer.ts";
import type { AgentStream, AgentTransport } from "./transport.ts";
import { prepareBuffered } from "./wire.ts";

export interface StreamContext {
  /** Welcome.term of the current stream. */
  term: bigint;
  /** agent clock minus coordinator clock, estimated at Welcome. */
  clockOffsetMs: number;
}

export interface HelloContext {
  /** Hello.lost_leader_id. */
  lostLeaderId: string;
}

export interface ConnectionOptions {
  addresses: readonly string[];
  transport: AgentTransport;
  buffer: ReportBuffer;
  /**
   * Encoded Hello for a new stream (built fresh: it carries the latest acked
   * sequence), naming the leader this agent lost ("" when none).
   */
  hello(ctx: HelloContext): Uint8Array;
  backoff: Backoff;
  helloTimeoutMs: number;
  ackTimeoutMs: number;
  replayBatchMax: number;
  /** Longest wait a Redirect.retry_after_ms may impose. */
  retryAfterMsMax: number;
  clock: Clock;
  logger: Logger;
  onWelcome(welcome: Welcome, ctx: StreamContext): void;
  /** Runs a directive; resolves to the encoded DirectiveResult message. */
  onDirective(directive: Directive, ctx: StreamContext): Promise<Uint8Array>;
  /** Waits `ms` unless aborted (injected so tests can observe delays). */
  sleep?(ms: number, signal: AbortSignal): Promise<void>;
}

export type ConnectionState = "connecting" | "connected" | "stopped";

export interface ConnectionStats {
  state: ConnectionState;
  address: string;
  leaderId: string;
  connects: number;
  redirects: number;
  failures: number;
  replayedReports: number;
  sentReports: number;
  trimmedReports: number;
}

export interface AgentConnection {
  start(): void;
  /** Call after appending to the buffer: sends it now if a stream is up. */
  notifyAppended(): void;
  readonly state: ConnectionState;
  stats(): ConnectionStats;
  /** Link health since the previous call (for the next report). */
  takeLinkProbe(): { samples: AgentSample[]; probes: ProbeResult[] };
  stop(): Promise<void>;
}

type StreamOutcome =
  | {
      kind: "redirect";
      leaderId: string;
      leaderAddress: string;
      retryAfterMs: number;
      reason: string;
    }
  | {
      kind: "ended";
      leaderId: string;
      reason: string;
      /**
       * The leader is gone for this agent (connection lost, keepalive timed
       * out, leadership lost): look elsewhere. False when the leader itself
       * refused the stream (e.g. ABORTED: replaced by a newer stream), which
       * says it is up and leading.
       */
      leaderLost: boolean;
    }
  | {
      kind: "failed";
      reason: string;
      /** The coordinator answered (a refusal), so it is up: not a lost leader. */
      answered?: boolean;
    };

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/**
 * gRPC codes by which a coordinator refuses a stream while being up (and,
 * for a welcomed stream, leading): INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
 * PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED,
 * OUT_OF_RANGE, UNIMPLEMENTED, UNAUTHENTICATED. The rest (UNAVAILABLE,
 * DEADLINE_EXCEEDED, CANCELLED, UNKNOWN, INTERNAL, DATA_LOSS) also stand for
 * a connection that broke or a node that could not be reached.
 */
const refusalCodes = new Set([3, 5, 6, 7, 8, 9, 10, 11, 12, 16]);

function refusedByPeer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "number" && refusalCodes.has(code);
}

/** Live reports awaiting an ack that are tracked for RTT/loss; older ones count as lost. */
const inFlightMax = 10_000;
const lossWindowSize = 100;

export function createAgentConnection(opts: ConnectionOptions): AgentConnection {
  const { buffer, clock, logger } = opts;
  const sleep = opts.sleep ?? defaultSleep;
  const stopCtl = new AbortController();
  const redirectHopsMax = 2 * opts.addresses.length + 2;
  let state: ConnectionState = "connecting";
  let loop: Promise<void> | undefined;
  let current: AgentStream | undefined;
  let address = opts.addresses[0]!;
  let leaderId = "";
  /** Hello.lost_leader_id: set when a leader is lost, cleared by a Welcome. */
  let lostLeaderId = "";
  /** Highest sequence written on the current stream. */
  let cursor = 0;
  /** Sequences up to this are replays on the current stream. */
  let replayUpTo = 0;
  let maxReportBytes = 0;
  let pumping = false;
  let pumpAgain = false;
  const counters = { connects: 0, redirects: 0, failures: 0, replayed: 0, sent: 0, trimmed: 0 };

  // Link health from acks.
  const sentAt = new Map<number, number>();
  const loss = createLossWindow(lossWindowSize);
  /** Smallest report→ack time since the last link probe (undefined = no ack seen). */
  let rttMinMs: number | undefined;

  const expireInFlight = () => {
    const now = clock.monotonicMs();
    for (const [seq, t] of sentAt) {
      if (now - t <= opts.ackTimeoutMs && sentAt.size <= inFlightMax) break;
      sentAt.delete(seq);
      loss.record(false);
    }
  };

  const onAck = (seq: number) => {
    buffer.ack(seq);
    const now = clock.monotonicMs();
    const at = sentAt.get(seq) ?? [...sentAt.entries()].filter(([s]) => s <= seq).at(-1)?.[1];
    if (at !== undefined) {
      rttMinMs = Math.min(rttMinMs ?? Number.POSITIVE_INFINITY, now - at);
    }
    for (const [s, t] of sentAt) {
      if (s > seq) break;
      sentAt.delete(s);
      loss.record(now - t <= opts.ackTimeoutMs);
    }
  };

  /** Writes buffered reports above `cursor` to the current stream, honouring backpressure. */
  const pump = async () => {
    if (pumping) {
      pumpAgain = true;
      return;
    }
    pumping = true;
    try {
      do {
        pumpAgain = false;
        const stream = current;
        while (stream && stream === current) {
          const batch = buffer.after(cursor, opts.replayBatchMax);
          if (batch.length === 0) break;
          for (const r of batch) {
            if (stream !== current) break;
            if (r.seq > cursor + 1 && cursor > 0) {
              logger.warn("reports were evicted before they could be sent", {
                from: cursor + 1,
                to: r.seq - 1,
              });
            }
            const replay = r.seq <= replayUpTo;
            const bytes = prepareBuffered(r.bytes, replay, maxReportBytes);
            cursor = r.seq;
            if (!bytes) {
              logger.error("report cannot fit the leader's max_report_bytes; skipped", {
                seq: r.seq,
                maxReportBytes,
              });
              continue;
            }
            if (bytes !== r.bytes && !replay) counters.trimmed++;
            if (replay) counters.replayed++;
            else sentAt.set(r.seq, clock.monotonicMs());
            counters.sent++;
            if (!stream.write(bytes)) await stream.waitDrain();
          }
        }
      } while (pumpAgain);
    } finally {
      pumping = false;
    }
  };

  const kickPump = () => {
    pump().catch((err: unknown) => logger.error("sending reports failed", { err }));
  };

  const runStream = async (addr: string): Promise<StreamOutcome> => {
    let stream: AgentStream;
    try {
      stream = opts.transport.connect(addr);
    } catch (err) {
      return { kind: "failed", reason: errorMessage(err) };
    }
    const it = stream.messages[Symbol.asyncIterator]();
    const helloSentAt = clock.monotonicMs();
    let welcomed = false;
    try {
      stream.write(opts.hello({ lostLeaderId }));
      let timer: NodeJS.Timeout | undefined;
      let onStop: (() => void) | undefined;
      const first = await Promise.race([
        it.next(),
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), opts.helloTimeoutMs);
        }),
        new Promise<"stopped">((resolve) => {
          onStop = () => resolve("stopped");
          stopCtl.signal.addEventListener("abort", onStop, { once: true });
        }),
      ]).finally(() => {
        clearTimeout(timer);
        // One listener per attempt would pile up on the agent-lifetime signal
        // while the coordinators stay unreachable (a leak growing for days).
        if (onStop) stopCtl.signal.removeEventListener("abort", onStop);
      });
      if (first === "stopped") {
        stream.cancel();
        return { kind: "ended", leaderId: "", reason: "agent stopping", leaderLost: false };
      }
      if (first === "timeout") {
        stream.cancel();
        return { kind: "failed", reason: `no answer to Hello within ${opts.helloTimeoutMs} ms` };
      }
      if (first.done) return { kind: "failed", reason: "stream ended before Welcome" };
      const msg = first.value;
      if (msg.body.case === "redirect") {
        stream.cancel();
        const r = msg.body.value;
        return {
          kind: "redirect",
          leaderId: r.leaderId,
          leaderAddress: r.leaderAddress,
          retryAfterMs: r.retryAfterMs,
          reason: r.reason,
        };
      }
      if (msg.body.case !== "welcome") {
        stream.cancel();
        return {
          kind: "failed",
          reason: `expected Welcome or Redirect, got ${msg.body.case}`,
          answered: true,
        };
      }
      const welcome = msg.body.value;
      const rttMs = clock.monotonicMs() - helloSentAt;
      const ctx: StreamContext = {
        term: welcome.term,
        clockOffsetMs: clock.nowMs() - Number(welcome.coordinatorUnixMs) - rttMs / 2,
      };
      welcomed = true;
      onWelcomed(addr, welcome, ctx, stream);
      try {
        for await (const m of { [Symbol.asyncIterator]: () => it }) {
          handleMessage(m, ctx, stream);
        }
        return {
          kind: "ended",
          leaderId: welcome.leaderId,
          reason: "coordinator ended the stream",
          leaderLost: true,
        };
      } finally {
        if (current === stream) current = undefined;
        state = stopCtl.signal.aborted ? "stopped" : "connecting";
      }
    } catch (err) {
      stream.cancel();
      const refused = refusedByPeer(err);
      return welcomed
        ? { kind: "ended", leaderId, reason: errorMessage(err), leaderLost: !refused }
        : { kind: "failed", reason: errorMessage(err), answered: refused };
    }
  };

  const onWelcomed = (addr: string, welcome: Welcome, ctx: StreamContext, stream: AgentStream) => {
    const resume = Number(welcome.resumeAfterSequence);
    if (resume > buffer.lastSeq) {
      // The leader holds sequences this agent never issued (its journal lost
      // a tail in a power cut): skip past them, or new reports would be
      // dropped as duplicates.
      logger.warn("leader holds sequences beyond the local buffer; skipping ahead", {
        resumeAfter: resume,
        lastSeq: buffer.lastSeq,
      });
      buffer.advanceTo(resume);
    }
    address = addr;
    leaderId = welcome.leaderId;
    lostLeaderId = "";
    maxReportBytes = welcome.maxReportBytes;
    cursor = resume;
    replayUpTo = buffer.lastSeq;
    sentAt.clear();
    current = stream;
    state = "connected";
    counters.connects++;
    opts.backoff.reset();
    logger.info("connected to coordinator leader", {
      address: addr,
      leaderId,
      term: welcome.term,
      resumeAfter: resume,
      replaying: Math.max(0, replayUpTo - Math.max(resume, buffer.oldestSeq - 1)),
    });
    opts.onWelcome(welcome, ctx);
    kickPump();
  };

  const handleMessage = (m: CoordinatorMessage, ctx: StreamContext, stream: AgentStream) => {
    switch (m.body.case) {
      case "ack":
        onAck(Number(m.body.value.sequence));
        break;
      case "directive": {
        const d = m.body.value;
        opts
          .onDirective(d, ctx)
          .then((bytes) => {
            // A result for a stream that has ended is dropped: the leader re-sends
            // the directive and gets the recorded result.
            if (current === stream) stream.write(bytes);
          })
          .catch((err: unknown) => logger.error("directive handling failed", { err }));
        break;
      }
      default:
        logger.warn("unexpected coordinator message ignored", { case: m.body.case });
    }
  };

  const run = async () => {
    const addresses = opts.addresses;
    /** The configured address tried last (redirect targets are not configured ones). */
    let index = 0;
    let redirect: { to: string; from: string; leaderId: string } | undefined;
    let hops = 0;
    let retrySame: string | undefined;
    /** Configured addresses that failed since the last Welcome or backoff wait. */
    const failedInRound = new Set<string>();
    while (!stopCtl.signal.aborted) {
      const via = redirect;
      const addr = via?.to ?? retrySame ?? addresses[index]!;
      redirect = undefined;
      retrySame = undefined;
      state = "connecting";
      const connectsBefore = counters.connects;
      const outcome = await runStream(addr);
      if (stopCtl.signal.aborted) break;
      if (counters.connects !== connectsBefore) failedInRound.clear();
      let delayMs: number;
      if (outcome.kind === "redirect") {
        counters.redirects++;
        logger.info("redirected", {
          from: addr,
          to: outcome.leaderAddress,
          reason: outcome.reason,
        });
        if (outcome.leaderAddress !== "" && hops < redirectHopsMax) {
          hops++;
          redirect = { to: outcome.leaderAddress, from: addr, leaderId: outcome.leaderId };
          continue;
        }
        hops = 0;
        index = (index + 1) % addresses.length;
        delayMs =
          outcome.retryAfterMs > 0
            ? Math.min(outcome.retryAfterMs, opts.retryAfterMsMax)
            : opts.backoff.nextDelayMs();
      } else if (outcome.kind === "ended") {
        hops = 0;
        delayMs = opts.backoff.nextDelayMs();
        if (outcome.leaderLost) {
          // Ask the next coordinator: it is the new leader, or redirects to
          // it, or holds the Hello until the election settles. The old address
          // waits for the next round (a hung leader would eat a whole Hello
          // timeout).
          if (outcome.leaderId !== "") lostLeaderId = outcome.leaderId;
          failedInRound.add(addr);
          const at = addresses.indexOf(addr);
          if (at >= 0) index = (at + 1) % addresses.length;
        } else {
          retrySame = addr;
        }
        logger.warn("coordinator stream ended", {
          address: addr,
          reason: outcome.reason,
          retryInMs: delayMs,
        });
      } else {
        hops = 0;
        counters.failures++;
        failedInRound.add(addr);
        if (via !== undefined) {
          // The follower sent us to a leader we cannot use; count the
          // follower as failed in this round. If that leader is unreachable,
          // the follower has not noticed yet: name it in the next Hellos.
          if (via.leaderId !== "" && outcome.answered !== true) lostLeaderId = via.leaderId;
          failedInRound.add(via.from);
        }
        const at = addresses.indexOf(via?.from ?? addr);
        if (at >= 0) index = at;
        let next = -1;
        for (let k = 1; k <= addresses.length; k++) {
          const i = (index + k) % addresses.length;
          if (!failedInRound.has(addresses[i]!)) {
            next = i;
            break;
          }
        }
        if (next >= 0) {
          index = next;
          delayMs = 0;
        } else {
          failedInRound.clear();
          index = (index + 1) % addresses.length;
          delayMs = opts.backoff.nextDelayMs();
        }
        logger.warn("coordinator unreachable", {
          address: addr,
          reason: outcome.reason,
          next: addresses[index],
          retryInMs: delayMs,
        });
      }
      if (delayMs > 0) await sleep(delayMs, stopCtl.signal);
    }
    state = "stopped";
  };

  return {
    start() {
      loop ??= run();
    },
    notifyAppended() {
      if (current) kickPump();
    },
    get state() {
      return state;
    },
    stats: () => ({
      state,
      address,
      leaderId,
      connects: counters.connects,
      redirects: counters.redirects,
      failures: counters.failures,
      replayedReports: counters.replayed,
      sentReports: counters.sent,
      trimmedReports: counters.trimmed,
    }),
    takeLinkProbe() {
      expireInFlight();
      const labels = { target: "coordinator" };
      const samples: AgentSample[] = [];
      const rtt = rttMinMs;
      rttMinMs = undefined;
      if (rtt !== undefined) samples.push({ name: "probe.rtt_ms", value: rtt, labels });
      if (state === "connected")
        samples.push({ name: "probe.loss_ratio", value: loss.ratio(), labels });
      const probes: ProbeResult[] =
        state === "connected"
          ? [
              {
                kind: "coordinator_rtt",
                target: leaderId || address,
                ok: true,
                latencyMs: rtt ?? 0,
                values: { loss_ratio: loss.ratio() },
                error: "",
              },
            ]
          : [];
      return { samples, probes };
    },
    async stop() {
      stopCtl.abort();
      current?.cancel();
      current = undefined;
      await loop;
      state = "stopped";
    },
  };
}
