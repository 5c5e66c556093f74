/**
 * In-process part of bench:ingest, to split the server's cost per report
 * without any transport: (1) protobuf-es decode of the wire bytes alone,
 * (2) decode plus the real AgentService handler (createAgentIngest.connect
 * driven directly, with the failure detector fed by liveness). The
 * difference is what ingest itself costs; the rest of the end-to-end number
 * is the RPC stack (connect-node, HTTP/2).
 *
 * Usage (child of bench/ingest.ts): inproc.ts <streams> <seconds>; answers
 * one IPC message {type:"inproc", decodeOnlyPerCoreS, handlerPerCoreS}.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { systemClock } from "../../common/clock.ts";
import { createLogger } from "../../common/log.ts";
import { createRng } from "../../common/rng.ts";
import { createFailureDetector } from "../../coordinator/src/detect/index.ts";
import { createAgentIngest } from "../../coordinator/src/ingest/index.ts";
import {
  type AgentMessage,
  AgentMessageSchema,
  ReportSchema,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { createFakeCluster } from "../../test/unit/ingest/fake-cluster.ts";
import { sampleSet } from "./samples.ts";

const streams = Number(process.argv[2] ?? 2000);
const seconds = Number(process.argv[3] ?? 4);
/** Messages handed to the handlers per event-loop turn. */
const BATCH = 50;

const VARIANTS = 8;
const rng = createRng(7);
const reportBytes = (seq: number) =>
  toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, {
      body: {
        case: "report",
        value: create(ReportSchema, {
          sequence: BigInt(seq),
          timestampUnixMs: BigInt(Date.now()),
          samples: [{ name: "bench.sent_ms", value: 1, unit: "ms" }, ...sampleSet(rng)],
        }),
      },
    }),
  );

/** A pushable async iterable: what the RPC stack would hand the handler. */
function channel() {
  const q: AgentMessage[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  return {
    push(m: AgentMessage) {
      q.push(m);
      wake?.();
      wake = undefined;
    },
    end() {
      done = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const m = q.shift();
        if (m !== undefined) {
          yield m;
          continue;
        }
        if (done) return;
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
  };
}

const cpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// (1) decode only.
const wire = Array.from({ length: VARIANTS }, (_, i) => reportBytes(i + 1));
let n = 0;
const c0 = cpuS();
const end1 = performance.now() + seconds * 1000;
while (performance.now() < end1) {
  for (let i = 0; i < 1000; i++) fromBinary(AgentMessageSchema, wire[i % VARIANTS]!);
  n += 1000;
}
const decodeOnlyPerCoreS = n / (cpuS() - c0);

// (2) decode + handler, `streams` agent streams, one report per stream per round.
const log = createLogger({}, { level: "error" });
const cluster = createFakeCluster(systemClock);
const ingest = createAgentIngest({
  cluster,
  clock: systemClock,
  log,
  limits: {
    rawSamplesPerSeries: 16,
    historyBucketsPerSeries: 6,
    seriesPerComponentMax: 40,
    heartbeatIntervalMs: 1000,
  },
});
const detector = createFailureDetector({ cluster, clock: systemClock, log, graceMs: 60_000 });
ingest.onLiveness((id, hb) => detector.observe(id, hb));
await ingest.start();
detector.start();
const chans = Array.from({ length: streams }, () => channel());
let outs = 0;
const ctx = {} as HandlerContext;
for (let i = 0; i < streams; i++) {
  const ch = chans[i]!;
  ch.push(
    create(AgentMessageSchema, {
      body: {
        case: "hello",
        value: {
          componentId: `inproc-${i}`,
          role: ComponentRole.PACKAGER,
          host: "h",
          agentInstanceId: `i${i}`,
          samplingIntervalMs: 1000,
        },
      },
    }),
  );
  void (async () => {
    for await (const _ of ingest.service.connect!(ch, ctx)) outs++;
  })();
}
for (let k = 0; k < 100 && ingest.stats().activeStreams < streams; k++)
  await new Promise((r) => setTimeout(r, 20));
/** Feeds one report per stream per round for `seconds`; returns reports per CPU-second. */
const run = async (
  decodeEach: boolean,
  seq0: number,
): Promise<{ perCoreS: number; lastSeq: number }> => {
  const pre = wire.map((b) => fromBinary(AgentMessageSchema, b));
  const r0 = ingest.stats().reports;
  const c1 = cpuS();
  const end = performance.now() + seconds * 1000;
  let seq = seq0;
  while (performance.now() < end) {
    seq++;
    const sequence = BigInt(seq);
    for (const m of pre) if (m.body.case === "report") m.body.value.sequence = sequence;
    for (let i = 0; i < streams; i++) {
      const v = (i + seq) % VARIANTS;
      let m: AgentMessage;
      if (decodeEach) {
        m = fromBinary(AgentMessageSchema, wire[v]!);
        if (m.body.case === "report") m.body.value.sequence = sequence;
      } else {
        // Shared pre-decoded message: the handler reads it synchronously
        // before the next round changes its sequence.
        m = pre[v]!;
      }
      chans[i]!.push(m);
      // Like a socket read: a few dozen messages, then the handlers run.
      if (i % BATCH === BATCH - 1) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setImmediate(r));
  }
  const want = (seq - seq0) * streams;
  for (let k = 0; k < 200 && ingest.stats().reports - r0 < want; k++) {
    await new Promise((r) => setImmediate(r));
  }
  return { perCoreS: (ingest.stats().reports - r0) / (cpuS() - c1), lastSeq: seq };
};
const withDecode = await run(true, 0);
const handlerOnly = await run(false, withDecode.lastSeq);
const handlerPerCoreS = withDecode.perCoreS;
const handlerOnlyPerCoreS = handlerOnly.perCoreS;
for (const ch of chans) ch.end();
detector.close();
await ingest.close();
process.send?.(
  { type: "inproc", decodeOnlyPerCoreS, handlerPerCoreS, handlerOnlyPerCoreS, streams, outs },
  () => process.exit(0),
);
