/**
 * AgentService served as `ingest.rpc` (frames + the hand-written decoder) and
 * as `serve(AgentService, ingest.service)` (protobuf-es first): the same
 * reports end up in the same windows and listeners for gRPC binary clients,
 * and a Connect JSON client works on the frames registration too; malformed
 * bytes end the stream with INVALID_ARGUMENT; reflection still describes
 * agent.proto.
 */
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { createGrpcClient } from "../../../common/grpc-client.ts";
import type { IngestedReport } from "../../../coordinator/src/ingest/index.ts";
import { ServerReflection } from "../../../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import {
  type AgentMessage,
  AgentMessageSchema,
  AgentService,
  ProbeKind,
} from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { helloFor } from "./agent-conn.ts";
import { type Harness, report, sample, startHarness, T0, until } from "./harness.ts";

const reports = () => [
  report(1, T0, [
    sample("cpu.load", 0.25),
    sample("fs.used_ratio", 0.5, { labels: { mount: "/data" } }),
    sample("net.rx_errors_per_s", 0, { unit: "count_per_second" }),
  ]),
  report(2, T0 + 250, [], { heartbeatOnly: true }),
  report(3, T0 + 1000, [sample("cpu.load", 0.75)], {
    probes: [
      {
        kind: ProbeKind.HTTP,
        target: "http://x/",
        ok: true,
        latencyMs: 12,
        values: { http_status: 200 },
      },
    ],
  }),
];

/** What the windows and listeners hold after `reports()`, comparable across registrations. */
function snapshot(h: Harness, events: IngestedReport[]) {
  const store = h.ingest.component("pkg-1")!;
  return {
    series: store
      .series()
      .map((s) => [s.key, s.raw.size, s.raw.lastValue()])
      .sort(),
    events: events.map((e) => ({
      seq: e.sequence,
      hb: e.heartbeatOnly,
      samples: e.samples
        .filter((s) => s.name !== "heartbeat.interval_ms")
        .map((s) => [s.name, s.value, s.unit, { ...s.labels }]),
    })),
    stats: { reports: h.ingest.stats().reports, samples: h.ingest.stats().samples },
  };
}

async function grpcRun(registration: "frames" | "classic") {
  const h = await startHarness({ registration });
  const events: IngestedReport[] = [];
  h.ingest.onReport((e) => events.push(e));
  try {
    const c = h.conn();
    c.hello(helloFor("pkg-1"));
    assert.equal((await c.next()).body.case, "welcome");
    for (const r of reports()) c.report(r);
    await until(() => h.ingest.stats().reports === 3, "3 reports");
    return snapshot(h, events);
  } finally {
    await h.close();
  }
}

describe("ingest: AgentService registrations and codecs", () => {
  it("frames and classic registrations store the same reports (grpc-js, binary)", async () => {
    const frames = await grpcRun("frames");
    const classic = await grpcRun("classic");
    assert.deepStrictEqual(frames, classic);
    assert.equal(frames.stats.reports, 3);
    assert.ok(frames.series.some(([k]) => k === 'fs.used_ratio{mount="/data"}'));
    assert.ok(frames.series.some(([k]) => k === 'probe.http.latency_ms{target="http://x/"}'));
  });

  it("a Connect JSON client streams through the frames registration", async () => {
    const h = await startHarness({});
    const events: IngestedReport[] = [];
    h.ingest.onReport((e) => events.push(e));
    try {
      const transport = createConnectTransport({
        baseUrl: `http://${h.server.address}`,
        httpVersion: "2",
        useBinaryFormat: false,
      });
      const client = createClient(AgentService, transport);
      let push: ((m: AgentMessage) => void) | undefined;
      const queue: AgentMessage[] = [];
      let done = false;
      async function* requests() {
        for (;;) {
          const m = queue.shift();
          if (m !== undefined) {
            yield m;
            continue;
          }
          if (done) return;
          await new Promise<void>((r) => {
            push = (x) => {
              queue.push(x);
              r();
            };
          });
        }
      }
      const send = (m: AgentMessage) => (push ? push(m) : queue.push(m));
      const abort = new AbortController();
      const responses = client.connect(requests(), { signal: abort.signal });
      send(create(AgentMessageSchema, { body: { case: "hello", value: helloFor("pkg-1") } }));
      const it = responses[Symbol.asyncIterator]();
      const first = await it.next();
      assert.equal(first.value?.body.case, "welcome");
      for (const r of reports())
        send(create(AgentMessageSchema, { body: { case: "report", value: r } }));
      await until(() => h.ingest.stats().reports === 3, "3 JSON reports");
      const json = snapshot(h, events);
      done = true;
      abort.abort();
      const binary = await grpcRun("frames");
      assert.deepStrictEqual(json, binary);
    } finally {
      await h.close();
    }
  });

  it("malformed bytes end the stream with INVALID_ARGUMENT and store nothing", async () => {
    const h = await startHarness({});
    const raw = new grpc.Client(h.server.address, grpc.credentials.createInsecure());
    try {
      const call = raw.makeBidiStreamRequest(
        "/understudy.agent.v1.AgentService/Connect",
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      call.on("error", () => {});
      const welcome = new Promise<Buffer>((resolve) => call.once("data", resolve));
      call.write(
        Buffer.from(
          toBinary(
            AgentMessageSchema,
            create(AgentMessageSchema, { body: { case: "hello", value: helloFor("pkg-1") } }),
          ),
        ),
      );
      await welcome;
      // report{samples: [{name: "x", value: <4 of 8 bytes>}]}
      call.write(Buffer.from("120a1a080a01781100000000", "hex"));
      const st = await ended;
      assert.equal(st.code, grpc.status.INVALID_ARGUMENT);
      assert.match(decodeURIComponent(st.details), /malformed AgentMessage: .*premature EOF/);
      assert.equal(h.ingest.stats().rejected.unreadable_message, 1);
      assert.equal(h.ingest.stats().reports, 0);
    } finally {
      raw.close();
      await h.close();
    }
  });

  it("reflection still describes agent.proto's AgentMessage as the Connect input", async () => {
    const h = await startHarness({});
    const c = createGrpcClient(ServerReflection, h.server.address);
    try {
      const call = c.serverReflectionInfo();
      call.send({
        messageRequest: { case: "fileContainingSymbol", value: "understudy.agent.v1.AgentService" },
      });
      call.end();
      const answers = [];
      for await (const r of call.responses) answers.push(r);
      const files = answers[0]?.messageResponse;
      assert.equal(files?.case, "fileDescriptorResponse");
      if (files?.case !== "fileDescriptorResponse") return;
      const first = fromBinary(FileDescriptorProtoSchema, files.value.fileDescriptorProto[0]!);
      assert.equal(first.name, "understudy/agent/v1/agent.proto");
      const method = first.service.find((s) => s.name === "AgentService")?.method[0];
      assert.equal(method?.inputType, ".understudy.agent.v1.AgentMessage");
    } finally {
      c.close();
      await h.close();
    }
  });
});
