/**
 * Raw gRPC routes of common/rpc-server.ts (the path grpc-js agents take to
 * AgentService): real grpc-js clients and a hand-driven node:http2 client
 * against the real server, for framing, limits, deadlines, cancels and the
 * auth interceptor, while other protocols on the same path still reach
 * connect-node.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "../../common/log.ts";
import {
  createAuthInterceptor,
  createAuthPolicy,
  createTokenSet,
  serviceRules,
  tokenDigest,
} from "../../common/rpc-auth.ts";
import {
  type RawGrpcRoute,
  type RpcServer,
  serve,
  startRpcServer,
} from "../../common/rpc-server.ts";
import { AgentService } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";

const path = "/understudy.agent.v1.AgentService/Connect";
const readMaxBytes = 1024;
const agentToken = "agent-token-0123456789";
const readerToken = "reader-token-0123456789";

interface Seen {
  messages: string[];
  aborts: string[];
  ends: number;
}

/** Echoes each message; after "slow" delivery pauses for 50 ms; ends OK on the client's end. */
function echoRoute(seen: Seen): RawGrpcRoute {
  return {
    service: AgentService,
    method: "Connect",
    start(call) {
      return {
        onMessage(m) {
          const text = Buffer.from(m).toString();
          seen.messages.push(text);
          call.send(Buffer.from(`echo:${text}`));
          if (text === "slow") {
            call.pause();
            setTimeout(() => call.resume(), 50);
          }
        },
        onEnd() {
          seen.ends++;
          call.end();
        },
        onAbort(err) {
          seen.aborts.push(`${err.code}`);
        },
      };
    },
  };
}

const bytes = (b: Buffer) => b;
const bidi = (client: grpc.Client, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) =>
  client.makeBidiStreamRequest<Buffer, Buffer>(path, bytes, bytes, md, opts);

function collect(call: grpc.ClientDuplexStream<Buffer, Buffer>) {
  const got: string[] = [];
  call.on("data", (b: Buffer) => got.push(b.toString()));
  return new Promise<{ got: string[]; status: grpc.StatusObject }>((resolve) => {
    call.on("error", () => {});
    call.on("status", (status) => resolve({ got, status }));
  });
}

