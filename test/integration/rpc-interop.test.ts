/**
 * One server stack, many clients: a connect-node server must answer standard
 * gRPC clients — @grpc/grpc-js with our generated descriptors, and a client
 * loaded by @grpc/proto-loader straight from the .proto files (no generated
 * code) — for unary, server-streaming, client-streaming and bidi calls, plus
 * health, reflection and the Connect protocol over HTTP/1.1.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { fileURLToPath } from "node:url";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { ServingStatus } from "../../common/rpc-health.ts";
import { type RpcServer, serve, startRpcServer } from "../../common/rpc-server.ts";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import { AgentService } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import {
  ClusterService,
  GetStatusResponseSchema,
} from "../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { RaftService } from "../../proto/gen/understudy/raft/v1/raft_pb.ts";

const protoRoot = fileURLToPath(new URL("../../proto", import.meta.url));

async function startTestServer(): Promise<RpcServer> {
  return startRpcServer({
    listen: "127.0.0.1:0",
    services: [
      serve(ClusterService, {
        getStatus: () =>
          create(GetStatusResponseSchema, { node: { nodeId: "c1", term: 7n, leaderId: "c2" } }),
      }),
      serve(ChainService, {
        async *watchChain(req) {
          for (let v = 1n; v <= 3n; v++) yield { graph: { streamId: req.streamId, version: v } };
        },
      }),
      serve(AgentService, {
        async *connect(reqs) {
          for await (const m of reqs) {
            if (m.body.case === "hello") {
              yield { body: { case: "welcome", value: { leaderId: "c1", term: 3n } } };
            } else if (m.body.case === "report") {
              yield { body: { case: "ack", value: { sequence: m.body.value.sequence } } };
            }
          }
        },
      }),
      serve(RaftService, {
        async installSnapshot(chunks) {
          let bytes = 0n;
          let last = 0n;
          for await (const c of chunks) {
            bytes += BigInt(c.data.length);
            last = c.lastIncludedIndex;
          }
          return { from: "c2", to: "c1", term: 1n, matchIndex: last + bytes, success: true };
        },
      }),
    ],
  });
}

describe("RPC interop: connect-node server, standard gRPC clients", () => {
  let server: RpcServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  describe("@grpc/grpc-js client from generated descriptors", () => {
    it("unary", async () => {
      const c = createGrpcClient(ClusterService, server.address);
      try {
        const res = await c.getStatus({});
        assert.equal(res.node?.nodeId, "c1");
        assert.equal(res.node?.term, 7n);
        assert.equal(res.node?.leaderId, "c2");
      } finally {
        c.close();
      }
    });

    it("a long-lived abort signal shared by many calls keeps no listener per finished call", async () => {
      const c = createGrpcClient(ClusterService, server.address);
      const w = createGrpcClient(ChainService, server.address);
      const ac = new AbortController();
      try {
        for (let i = 0; i < 25; i++) await c.getStatus({}, { signal: ac.signal });
        for await (const _ of w.watchChain({ streamId: "s1" }, { signal: ac.signal })) {
          // drain the stream to its end
        }
        assert.equal(getEventListeners(ac.signal, "abort").length, 0);
      } finally {
        c.close();
        w.close();
      }
    });

    it("server streaming", async () => {
      const c = createGrpcClient(ChainService, server.address);
      try {
        const versions: bigint[] = [];
        for await (const u of c.watchChain({ streamId: "s1" })) {
          assert.equal(u.graph?.streamId, "s1");
          versions.push(u.graph?.version ?? -1n);
        }
        assert.deepEqual(versions, [1n, 2n, 3n]);
      } finally {
        c.close();
      }
    });

    it("client streaming", async () => {
      const c = createGrpcClient(RaftService, server.address);
      try {
        const res = await c.installSnapshot([
          { lastIncludedIndex: 10n, data: new Uint8Array(5) },
          { lastIncludedIndex: 10n, data: new Uint8Array(7), done: true },
        ]);
        assert.equal(res.success, true);
        assert.equal(res.matchIndex, 22n);
      } finally {
        c.close();
      }
    });

    it("bidi streaming", async () => {
      const c = createGrpcClient(AgentService, server.address);
      try {
        const call = c.connect();
        call.send({ body: { case: "hello", value: { componentId: "enc-1" } } });
        call.send({ body: { case: "report", value: { sequence: 41n } } });
        call.send({ body: { case: "report", value: { sequence: 42n } } });
        call.end();
        const got: string[] = [];
        for await (const m of call.responses) {
          got.push(m.body.case === "ack" ? `ack:${m.body.value.sequence}` : String(m.body.case));
        }
        assert.deepEqual(got, ["welcome", "ack:41", "ack:42"]);
      } finally {
        c.close();
      }
    });

    it("health: Check reports SERVING, NOT_FOUND for unknown services, and follows status changes", async () => {
      const c = createGrpcClient(Health, server.address);
      try {
        assert.equal((await c.check({ service: "" })).status, ServingStatus.SERVING);
        assert.equal(
          (await c.check({ service: "understudy.api.v1.ClusterService" })).status,
          ServingStatus.SERVING,
        );
        await assert.rejects(c.check({ service: "nope.Service" }), (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.NOT_FOUND);
          return true;
        });
        server.health.setStatus("understudy.api.v1.ClusterService", ServingStatus.NOT_SERVING);
        assert.equal(
          (await c.check({ service: "understudy.api.v1.ClusterService" })).status,
          ServingStatus.NOT_SERVING,
        );
        server.health.setStatus("understudy.api.v1.ClusterService", ServingStatus.SERVING);
      } finally {
        c.close();
      }
    });

    it("reflection lists services and returns descriptors by symbol", async () => {
      const c = createGrpcClient(ServerReflection, server.address);
      try {
        const call = c.serverReflectionInfo();
        call.send({ messageRequest: { case: "listServices", value: "" } });
        call.send({
          messageRequest: {
            case: "fileContainingSymbol",
            value: "understudy.api.v1.ClusterService",
          },
        });
        call.end();
        const answers = [];
        for await (const r of call.responses) answers.push(r);
        assert.equal(answers.length, 2);
        const list = answers[0]?.messageResponse;
        assert.equal(list?.case, "listServicesResponse");
        const names =
          list?.case === "listServicesResponse" ? list.value.service.map((s) => s.name) : [];
        for (const n of [
          "understudy.api.v1.ClusterService",
          "understudy.agent.v1.AgentService",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
        ]) {
          assert.ok(names.includes(n), `${n} missing from ${names.join(", ")}`);
        }
        const files = answers[1]?.messageResponse;
        assert.equal(files?.case, "fileDescriptorResponse");
        assert.ok(files?.case === "fileDescriptorResponse");
        const protos = files.value.fileDescriptorProto.map((b) =>
          fromBinary(FileDescriptorProtoSchema, b),
        );
        assert.equal(protos[0]?.name, "understudy/api/v1/cluster_service.proto");
        assert.ok(protos[0]?.service.some((s) => s.name === "ClusterService"));
        // Every import is sent along, so a client can build the full descriptor set.
        const sent = new Set(protos.map((p) => p.name));
        for (const p of protos)
          for (const d of p.dependency) assert.ok(sent.has(d), `${d} not sent`);
      } finally {
        c.close();
      }
    });
  });

  describe("@grpc/proto-loader client from the .proto files (no generated code)", () => {
    // biome-ignore lint/suspicious/noExplicitAny: proto-loader clients are untyped by design.
    let pkg: any;
    before(() => {
      const def = protoLoader.loadSync(
        [
          "understudy/api/v1/cluster_service.proto",
          "understudy/api/v1/chain_service.proto",
          "understudy/agent/v1/agent.proto",
        ],
        { includeDirs: [protoRoot], longs: Number, enums: String, defaults: true, oneofs: true },
      );
      pkg = grpc.loadPackageDefinition(def);
    });

    it("unary", async () => {
      const c = new pkg.understudy.api.v1.ClusterService(
        server.address,
        grpc.credentials.createInsecure(),
      );
      try {
        const res = await new Promise<{ node: { nodeId: string; term: number } }>((ok, fail) =>
          c.GetStatus({}, (err: Error | null, r: { node: { nodeId: string; term: number } }) =>
            err ? fail(err) : ok(r),
          ),
        );
        assert.equal(res.node.nodeId, "c1");
        assert.equal(res.node.term, 7);
      } finally {
        c.close();
      }
    });

    it("server streaming", async () => {
      const c = new pkg.understudy.api.v1.ChainService(
        server.address,
        grpc.credentials.createInsecure(),
      );
      try {
        const versions: number[] = [];
        for await (const u of c.WatchChain({ streamId: "s9" })) versions.push(u.graph.version);
        assert.deepEqual(versions, [1, 2, 3]);
      } finally {
        c.close();
      }
    });

    it("bidi streaming", async () => {
      const c = new pkg.understudy.agent.v1.AgentService(
        server.address,
        grpc.credentials.createInsecure(),
      );
      try {
        const call = c.Connect();
        call.write({ hello: { componentId: "pkg-1" } });
        call.write({ report: { sequence: 5 } });
        call.end();
        const got: string[] = [];
        for await (const m of call) got.push(m.body === "ack" ? `ack:${m.ack.sequence}` : m.body);
        assert.deepEqual(got, ["welcome", "ack:5"]);
      } finally {
        c.close();
      }
    });
  });

  describe("Connect protocol over HTTP/1.1 on the same port", () => {
    it("answers a JSON unary call and serves 404 for unknown paths", async () => {
      const res = await fetch(
        `http://${server.address}/understudy.api.v1.ClusterService/GetStatus`,
        { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
      );
      assert.equal(res.status, 200);
      const body = (await res.json()) as { node: { nodeId: string; term: string } };
      assert.equal(body.node.nodeId, "c1");
      const missing = await fetch(`http://${server.address}/nope`);
      assert.equal(missing.status, 404);
    });
  });
});
