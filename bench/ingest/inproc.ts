/**
 * In-process part of bench:ingest: the server's cost per message without any
 * transport, to split the end-to-end number:
 * - decode alone: protobuf-es `fromBinary(AgentMessage)` against the frame
 *   (what connect-node does with `ingest.rpc`) plus the hand-written decoder,
 *   for a 30-sample report and for a heartbeat;
 * - ingest: the real AgentService handler (createAgentIngest's connect,
 *   driven directly) with the failure detector fed by liveness, on the real
 *   agent mix (per stream and second one sample report and 3 heartbeats):
 *   from frames (decode included), and from pre-decoded AgentMessages
 *   (handler only). Rates are per core-second of "agent-seconds": how many
 *   agents one core would serve if the transport were free.
 *
 * Usage (child of bench/ingest.ts): inproc.ts <streams> <seconds>; answers
 * one IPC message {type:"inproc", ...PerCoreS}.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { systemClock } from "../../common/clock.ts";
import { createLogger } from "../../common/log.ts";
import { createRng } from "../../common/rng.ts";
import { createFailureDetector } from "../../coordinator/src/detect/index.ts";
import {
  type AgentMessageFrame,
  agentMessageFrameSchema,
  createAgentIngest,
  decodeAgentFrame,
} from "../../coordinator/src/ingest/index.ts";
import {
  type AgentMessage,
  AgentMessageSchema,
  ReportSchema,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { createFakeCluster } from "../../test/unit/ingest/fake-cluster.ts";
import { sampleSet } from "./samples.ts";

const streams = Number(process.argv[2] ?? 2000);
const seconds = Number(process.argv[3] ?? 3);
/** Messages handed to the handlers per event-loop turn (like one socket read). */
const BATCH = 50;
const HEARTBEATS_PER_REPORT = 3;

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
const heartbeatBytes = (seq: number) =>
  toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, {
      body: {
        case: "report",
        value: { sequence: BigInt(seq), timestampUnixMs: BigInt(Date.now()), heartbeatOnly: true },
      },
    }),
  );

/** A pushable async iterable: what the RPC stack would hand the handler. */
function channel<T>() {
  const q: T[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  return {
    push(m: T) {
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

/** Calls f on the inputs round-robin for `seconds`; returns calls per CPU-second. */
function rate(inputs: Uint8Array[], f: (b: Uint8Array) => unknown): number {
  let n = 0;
  const c0 = cpuS();
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) f(inputs[i % inputs.length]!);
    n += 1000;
  }
  return n / (cpuS() - c0);
}

const reports = Array.from({ length: VARIANTS }, (_, i) => reportBytes(i + 1));
const heartbeats = Array.from({ length: VARIANTS }, (_, i) => heartbeatBytes(i + 1));
const protobufEs = (b: Uint8Array) => fromBinary(AgentMessageSchema, b);
const hand = (b: Uint8Array) =>
  decodeAgentFrame(fromBinary(agentMessageFrameSchema, b) as unknown as AgentMessageFrame);
const reportDecodeProtobufEsPerCoreS = rate(reports, protobufEs);
const reportDecodeHandPerCoreS = rate(reports, hand);
const heartbeatDecodeProtobufEsPerCoreS = rate(heartbeats, protobufEs);
const heartbeatDecodeHandPerCoreS = rate(heartbeats, hand);

// The handler, `streams` agent streams.
const log = createLogger({}, { level: "error" });
const cluster = createFakeCluster(systemClock);
const ingest = createAgentIngest({ cluster, clock: systemClock, log });
const detector = createFailureDetector({ cluster, clock: systemClock, log, graceMs: 60_000 });
ingest.onLiveness((id, hb) => detector.observe(id, hb));
await ingest.start();
detector.start();
type In = AgentMessage | AgentMessageFrame;
const chans = Array.from({ length: streams }, () => channel<In>());
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
    for await (const _ of ingest.service.connect!(ch as AsyncIterable<AgentMessage>, ctx)) outs++;
  })();
}
for (let k = 0; k < 100 && ingest.stats().activeStreams < streams; k++)
  await new Promise((r) => setTimeout(r, 20));

/** Wire bytes of AgentMessage{report} with another sequence (varint right after the tags). */
function withSequence(bytes: Uint8Array, seq: number): Uint8Array {
  const m = fromBinary(AgentMessageSchema, bytes);
  if (m.body.case === "report") m.body.value.sequence = BigInt(seq);
  return toBinary(AgentMessageSchema, m);
}

/**
 * Feeds each stream one report and 3 heartbeats per round for `seconds`;
 * returns agent-seconds (rounds × streams) per CPU-second. From frames, each
 * message is parsed as connect-node would (fromBinary of the frame) and
 * decoded by the handler; pre-decoded messages are shared between streams
 * (the handler copies what it keeps).
 */
const run = async (
  frames: boolean,
  seq0: number,
): Promise<{ perCoreS: number; lastSeq: number }> => {
  const r0 = ingest.stats().reports;
  const c1 = cpuS();
  const end = performance.now() + seconds * 1000;
  let seq = seq0;
  let rounds = 0;
  while (performance.now() < end) {
    for (let k = 0; k <= HEARTBEATS_PER_REPORT; k++) {
      seq++;
      const bytes = (k === 0 ? reports : heartbeats).map((b) => withSequence(b, seq));
      const decoded = frames ? [] : bytes.map((b) => fromBinary(AgentMessageSchema, b));
      for (let i = 0; i < streams; i++) {
        const v = (i + seq) % VARIANTS;
        chans[i]!.push(
          frames
            ? (fromBinary(agentMessageFrameSchema, bytes[v]!) as unknown as AgentMessageFrame)
            : decoded[v]!,
        );
        if (i % BATCH === BATCH - 1) await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setImmediate(r));
    }
    rounds++;
  }
  const want = rounds * (HEARTBEATS_PER_REPORT + 1) * streams;
  for (let k = 0; k < 500 && ingest.stats().reports - r0 < want; k++) {
    await new Promise((r) => setImmediate(r));
  }
  return { perCoreS: (rounds * streams) / (cpuS() - c1), lastSeq: seq };
};
const fromFrames = await run(true, 0);
const preDecoded = await run(false, fromFrames.lastSeq);
for (const ch of chans) ch.end();
detector.close();
await ingest.close();
process.send?.(
  {
    type: "inproc",
    streams,
    reportDecodeProtobufEsPerCoreS,
    reportDecodeHandPerCoreS,
    heartbeatDecodeProtobufEsPerCoreS,
    heartbeatDecodeHandPerCoreS,
    ingestAgentSecondsFromFramesPerCoreS: fromFrames.perCoreS,
    ingestAgentSecondsPreDecodedPerCoreS: preDecoded.perCoreS,
    outs,
  },
  () => process.exit(0),
);
