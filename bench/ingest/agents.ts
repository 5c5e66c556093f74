/**
 * Simulated agents for bench:ingest: one process multiplexing many agent
 * streams (grpc-js, `streamsPerConn` streams per HTTP/2 connection), each
 * sending Hello and then a ~30-sample Report at 1 Hz with its own phase, and
 * between reports heartbeat-only Reports every `heartbeatMs` like the real
 * agent (agent/src/agent.ts: a heartbeat when the stream has been quiet for
 * 0.9 heartbeat intervals; at the default 250 ms that is 3 heartbeats per
 * sample report). `heartbeatMs` 0 = sample reports only.
 *
 * Reports are encoded by hand around pre-encoded sample blocks (protobuf
 * wire format: AgentMessage.report{sequence, timestamp_unix_ms, samples}) so
 * that the agent processes stay cheap and the coordinator gets the CPU. The
 * first sample, "bench.sent_ms", carries the send time for latency.
 *
 * IPC: {type:"target", address, count} answers {type:"opening"} and opens
 * streams up to count in the background;
 * {type:"stats"} answers counters and own CPU; {type:"stop"} exits.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { createRng } from "../../common/rng.ts";
import { AgentMessageSchema, ReportSchema } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { sampleSet } from "./samples.ts";

const procIndex = Number(process.argv[2] ?? 0);
const streamsPerConn = Number(process.argv[3] ?? 50);
const pendingMax = Number(process.argv[4] ?? 100);
const heartbeatMs = Number(process.argv[5] ?? 250);
const PATH = "/understudy.agent.v1.AgentService/Connect";
const SLOTS = 100; // 10 ms slots over one second
const rng = createRng(1000 + procIndex);

const VARIANTS = 8;
const blocks = Array.from({ length: VARIANTS }, () =>
  Buffer.from(toBinary(ReportSchema, create(ReportSchema, { samples: sampleSet(rng) }))),
);

function varint(n: number, out: number[]): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

const SENT_NAME = Buffer.from("bench.sent_ms");
function encodeReport(seq: number, tsMs: number, sentMs: number, block: Buffer): Buffer {
  const head: number[] = [0x08];
  varint(seq, head);
  head.push(0x10);
  varint(tsMs, head);
  // samples[0] = {name: "bench.sent_ms", value: sentMs, unit: "ms"}
  const sample = Buffer.alloc(2 + SENT_NAME.length + 9 + 4);
  let o = 0;
  sample[o++] = 0x0a;
  sample[o++] = SENT_NAME.length;
  SENT_NAME.copy(sample, o);
  o += SENT_NAME.length;
  sample[o++] = 0x11;
  sample.writeDoubleLE(sentMs, o);
  o += 8;
  sample[o++] = 0x1a;
  sample[o++] = 2;
  sample[o++] = 0x6d; // m
  sample[o++] = 0x73; // s
  head.push(0x1a, sample.length);
  const bodyLen = head.length + sample.length + block.length;
  const env: number[] = [0x12];
  varint(bodyLen, env);
  return Buffer.concat([Buffer.from(env), Buffer.from(head), sample, block]);
}

/** AgentMessage.report{sequence, timestamp_unix_ms, heartbeat_only: true}. */
function encodeHeartbeat(seq: number, tsMs: number): Buffer {
  const body: number[] = [0x08];
  varint(seq, body);
  body.push(0x10);
  varint(tsMs, body);
  body.push(0x28, 0x01);
  const env: number[] = [0x12];
  varint(body.length, env);
  return Buffer.from([...env, ...body]);
}

/**
 * Heartbeat offsets after a sample report, in slots: k × heartbeatMs while
 * the next sample report is still more than 0.9 intervals away.
 */
const heartbeatSlots: number[] = [];
if (heartbeatMs > 0) {
  for (let k = 1; k * heartbeatMs <= 1000 - 0.9 * heartbeatMs && k < 100; k++) {
    heartbeatSlots.push(Math.round((k * heartbeatMs) / (1000 / SLOTS)));
  }
}

interface Stream {
  call: grpc.ClientDuplexStream<Buffer, Buffer>;
  seq: number;
  welcomed: boolean;
  dead: boolean;
  variant: number;
}

