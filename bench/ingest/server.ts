/**
 * Coordinator side of bench:ingest, one process per mode, driven over IPC:
 *
 * - "ours": the real AgentService (createAgentIngest) served by
 *   common/rpc-server.ts as the coordinator wires it: `ingest.rawGrpc` for
 *   gRPC (what the grpc-js agents use), `ingest.rpc` behind connect-node for
 *   gRPC-Web/Connect, with the failure detector fed by
 *   ingest's liveness, history files in a temp dir, and a fake single-node
 *   leader ClusterHandle over the real FSM.
 * - "baseline": a plain @grpc/grpc-js server whose bidi handler only decodes
 *   each AgentMessage with protobuf-es (and answers Hello with a Welcome so
 *   agents proceed): the floor any gRPC ingest in Node pays for these bytes.
 *
 * Both record ingest-to-window latency from the "bench.sent_ms" sample (the
 * agent's send time, performance.timeOrigin + now()) to the moment the report
 * is in the windows (ours) or decoded (baseline).
 *
 * IPC: sends {type:"ready", address}; answers {type:"stats"} with cumulative
 * counters, own CPU time (process.cpuUsage: all threads) and the latency
 * quantiles since the previous stats request.
 */
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { systemClock } from "../../common/clock.ts";
import { createLogger } from "../../common/log.ts";
import { type ServiceRegistration, startRpcServer } from "../../common/rpc-server.ts";
import { createFailureDetector } from "../../coordinator/src/detect/index.ts";
import {
  type AgentMessageFrame,
  agentIngestReadMaxBytes,
  agentMessageFrameSchema,
  agentServiceFrames,
  createAgentIngest,
  type DecodedBody,
  decodeAgentFrame,
} from "../../coordinator/src/ingest/index.ts";
import {
  type AgentMessage,
  AgentMessageSchema,
  CoordinatorMessageSchema,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { createFakeCluster } from "../../test/unit/ingest/fake-cluster.ts";
import { createLatencyHistogram } from "./histogram.ts";

const mode = process.argv[2];
if (mode !== "ours" && mode !== "baseline" && mode !== "connect" && mode !== "h2raw") {
  process.stderr.write("usage: server.ts ours|baseline|connect|h2raw [heartbeatMs]\n");
  process.exit(2);
}
const heartbeatMs = Number(process.argv[3] ?? 250);
const send = (m: unknown) => process.send?.(m);
const nowHiRes = () => performance.timeOrigin + performance.now();
const latency = createLatencyHistogram();
let reports = 0;
let samples = 0;
let heartbeats = 0;
let close: () => Promise<void> = async () => {};
let counts = () => ({ reports, samples, heartbeats });
let extra: () => Record<string, unknown> = () => ({});

const SENT = "bench.sent_ms";

/** Counts a message decoded by the floors (connect, h2raw) and records its latency. */
function countDecoded(b: DecodedBody): void {
  if (b.case !== "report") return;
  if (b.value.heartbeatOnly) {
    heartbeats++;
    return;
  }
  reports++;
  samples += b.value.samples.length;
  const s0 = b.value.samples[0];
  if (s0 !== undefined && s0.name === SENT) latency.record(nowHiRes() - s0.value);
}

if (mode === "ours") {
  const log = createLogger({ bench: "ingest-server" }, { level: "warn" });
  const dir = mkdtempSync(join(tmpdir(), "understudy-bench-ingest-"));
  const cluster = createFakeCluster(systemClock);
  // The production defaults (windows, history, componentsMax), so RSS per
  // agent is what an operator would see; only the heartbeat interval the
  // Welcome announces follows the agents' schedule (0 = reports only).
  const limits = {
    heartbeatIntervalMs: heartbeatMs > 0 ? heartbeatMs : 1000,
    ...(process.env.BENCH_ACK_INTERVAL_MS
      ? { ackIntervalMs: Number(process.env.BENCH_ACK_INTERVAL_MS) }
      : {}),
  };
  const ingest = createAgentIngest({
    cluster,
    clock: systemClock,
    log,
    limits,
    historyDir: join(dir, "history"),
  });
  const detector = createFailureDetector({ cluster, clock: systemClock, log, graceMs: 5000 });
  ingest.onLiveness((id, hb) => detector.observe(id, hb));
  ingest.onReport((r) => {
    if (r.heartbeatOnly) heartbeats++;
    const s0 = r.samples[0];
    if (s0 !== undefined && s0.name === SENT) latency.record(nowHiRes() - s0.value);
  });
  await ingest.start();
  detector.start();
  const server = await startRpcServer({
    listen: "127.0.0.1:0",
    // What the coordinator registers (control-plane.ts): the raw gRPC route
    // for grpc-js agents, ingest.rpc (frames + hand-written decoder) for the rest.
    rawGrpc: [ingest.rawGrpc],
    services: [ingest.rpc],
    readMaxBytes: agentIngestReadMaxBytes(),
  });
  extra = () => {
    const st = ingest.stats();
    const d = detector.stats();
    return {
      activeStreams: st.activeStreams,
      duplicates: st.duplicateReports,
      rejected: Object.values(st.rejected).reduce((a, b) => a + b, 0),
      historyRecords: st.history?.recordsWritten ?? 0,
      historyDropped: st.history?.recordsDropped ?? 0,
      // Absent before the series store accounted its bytes.
      metricBytes: (st as { metricBytes?: number }).metricBytes ?? Number.NaN,
      statusProposals: d.proposed.suspect + d.proposed.down + d.proposed.healthy,
      stallMs: d.stallTotalMs,
      down: d.states.down,
      suspect: d.states.suspect,
    };
  };
  counts = () => {
    const st = ingest.stats();
    // Sample reports and heartbeat-only reports counted apart.
    return { reports: st.reports - heartbeats, samples: st.samples, heartbeats };
  };
  close = async () => {
    detector.close();
    await ingest.close();
    await server.close(500);
    rmSync(dir, { recursive: true, force: true });
  };
  send({ type: "ready", address: server.address, rssBytes: process.memoryUsage().rss });
} else if (mode === "connect") {
  // The transport floor of "ours": the same rpc-server and frames
  // registration, the hand-written decoder, and nothing else.
  let streams = 0;
  const impl = {
    async *connect(requests: AsyncIterable<AgentMessageFrame>) {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      streams++;
      try {
        yield {
          body: {
            case: "welcome" as const,
            value: { leaderId: "floor", term: 1n, heartbeatIntervalMs: heartbeatMs || 1000 },
          },
        };
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          countDecoded(decodeAgentFrame(n.value));
        }
      } finally {
        streams--;
      }
    },
  };
  const server = await startRpcServer({
    listen: "127.0.0.1:0",
    services: [
      { service: agentServiceFrames, impl: impl as unknown as ServiceRegistration["impl"] },
    ],
    readMaxBytes: agentIngestReadMaxBytes(),
  });
  extra = () => ({ activeStreams: streams });
  close = () => server.close(500);
  send({ type: "ready", address: server.address, rssBytes: process.memoryUsage().rss });
} else if (mode === "h2raw") {
  // What a minimal gRPC handler on node:http2 would cost (an experiment for
  // the report, not a server to ship: no deadlines, flow control tuning,
  // error statuses or other protocols): envelopes split by hand from the
  // stream's DATA chunks, the frame parse plus the hand-written decoder.
  const welcome = toBinary(
    CoordinatorMessageSchema,
    create(CoordinatorMessageSchema, {
      body: {
        case: "welcome",
        value: { leaderId: "raw", term: 1n, heartbeatIntervalMs: heartbeatMs || 1000 },
      },
    }),
  );
  const welcomeEnvelope = Buffer.alloc(5 + welcome.length);
  welcomeEnvelope.writeUInt32BE(welcome.length, 1);
  welcomeEnvelope.set(welcome, 5);
  let streams = 0;
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    if (headers[":path"] !== "/understudy.agent.v1.AgentService/Connect") {
      stream.respond({ ":status": 404 });
      stream.end();
      return;
    }
    streams++;
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.on("error", () => {});
    stream.on("close", () => {
      streams--;
    });
    let pending: Buffer | undefined;
    let welcomed = false;
    stream.on("data", (chunk: Buffer) => {
      const b = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
      let p = 0;
      while (b.length - p >= 5) {
        const len = b.readUInt32BE(p + 1);
        if (b.length - p - 5 < len) break;
        const msg = b.subarray(p + 5, p + 5 + len);
        p += 5 + len;
        if (!welcomed) {
          welcomed = true;
          stream.write(welcomeEnvelope);
          continue;
        }
        countDecoded(
          decodeAgentFrame(
            fromBinary(agentMessageFrameSchema, msg) as unknown as AgentMessageFrame,
          ),
        );
      }
      pending = p < b.length ? b.subarray(p) : undefined;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  extra = () => ({ activeStreams: streams });
  close = async () => {
    server.close();
  };
  send({ type: "ready", address: `127.0.0.1:${port}`, rssBytes: process.memoryUsage().rss });
} else {
  const server = new grpc.Server({ "grpc.max_receive_message_length": agentIngestReadMaxBytes() });
  const welcome = Buffer.from(
    toBinary(
      CoordinatorMessageSchema,
      create(CoordinatorMessageSchema, {
        body: { case: "welcome", value: { leaderId: "base", term: 1n, heartbeatIntervalMs: 1000 } },
      }),
    ),
  );
  let streams = 0;
  server.addService(
    {
      connect: {
        path: "/understudy.agent.v1.AgentService/Connect",
        requestStream: true,
        responseStream: true,
        requestDeserialize: (b: Buffer) => fromBinary(AgentMessageSchema, b),
        requestSerialize: (m: AgentMessage) => Buffer.from(toBinary(AgentMessageSchema, m)),
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      connect: (call: grpc.ServerDuplexStream<AgentMessage, Buffer>) => {
        streams++;
        call.on("data", (m: AgentMessage) => {
          if (m.body.case === "hello") {
            call.write(welcome);
          } else if (m.body.case === "report" && m.body.value.heartbeatOnly) {
            heartbeats++;
          } else if (m.body.case === "report") {
            reports++;
            samples += m.body.value.samples.length;
            const s0 = m.body.value.samples[0];
            if (s0 !== undefined && s0.name === SENT) latency.record(nowHiRes() - s0.value);
          }
        });
        call.on("end", () => {
          streams--;
          call.end();
        });
        call.on("error", () => {
          streams--;
        });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  extra = () => ({ activeStreams: streams });
  close = async () => {
    server.forceShutdown();
  };
  send({ type: "ready", address: `127.0.0.1:${port}`, rssBytes: process.memoryUsage().rss });
}

process.on("message", async (m: { type: string }) => {
  if (m.type === "stats") {
    const cpu = process.cpuUsage();
    send({
      type: "stats",
      atMs: performance.now(),
      cpuUs: cpu.user + cpu.system,
      ...counts(),
      latencyP50Ms: latency.quantile(0.5),
      latencyP99Ms: latency.quantile(0.99),
      latencyMaxMs: latency.max(),
      latencyCount: latency.count,
      ...(() => {
        const m = process.memoryUsage();
        return {
          rssBytes: m.rss,
          heapUsedBytes: m.heapUsed,
          externalBytes: m.external,
          arrayBuffersBytes: m.arrayBuffers,
        };
      })(),
      ...extra(),
    });
    latency.reset();
  } else if (m.type === "heapsnapshot") {
    // Diagnostics: a heap snapshot of this server (read it with summarize.ts heap).
    const file = writeHeapSnapshot((m as { file?: string }).file);
    send({ type: "heapsnapshot", file });
  } else if (m.type === "stop") {
    await close();
    process.exit(0);
  }
});