/** A raw HTTP/2 request on the route; writes `chunks` separately, returns status and body. */
async function rawRequest(
  server: RpcServer,
  chunks: Buffer[],
  headers: http2.OutgoingHttpHeaders = {},
  end = true,
): Promise<{ status: string | undefined; message: string | undefined; body: Buffer }> {
  const session = http2.connect(`http://${server.address}`);
  try {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${agentToken}`,
      ...headers,
    });
    const body: Buffer[] = [];
    let status: string | undefined;
    let message: string | undefined;
    const done = new Promise<void>((resolve) => {
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) {
          status = String(h["grpc-status"]);
          message = h["grpc-message"] as string | undefined;
          // The call is over (a client that never ends its side waits no longer).
          setTimeout(resolve, 20);
        }
      };
      req.on("response", take);
      req.on("trailers", take);
      req.on("data", (d: Buffer) => body.push(d));
      req.on("close", () => resolve());
      req.on("error", () => resolve());
    });
    for (const c of chunks) {
      req.write(c);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (end) req.end();
    await done;
    return { status, message, body: Buffer.concat(body) };
  } finally {
    session.destroy();
  }
}

const envelope = (text: string, flags = 0) => {
  const m = Buffer.from(text);
  const e = Buffer.alloc(5 + m.length);
  e[0] = flags;
  e.writeUInt32BE(m.length, 1);
  m.copy(e, 5);
  return e;
};

describe("RPC raw gRPC route (node:http2, no connect-node)", () => {
  let server: RpcServer;
  let client: grpc.Client;
  const seen: Seen = { messages: [], aborts: [], ends: 0 };
  const agentMd = () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${agentToken}`);
    return md;
  };

  before(async () => {
    const log = createLogger({ test: "raw-grpc" }, { level: "error" });
    const tokens = createTokenSet({
      roles: ["agent", "reader"],
      entries: [
        { name: "agent-1", sha256: tokenDigest(agentToken), roles: ["agent"] },
        { name: "reader-1", sha256: tokenDigest(readerToken), roles: ["reader"] },
      ],
    });
    server = await startRpcServer({
      listen: "127.0.0.1:0",
      readMaxBytes,
      interceptors: [
        createAuthInterceptor({
          tokens,
          policy: createAuthPolicy([serviceRules(AgentService, { connect: ["agent"] })]),
          log,
          listener: "api",
        }),
      ],
      rawGrpc: [echoRoute(seen)],
      services: [
        serve(AgentService, {
          async *connect() {
            yield { body: { case: "welcome", value: { leaderId: "connect-node" } } };
          },
        }),
      ],
    });
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await server.close(200);
  });
  beforeEach(() => {
    seen.messages = [];
    seen.aborts = [];
    seen.ends = 0;
  });

  it("bidi: each message is handled as it arrives; the client's end finishes with OK trailers", async () => {
    const call = bidi(client, agentMd());
    const result = collect(call);
    call.write(Buffer.from("a"));
    call.write(Buffer.from("slow"));
    call.write(Buffer.from("b"));
    call.end();
    const { got, status } = await result;
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(got, ["echo:a", "echo:slow", "echo:b"]);
    assert.deepEqual(seen.messages, ["a", "slow", "b"]);
    assert.equal(seen.ends, 1);
  });

  it("messages split across DATA frames and several in one frame are reassembled", async () => {
    const two = Buffer.concat([envelope("first"), envelope("second")]);
    const big = envelope("x".repeat(900));
    const chunks = [
      two.subarray(0, 3),
      two.subarray(3, 9),
      Buffer.concat([two.subarray(9), big.subarray(0, 400)]),
      big.subarray(400),
    ];
    const r = await rawRequest(server, chunks);
    assert.equal(r.status, "0");
    assert.deepEqual(seen.messages, ["first", "second", "x".repeat(900)]);
    assert.equal(r.body.readUInt32BE(1), "echo:first".length);
  });

  it("a message above readMaxBytes ends the call with RESOURCE_EXHAUSTED", async () => {
    const call = bidi(client, agentMd());
    const result = collect(call);
    call.write(Buffer.alloc(readMaxBytes + 1, 1));
    const { status } = await result;
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(status.details, /larger than configured readMaxBytes 1024/);
    assert.deepEqual(seen.aborts, [`${grpc.status.RESOURCE_EXHAUSTED}`]);
  });

  it("a compressed message or a grpc-encoding other than identity is UNIMPLEMENTED", async () => {
    const flagged = await rawRequest(server, [envelope("zz", 1)]);
    assert.equal(flagged.status, String(grpc.status.UNIMPLEMENTED));
    assert.match(flagged.message ?? "", /compressed messages are not supported/);
    const gzip = await rawRequest(server, [envelope("a")], { "grpc-encoding": "gzip" });
    assert.equal(gzip.status, String(grpc.status.UNIMPLEMENTED));
    assert.match(gzip.message ?? "", /grpc-encoding "gzip" is not supported/);
    assert.deepEqual(seen.messages, []);
  });

  it("grpc-timeout is honoured: DEADLINE_EXCEEDED and the route learns it", async () => {
    const t0 = Date.now();
    const r = await rawRequest(server, [envelope("a")], { "grpc-timeout": "150m" }, false);
    assert.equal(r.status, String(grpc.status.DEADLINE_EXCEEDED));
    assert.ok(Date.now() - t0 >= 140, `ended after ${Date.now() - t0} ms`);
    assert.deepEqual(seen.aborts, [`${grpc.status.DEADLINE_EXCEEDED}`]);
    const bad = await rawRequest(server, [envelope("a")], { "grpc-timeout": "soon" });
    assert.equal(bad.status, String(grpc.status.INVALID_ARGUMENT));
    // grpc-js sends its deadline as grpc-timeout.
    const call = bidi(client, agentMd(), { deadline: Date.now() + 150 });
    const { status } = await collect(call);
    assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED);
  });

  it("a grpc-js cancel ends the call on the server (its half-close first, or the reset)", async () => {
    const call = bidi(client, agentMd());
    const result = collect(call);
    call.write(Buffer.from("a"));
    await new Promise((r) => setTimeout(r, 50));
    call.cancel();
    const { status } = await result;
    assert.equal(status.code, grpc.status.CANCELLED);
    const until = Date.now() + 2000;
    while (seen.aborts.length + seen.ends === 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(seen.aborts.length + seen.ends, 1);
  });

  it("a reset without the client's end reaches the route as CANCELLED", async () => {
    const session = http2.connect(`http://${server.address}`);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      authorization: `Bearer ${agentToken}`,
    });
    req.on("error", () => {});
    req.write(envelope("a"));
    const until = Date.now() + 2000;
    while (seen.messages.length === 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    session.destroy();
    while (seen.aborts.length === 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(seen.aborts, [`${grpc.status.CANCELLED}`]);
    assert.equal(seen.ends, 0);
  });

  it("auth: the interceptor's refusals, codes and messages, before the route runs", async () => {
    const none = await collect(bidi(client));
    assert.equal(none.status.code, grpc.status.UNAUTHENTICATED);
    assert.match(none.status.details, /missing bearer token/);
    const md = new grpc.Metadata();
    md.set("authorization", "Bearer not-a-known-token-123");
    const unknown = await collect(bidi(client, md));
    assert.equal(unknown.status.code, grpc.status.UNAUTHENTICATED);
    assert.equal(unknown.status.details, "token not recognized");
    const rmd = new grpc.Metadata();
    rmd.set("authorization", `Bearer ${readerToken}`);
    const reader = bidi(client, rmd);
    const denied = collect(reader);
    reader.write(Buffer.from("never"));
    const r = await denied;
    assert.equal(r.status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(
      r.status.details,
      'token "reader-1" (roles: reader) may not call understudy.agent.v1.AgentService/Connect: it needs role agent',
    );
    assert.deepEqual(seen.messages, []);
  });

  it("other protocols on the same path still go through connect-node", async () => {
    const web = await rawRequest(server, [envelope("")], {
      "content-type": "application/grpc-web+proto",
    });
    assert.match(web.body.toString("latin1"), /connect-node/);
    assert.deepEqual(seen.messages, []);
  });

  it("server shutdown ends open calls with UNAVAILABLE", async () => {
    const own = await startRpcServer({
      listen: "127.0.0.1:0",
      rawGrpc: [echoRoute(seen)],
      services: [],
    });
    const c = new grpc.Client(own.address, grpc.credentials.createInsecure());
    try {
      const call = bidi(c);
      const result = collect(call);
      call.write(Buffer.from("a"));
      await new Promise((r) => setTimeout(r, 50));
      await own.close(200);
      const { status } = await result;
      assert.equal(status.code, grpc.status.UNAVAILABLE);
      assert.deepEqual(seen.aborts, [`${grpc.status.UNAVAILABLE}`]);
    } finally {
      c.close();
    }
  });
});