const clients: grpc.Client[] = [];
const slots: Stream[][] = Array.from({ length: SLOTS }, () => []);
const all: Stream[] = [];
const c = {
  welcomed: 0,
  sent: 0,
  heartbeats: 0,
  acks: 0,
  errors: 0,
  redirects: 0,
  blocked: 0,
};
let address = "";

function openStream(i: number): void {
  if (i % streamsPerConn === 0) {
    clients.push(
      new grpc.Client(address, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
        "grpc.max_receive_message_length": 4 * 1024 * 1024,
      }),
    );
  }
  const client = clients[clients.length - 1]!;
  const call = client.makeBidiStreamRequest(
    PATH,
    (b: Buffer) => b,
    (b: Buffer) => b,
    new grpc.Metadata(),
    {},
  );
  const s: Stream = { call, seq: 0, welcomed: false, dead: false, variant: i % VARIANTS };
  call.on("data", (b: Buffer) => {
    const tag = b[0];
    if (tag === 0x0a && !s.welcomed) {
      s.welcomed = true;
      c.welcomed++;
    } else if (tag === 0x1a) c.acks++;
    else if (tag === 0x12) c.redirects++;
  });
  call.on("error", () => {
    if (!s.dead) c.errors++;
    s.dead = true;
  });
  call.on("status", () => {});
  const hello = toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, {
      body: {
        case: "hello",
        value: {
          componentId: `bench-${procIndex}-${i}`,
          role: ComponentRole.PACKAGER,
          host: `bench-${procIndex}-${i}.local`,
          agentInstanceId: `p${process.pid}-${i}`,
          samplingIntervalMs: 1000,
          softwareVersion: "bench",
        },
      },
    }),
  );
  call.write(Buffer.from(hello));
  all.push(s);
  slots[rng.int(0, SLOTS - 1)]!.push(s);
}

// Slots are driven by elapsed time, not by timer count: a late timer sends
// every slot it skipped, so each stream really reports at 1 Hz.
let slot = 0;
let nextSlotMs = performance.now();
const SLOT_MS = 1000 / SLOTS;
const timer = setInterval(() => {
  const nowMono = performance.now();
  const now = Date.now();
  const sentMs = performance.timeOrigin + nowMono;
  for (let k = 0; k < SLOTS && nextSlotMs <= nowMono; k++) {
    for (const s of slots[slot]!) {
      if (!s.welcomed || s.dead) continue;
      s.seq++;
      s.variant = (s.variant + 1) % VARIANTS;
      if (!s.call.write(encodeReport(s.seq, now, sentMs, blocks[s.variant]!))) c.blocked++;
      c.sent++;
    }
    for (const off of heartbeatSlots) {
      for (const s of slots[(slot - off + SLOTS) % SLOTS]!) {
        if (!s.welcomed || s.dead || s.seq === 0) continue;
        s.seq++;
        if (!s.call.write(encodeHeartbeat(s.seq, now))) c.blocked++;
        c.heartbeats++;
      }
    }
    slot = (slot + 1) % SLOTS;
    nextSlotMs += SLOT_MS;
  }
}, SLOT_MS);

process.on("message", async (m: { type: string; address?: string; count?: number }) => {
  if (m.type === "target") {
    address = m.address!;
    const target = m.count!;
    process.send?.({ type: "opening", target });
    // Closed-loop ramp: at most `pendingMax` streams wait for their Welcome,
    // so the server sees a steady trickle of Hellos, never one huge burst.
    for (let guard = 0; all.length < target && guard < 10_000_000; guard++) {
      if (all.length - c.welcomed - c.errors < pendingMax) openStream(all.length);
      else await new Promise((r) => setTimeout(r, 5));
    }
  } else if (m.type === "stats") {
    const cpu = process.cpuUsage();
    process.send?.({ type: "stats", cpuUs: cpu.user + cpu.system, streams: all.length, ...c });
  } else if (m.type === "stop") {
    clearInterval(timer);
    for (const s of all) s.call.cancel();
    for (const cl of clients) cl.close();
    process.send?.({ type: "stopped" }, () => process.exit(0));
  }
});
process.send?.({ type: "ready" });
