/**
 * Test servers and helpers for the client SDK tests: a real Connect server
 * (common/rpc-server.ts, HTTP/1.1 + HTTP/2) implementing the coordinator's
 * HandoverService/ClientService the way the contract says, notices encoded
 * with the server side's generated code (proto/gen) so the SDK's own copy is
 * checked against it, and a bounded "wait for event" helper.
 */
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError as ServerConnectError } from "../../common/errors.ts";
import { type RpcServer, serve, startRpcServer } from "../../common/rpc-server.ts";
import {
  type ClientReport,
  ClientService,
} from "../../proto/gen/understudy/api/v1/client_service_pb.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import {
  type HandoverNotice,
  HandoverNoticeSchema,
} from "../../proto/gen/understudy/notice/v1/notice_pb.ts";

export type NoticeInit = MessageInitShape<typeof HandoverNoticeSchema>;

export function notice(init: NoticeInit): HandoverNotice {
  return create(HandoverNoticeSchema, {
    state: HandoverState.NOTIFIED,
    publishedUnixMs: BigInt(Date.now()),
    ...init,
  });
}

export function noticeBytes(init: NoticeInit): Uint8Array {
  return toBinary(HandoverNoticeSchema, notice(init));
}

export interface CoordinatorStub {
  readonly server: RpcServer;
  readonly url: string;
  /** Sets the latest notice of its stream and pushes it to open watches. */
  setLatest(n: HandoverNotice): void;
  /**
   * Sets a stream's current epoch, answered as `stream_epoch` by
   * GetLatestNotice and the send_latest_first Watch message (like the
   * coordinator: also for a stream without a notice). Unset: 0 (an older coordinator).
   */
  setStreamEpoch(streamId: string, epoch: bigint): void;
  readonly calls: { getLatestNotice: number; watchHandovers: number; report: number };
  readonly reports: ClientReport[];
  /** Open WatchHandovers streams. */
  watchers(): number;
  close(): Promise<void>;
}

export interface CoordinatorStubOptions {
  /** Leave WatchHandovers out (callers get UNIMPLEMENTED). */
  noWatch?: boolean;
  /** Answer every call UNAVAILABLE naming this leader (header and message), like a follower. */
  redirectTo?: string;
  /** ClientService.Report answers this code instead of acking. */
  reportError?: Code;
  nextReportIntervalMs?: number;
}

export async function startCoordinatorStub(
  opts: CoordinatorStubOptions = {},
): Promise<CoordinatorStub> {
  const latest = new Map<string, HandoverNotice>();
  const epochs = new Map<string, bigint>();
  const watches = new Set<(n: HandoverNotice) => void>();
  const calls = { getLatestNotice: 0, watchHandovers: 0, report: 0 };
  const reports: ClientReport[] = [];
  const redirect = () => {
    if (!opts.redirectTo) return;
    const err = new ServerConnectError(
      `node "c2" is not the leader; send writes to leader "c1" at ${opts.redirectTo}`,
      Code.Unavailable,
    );
    err.metadata.set("x-understudy-leader", opts.redirectTo);
    throw err;
  };
  const server = await startRpcServer({
    listen: "127.0.0.1:0",
    services: [
      serve(HandoverService, {
        async getLatestNotice(req) {
          calls.getLatestNotice++;
          redirect();
          const n = latest.get(req.streamId);
          return { ...(n ? { notice: n } : {}), streamEpoch: epochs.get(req.streamId) ?? 0n };
        },
        ...(opts.noWatch
          ? {}
          : {
              async *watchHandovers(req, ctx) {
                calls.watchHandovers++;
                redirect();
                const queue: { notice?: HandoverNotice; streamEpoch?: bigint }[] = [];
                let wake: (() => void) | undefined;
                const push = (n: HandoverNotice) => {
                  if (req.streamId && n.streamId !== req.streamId) return;
                  queue.push({ notice: n });
                  wake?.();
                };
                const first = latest.get(req.streamId);
                const epoch = epochs.get(req.streamId);
                if (req.sendLatestFirst && (first || epoch)) {
                  queue.push({ ...(first ? { notice: first } : {}), streamEpoch: epoch ?? 0n });
                }
                watches.add(push);
                try {
                  while (!ctx.signal.aborted) {
                    const m = queue.shift();
                    if (m) {
                      yield { ...m, streamId: req.streamId };
                      continue;
                    }
                    await new Promise<void>((resolve) => {
                      wake = resolve;
                      ctx.signal.addEventListener("abort", () => resolve(), { once: true });
                    });
                    wake = undefined;
                  }
                } finally {
                  watches.delete(push);
                }
              },
            }),
      }),
      serve(ClientService, {
        async report(req) {
          calls.report++;
          redirect();
          if (opts.reportError !== undefined) {
            throw new ServerConnectError("shedding load", opts.reportError);
          }
          if (req.report) reports.push(req.report);
          return { nextReportIntervalMs: opts.nextReportIntervalMs ?? 1000 };
        },
      }),
    ],
  });
  return {
    server,
    url: `http://${server.address}`,
    setLatest(n) {
      latest.set(n.streamId, n);
      for (const w of watches) w(n);
    },
    setStreamEpoch(sid, epoch) {
      epochs.set(sid, epoch);
    },
    calls,
    reports,
    watchers: () => watches.size,
    close: () => server.close(200),
  };
}

/**
 * Pulls events until one matches, or fails after `timeoutMs` listing what
 * arrived. Bounded in time; the iterator stays usable afterwards.
 */
export async function waitFor<T>(
  iter: AsyncIterator<T>,
  match: (ev: T) => boolean,
  timeoutMs = 5000,
  what = "event",
): Promise<T> {
  const seen: T[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      iter.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), left);
      }),
    ]);
    clearTimeout(timer);
    if (r === "timeout") break;
    if (r.done) throw new Error(`iteration ended while waiting for ${what}; saw ${show(seen)}`);
    if (match(r.value)) return r.value;
    seen.push(r.value);
  }
  throw new Error(`no ${what} within ${timeoutMs} ms; saw ${show(seen)}`);
}

function show(xs: unknown[]): string {
  return JSON.stringify(xs, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)).slice(0, 2000);
}

/** Polls `cond` every 20 ms until true or `timeoutMs` passes. */
export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
