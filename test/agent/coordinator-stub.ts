/**
 * A minimal coordinator for agent tests and the agent bench: a real
 * connect-node gRPC server (common/rpc-server.ts) implementing AgentService
 * the way agent.proto describes it. As leader it answers Hello with Welcome
 * (resume at its watermark for the agent instance), acks every accepted
 * report, drops sequences at or below its watermark (counted as duplicates)
 * and records gaps; as follower it answers Redirect and ends the stream.
 * The state object can outlive a server, to model a coordinator restart that
 * kept its history, or be fresh, to model a new leader.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type RpcServer, serve, startRpcServer } from "../../common/rpc-server.ts";
import {
  type AgentMessage,
  AgentService,
  type CoordinatorMessageSchema,
  type DirectiveResult,
  type DirectiveSchema,
  type Hello,
  type Report,
  WelcomeSchema,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";

export interface ReceivedReport {
  seq: number;
  replayed: boolean;
  heartbeatOnly: boolean;
  samples: number;
  report: Report;
}

export interface StubState {
  /** Accepted reports per agent instance id, in arrival order. */
  received: Map<string, ReceivedReport[]>;
  watermarks: Map<string, number>;
  duplicates: number;
  /** Accepted reports whose sequence was not watermark + 1. */
  gaps: number;
  hellos: Hello[];
  directiveResults: DirectiveResult[];
}

export function createStubState(): StubState {
  return {
    received: new Map(),
    watermarks: new Map(),
    duplicates: 0,
    gaps: 0,
    hellos: [],
    directiveResults: [],
  };
}

export type StubMode =
  | { kind: "leader" }
  | { kind: "follower"; leaderAddress: string; retryAfterMs?: number; leaderId?: string };

export interface CoordinatorStubOptions {
  listen?: string;
  mode?: StubMode;
  state?: StubState;
  leaderId?: string;
  term?: bigint;
  welcome?: { samplingIntervalMs?: number; heartbeatIntervalMs?: number; maxReportBytes?: number };
  /** Ack only every Nth accepted report (1 = every report). */
  ackEvery?: number;
}

export interface CoordinatorStub {
  readonly address: string;
  readonly state: StubState;
  /** Streams currently open (welcomed). */
  readonly openStreams: number;
  /** Sends a directive on every open stream. */
  sendDirective(d: MessageInitShape<typeof DirectiveSchema>): void;
  /** Ends every open stream with the given code (UNAVAILABLE = leadership lost). */
  endStreams(code?: Code): void;
  waitFor(what: string, pred: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

type OutMsg = MessageInitShape<typeof CoordinatorMessageSchema>;

/** Unbounded in principle, but a test stream carries at most a few thousand messages. */
function createQueue<T>() {
  const items: T[] = [];
  let waiting: (() => void) | undefined;
  let ended = false;
  let failure: unknown;
  const wake = () => {
    waiting?.();
    waiting = undefined;
  };
  return {
    push(x: T) {
      items.push(x);
      wake();
    },
    end() {
      ended = true;
      wake();
    },
    fail(err: unknown) {
      failure = err;
      ended = true;
      wake();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<T> {
      for (;;) {
        while (items.length > 0) yield items.shift()!;
        if (failure !== undefined) throw failure;
        if (ended) return;
        await new Promise<void>((r) => {
          waiting = r;
        });
      }
    },
  };
}

export async function startCoordinatorStub(
  opts: CoordinatorStubOptions = {},
): Promise<CoordinatorStub> {
  const state = opts.state ?? createStubState();
  const mode = opts.mode ?? { kind: "leader" };
  const ackEvery = opts.ackEvery ?? 1;
  const streams = new Set<ReturnType<typeof createQueue<OutMsg>>>();

  const impl = {
    async *connect(requests: AsyncIterable<AgentMessage>) {
      const out = createQueue<OutMsg>();
      let registered = false;
      const reader = (async () => {
        let instance: string | undefined;
        let accepted = 0;
        for await (const m of requests) {
          if (instance === undefined) {
            if (m.body.case !== "hello") {
              throw new ConnectError("first message must be hello", Code.InvalidArgument);
            }
            const hello = m.body.value;
            state.hellos.push(hello);
            if (mode.kind === "follower") {
              out.push({
                body: {
                  case: "redirect",
                  value: {
                    leaderId: mode.leaderId ?? "leader",
                    leaderAddress: mode.leaderAddress,
                    reason: "not leader",
                    retryAfterMs: mode.retryAfterMs ?? 0,
                  },
                },
              });
              out.end();
              return;
            }
            instance = hello.agentInstanceId;
            const wm = state.watermarks.get(instance) ?? 0;
            out.push({
              body: {
                case: "welcome",
                value: create(WelcomeSchema, {
                  leaderId: opts.leaderId ?? "c1",
                  term: opts.term ?? 1n,
                  coordinatorUnixMs: BigInt(Date.now()),
                  samplingIntervalMs: opts.welcome?.samplingIntervalMs ?? hello.samplingIntervalMs,
                  heartbeatIntervalMs: opts.welcome?.heartbeatIntervalMs ?? 0,
                  maxReportBytes: opts.welcome?.maxReportBytes ?? 0,
                  resumeAfterSequence: BigInt(wm),
                }),
              },
            });
            streams.add(out);
            registered = true;
            continue;
          }
          if (m.body.case === "report") {
            const r = m.body.value;
            const seq = Number(r.sequence);
            const wm = state.watermarks.get(instance) ?? 0;
            if (seq <= wm) {
              state.duplicates++;
              continue;
            }
            if (seq !== wm + 1) state.gaps++;
            state.watermarks.set(instance, seq);
            const list = state.received.get(instance) ?? [];
            state.received.set(instance, list);
            list.push({
              seq,
              replayed: r.replayed,
              heartbeatOnly: r.heartbeatOnly,
              samples: r.samples.length,
              report: r,
            });
            if (++accepted % ackEvery === 0) {
              out.push({ body: { case: "ack", value: { sequence: BigInt(seq) } } });
            }
          } else if (m.body.case === "directiveResult") {
            state.directiveResults.push(m.body.value);
          } else {
            throw new ConnectError("second hello", Code.InvalidArgument);
          }
        }
        out.end();
      })().catch((err: unknown) => out.fail(err));
      try {
        for await (const msg of out) yield msg;
        await reader;
      } finally {
        if (registered) streams.delete(out);
      }
    },
  };

  const server: RpcServer = await startRpcServer({
    listen: opts.listen ?? "127.0.0.1:0",
    services: [serve(AgentService, impl)],
  });

  return {
    address: server.address,
    state,
    get openStreams() {
      return streams.size;
    },
    sendDirective(d) {
      for (const s of streams) s.push({ body: { case: "directive", value: d } });
    },
    endStreams(code = Code.Unavailable) {
      for (const s of streams) s.fail(new ConnectError("leadership lost", code));
      streams.clear();
    },
    async waitFor(what, pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > deadline)
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      for (const s of streams) s.fail(new ConnectError("server shutting down", Code.Unavailable));
      streams.clear();
      await server.close(200);
    },
  };
}

/** Sequences received by the stub for one instance, in arrival order. */
export function receivedSeqs(state: StubState, instanceId: string): number[] {
  return (state.received.get(instanceId) ?? []).map((r) => r.seq);
}
