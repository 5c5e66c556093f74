/**
 * ClientService: periodic client condition reports from SDK players. Any
 * node accepts them (no Raft write: these are telemetry, not truth) and keeps
 * bounded, recent per-session state; the leader's planners read demand per
 * stream and rendition from it, and operators read it in /metrics. Reports
 * are validated field by field; a bad one changes nothing.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument, notFound } from "../../../common/errors.ts";
import type {
  ClientReport,
  ClientService,
} from "../../../proto/gen/understudy/api/v1/client_service_pb.ts";
import type { ClusterHandle } from "./cluster-handle.ts";
import { idPattern } from "./validate-stream.ts";

/** Bound on sessions remembered by one node (oldest report first out). */
export const clientSessionsMax = 100_000;
/** A session not heard from for this long no longer counts as demand. */
export const clientSessionIdleMs = 30_000;
/** Interval the SDK is told to report at. */
export const reportIntervalMs = 5_000;

const sessionPattern = /^[A-Za-z0-9-]{1,64}$/;
const renditionPattern = /^[a-z0-9_-]{1,32}$/;

export interface ClientSessionState {
  readonly streamId: string;
  readonly renditionId: string;
  readonly origin: string;
  readonly bufferMs: number;
  readonly stallCount: number;
  readonly stallMs: number;
  readonly receivedMs: number;
}

export interface ClientTelemetry {
  readonly service: Partial<ServiceImpl<typeof ClientService>>;
  /** Active sessions per rendition of a stream (demand for the planners). */
  sessionsByRendition(streamId: string, nowMs: number): Map<string, number>;
  /** Active sessions and their stall totals, for metrics. */
  summary(nowMs: number): { sessions: number; stalls: number; stallMs: number };
}

export function createClientTelemetry(cluster: ClusterHandle): ClientTelemetry {
  // Map insertion order = report order (refreshed on every report): the first
  // entry is the least recently heard session.
  const sessions = new Map<string, ClientSessionState>();

  const validate = (r: ClientReport | undefined): ClientReport => {
    if (!r) throw invalidArgument("report", "required");
    if (!sessionPattern.test(r.sessionId)) {
      throw invalidArgument("report.session_id", "must be 1–64 chars of [A-Za-z0-9-]");
    }
    if (!idPattern.test(r.streamId))
      throw invalidArgument("report.stream_id", "must be a stream id");
    if (r.renditionId && !renditionPattern.test(r.renditionId)) {
      throw invalidArgument("report.rendition_id", "must be 1–32 chars of [a-z0-9_-]");
    }
    if (r.origin.length > 256) throw invalidArgument("report.origin", "at most 256 chars");
    if (r.cpuLoadRatio !== undefined && !(r.cpuLoadRatio >= 0 && r.cpuLoadRatio <= 64)) {
      throw invalidArgument("report.cpu_load_ratio", "must be a finite number in 0..64");
    }
    if (r.decodableCodecs.length > 64)
      throw invalidArgument("report.decodable_codecs", "at most 64 entries");
    if (r.stallMs > BigInt(Number.MAX_SAFE_INTEGER))
      throw invalidArgument("report.stall_ms", "must be < 2^53");
    return r;
  };

  return {
    service: {
      report(req) {
        const r = validate(req.report);
        if (!cluster.fsm.stream(r.streamId)) throw notFound("stream", r.streamId);
        sessions.delete(r.sessionId);
        sessions.set(r.sessionId, {
          streamId: r.streamId,
          renditionId: r.renditionId,
          origin: r.origin,
          bufferMs: r.bufferMs,
          stallCount: r.stallCount,
          stallMs: Number(r.stallMs),
          receivedMs: cluster.clock.nowMs(),
        });
        while (sessions.size > clientSessionsMax) {
          sessions.delete(sessions.keys().next().value as string);
        }
        return { nextReportIntervalMs: reportIntervalMs };
      },
    },
    sessionsByRendition(streamId, nowMs) {
      const out = new Map<string, number>();
      for (const s of sessions.values()) {
        if (s.streamId !== streamId || nowMs - s.receivedMs > clientSessionIdleMs) continue;
        out.set(s.renditionId, (out.get(s.renditionId) ?? 0) + 1);
      }
      return out;
    },
    summary(nowMs) {
      let n = 0;
      let stalls = 0;
      let stallMs = 0;
      for (const s of sessions.values()) {
        if (nowMs - s.receivedMs > clientSessionIdleMs) continue;
        n++;
        stalls += s.stallCount;
        stallMs += s.stallMs;
      }
      return { sessions: n, stalls, stallMs };
    },
  };
}
