/**
 * Bearer-token auth on every gRPC listener, over real gRPC (HTTP/2, grpc-js
 * clients) and real HTTP/1.1: a one-node coordinator with `auth`, its Raft
 * peer port with `raft.peerTokenFile`, a packager's control port with
 * `controlAuth`, and the token files clients send from. Each refusal must
 * carry the exact code and message and leave stored state as it was.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { stringify } from "yaml";
import { createGrpcAgentTransport } from "../../agent/src/index.ts";
import { createManualClock } from "../../common/clock.ts";
import { ConfigError, parseConfig } from "../../common/config.ts";
import { createGrpcClient, type GrpcClientOptions } from "../../common/grpc-client.ts";
import { createLogger } from "../../common/log.ts";
import {
  createTokenFileSource,
  createTokenSet,
  generateToken,
  readTokenFile,
  resolveTokenFilePath,
  TokenFileError,
  tokenDigest,
} from "../../common/rpc-auth.ts";
import { createPackagerClients } from "../../coordinator/src/act/effects.ts";
import { apiPolicy, peerPolicy } from "../../coordinator/src/runtime/auth.ts";
import { coordinatorConfigSchema } from "../../coordinator/src/runtime/config.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import { AgentMessageSchema, AgentService } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ClientService } from "../../proto/gen/understudy/api/v1/client_service_pb.ts";
import { ClusterService } from "../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { ComponentService } from "../../proto/gen/understudy/api/v1/component_service_pb.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { StreamService } from "../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import type { Component } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  AssignmentRole,
  PackagerService,
} from "../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { RaftService } from "../../proto/gen/understudy/raft/v1/raft_pb.ts";
import { originConfig, originSpecRenditions } from "../packager/helpers.ts";
import { grpcCode, grpcMessage, runCli, streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";
import { helloFor } from "../unit/ingest/agent-conn.ts";

const missing =
  "missing bearer token: send 'authorization: Bearer <token>' (this node requires auth; see auth.tokens)";

/** Rejects with exactly this gRPC code and message. */
async function refused(p: Promise<unknown>, code: grpc.status, message: string): Promise<void> {
  await assert.rejects(p, (err) => {
    assert.equal(grpcCode(err), code, `code of ${grpcMessage(err)}`);
    assert.equal(grpcMessage(err), message);
    return true;
  });
}

const tokens = {
  admin: generateToken(),
  reader: generateToken(),
  agent: generateToken(),
  encoder: generateToken(),
  fromFile: generateToken(),
};
const authConfig = {
  tokens: [
    { name: "ops", sha256: tokenDigest(tokens.admin), roles: ["admin"] },
    { name: "dashboards", sha256: tokenDigest(tokens.reader), roles: ["reader"] },
    { name: "agents", sha256: tokenDigest(tokens.agent), roles: ["agent"] },
    { name: "encoders", sha256: tokenDigest(tokens.encoder), roles: ["encoder"] },
  ],
};
const as = (t: keyof typeof tokens): GrpcClientOptions => ({ bearerToken: tokens[t] });

describe("auth: coordinator API (one node, real gRPC and HTTP)", function () {
  this.timeout(20_000);
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  let dir: string;
  const logLines: string[] = [];
  const closers: { close(): void }[] = [];
  const client = <S extends Parameters<typeof createGrpcClient>[0]>(
    service: S,
    opts: GrpcClientOptions = {},
  ) => {
    const c = createGrpcClient(service, node.apiServer.address, opts);
    closers.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-auth-"));
    const tokensFile = join(dir, "tokens.yaml");
    writeFileSync(
      tokensFile,
      stringify({
        tokens: [{ name: "from-file", sha256: tokenDigest(tokens.fromFile), roles: ["reader"] }],
      }),
    );
    node = await startSingleNode(
      { auth: { ...authConfig, tokensFile } },
      { log: createLogger({}, { level: "info", write: (l) => logLines.push(l) }) },
    );
  });
  after(async () => {
    for (const c of closers) c.close();
    await node?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  // First in this block: the refusal log's 10-per-10-s window is still empty.
  it("logs refusals with caller address and method, rate-limited, never the token", async () => {
    const before = logLines.length;
    const bogus = generateToken();
    const c = client(StreamService, { bearerToken: bogus });
    for (let i = 0; i < 30; i++) await c.listStreams({}).catch(() => undefined);
    const refusals = logLines
      .slice(before)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r.msg === "call refused by auth");
    assert.ok(refusals.length >= 1 && refusals.length <= 10, `${refusals.length} lines logged`);
    assert.equal(refusals[0]?.method, "understudy.api.v1.StreamService/ListStreams");
    assert.equal(refusals[0]?.reason, "unknown token");
    assert.match(String(refusals[0]?.peer), /^127\.0\.0\.1:\d+$/);
    const all = logLines.join("");
    for (const t of [bogus, ...Object.values(tokens)])
      assert.ok(!all.includes(t), "a token leaked");
  });

  it("refuses a write without a token, with an unknown one and without the role; nothing is stored", async () => {
    const create = (opts: GrpcClientOptions) =>
      client(StreamService, opts).createStream(
        { spec: streamSpec("refused-1"), requestId: "r-refused" },
        { timeoutMs: 2000 },
      );
    await refused(create({}), grpc.status.UNAUTHENTICATED, missing);
    await refused(
      create({ bearerToken: generateToken() }),
      grpc.status.UNAUTHENTICATED,
      "token not recognized",
    );
    await refused(
      create(as("reader")),
      grpc.status.PERMISSION_DENIED,
      'token "dashboards" (roles: reader) may not call understudy.api.v1.StreamService/CreateStream: it needs role admin',
    );
    await refused(
      create(as("encoder")),
      grpc.status.PERMISSION_DENIED,
      'token "encoders" (roles: encoder) may not call understudy.api.v1.StreamService/CreateStream: it needs role admin',
    );
    // A header that is not "Bearer <token>".
    await refused(
      client(StreamService).listStreams({}, { metadata: { authorization: "Basic b3BzOnB3" } }),
      grpc.status.UNAUTHENTICATED,
      "malformed authorization header: send 'authorization: Bearer <token>'",
    );
    const { streams } = await client(StreamService, as("reader")).listStreams({});
    assert.deepEqual(streams, []);
    assert.equal(node.fsm.stream("refused-1"), undefined);

    // The other writes: drain, handover, membership. State unchanged after each.
    const applied = node.fsm.appliedIndex();
    await refused(
      client(ComponentService, as("reader")).drain({ componentId: "pkg-1" }),
      grpc.status.PERMISSION_DENIED,
      'token "dashboards" (roles: reader) may not call understudy.api.v1.ComponentService/Drain: it needs role admin',
    );
    await refused(
      client(HandoverService).startHandover({ streamId: "refused-1", fromComponentId: "pkg-1" }),
      grpc.status.UNAUTHENTICATED,
      missing,
    );
    await refused(
      client(ClusterService, as("agent")).addMember({
        nodeId: "rogue",
        address: "127.0.0.1:9",
        apiAddress: "127.0.0.1:9",
      }),
      grpc.status.PERMISSION_DENIED,
      'token "agents" (roles: agent) may not call understudy.api.v1.ClusterService/AddMember: it needs role admin',
    );
    await refused(
      client(ClusterService).transferLeadership({}),
      grpc.status.UNAUTHENTICATED,
      missing,
    );
    assert.equal(node.fsm.appliedIndex(), applied, "no refused call reached the log");
    const { members } = await client(ClusterService, as("reader")).listMembers({});
    assert.deepEqual(
      members.map((m) => m.nodeId),
      ["c1"],
    );
  });

  it("admin writes; reader reads (a token from auth.tokensFile too); encoder reads its stream and follows the chain only", async () => {
    await client(StreamService, as("admin")).createStream(
      { spec: streamSpec("authed-1"), requestId: "r-authed-1" },
      { timeoutMs: 5000 },
    );
    const got = await client(StreamService, as("fromFile")).getStream({ streamId: "authed-1" });
    assert.equal(got.stream?.spec?.id, "authed-1");
    const st = await client(ClusterService, as("reader")).getStatus({});
    assert.equal(st.node?.nodeId, "c1");
    const enc = await client(StreamService, as("encoder")).getStream({ streamId: "authed-1" });
    assert.equal(enc.stream?.spec?.id, "authed-1");
    const watch = client(ChainService, as("encoder")).watchChain({ streamId: "authed-1" });
    for await (const u of watch) {
      assert.equal(u.graph?.streamId, "authed-1");
      break;
    }
    await refused(
      client(StreamService, as("encoder")).listStreams({}),
      grpc.status.PERMISSION_DENIED,
      'token "encoders" (roles: encoder) may not call understudy.api.v1.StreamService/ListStreams: it needs role reader',
    );
    await refused(
      client(ChainService).watchChain({ streamId: "authed-1" })[Symbol.asyncIterator]().next(),
      grpc.status.UNAUTHENTICATED,
      missing,
    );
  });

  it("what players need works without a token: GetChain, the handover reads, Report, health, steering", async () => {
    await client(StreamService, as("admin")).createStream(
      { spec: streamSpec("public-1"), requestId: "r-public-1" },
      { timeoutMs: 5000 },
    );
    const chain = await client(ChainService).getChain({ streamId: "public-1" });
    assert.equal(chain.graph?.streamId, "public-1");
    await client(HandoverService).getLatestNotice({ streamId: "public-1" });
    await assert.rejects(client(HandoverService).getHandover({ handoverId: "ho-none" }), (err) => {
      assert.equal(grpcCode(err), grpc.status.NOT_FOUND, grpcMessage(err));
      return true;
    });
    const watch = client(HandoverService).watchHandovers({
      streamId: "public-1",
      sendLatestFirst: true,
    });
    for await (const _ of watch) break;
    const ack = await client(ClientService).report({
      report: { sessionId: "s-1", streamId: "public-1", renditionId: "v720", bufferMs: 1000 },
    });
    assert.ok(ack.nextReportIntervalMs >= 1000);
    const health = await client(Health).check({});
    assert.equal(health.status, 1);
    // Reaches the steering handler (no origins assigned on a lone coordinator: 404, not 401).
    const steering = await fetch(`http://${node.apiServer.address}/steering/public-1`);
    assert.equal(steering.status, 404);
    assert.match(await steering.text(), /no stream "public-1" with assigned origins/);
  });

  it("/metrics needs reader; reflection needs reader; Connect JSON over HTTP/1.1 gets 401 naming what to send", async () => {
    const metrics = (token?: string) =>
      fetch(`http://${node.apiServer.address}/metrics`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    const none = await metrics();
    assert.equal(none.status, 401);
    assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="understudy"');
    assert.equal((await none.text()).trim(), missing);
    const agent = await metrics(tokens.agent);
    assert.equal(agent.status, 403);
    assert.match(await agent.text(), /token "agents" \(roles: agent\) may not call GET \/metrics/);
    const ok = await metrics(tokens.reader);
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /understudy_node_is_leader/);

    const reflect = (opts: GrpcClientOptions) => {
      const call = client(ServerReflection, opts).serverReflectionInfo();
      call.send({ messageRequest: { case: "listServices", value: "" } });
      call.end();
      return call.responses[Symbol.asyncIterator]().next();
    };
    await refused(reflect({}), grpc.status.UNAUTHENTICATED, missing);
    const listed = await reflect(as("reader"));
    assert.equal(listed.value?.messageResponse.case, "listServicesResponse");

    const post = (headers: Record<string, string>) =>
      fetch(`http://${node.apiServer.address}/understudy.api.v1.StreamService/CreateStream`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ spec: { id: "json-1" } }),
      });
    const json = await post({});
    assert.equal(json.status, 401);
    assert.deepEqual(await json.json(), { code: "unauthenticated", message: missing });
    const denied = await post({ authorization: `Bearer ${tokens.reader}` });
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as { code: string }).code, "permission_denied");
    assert.equal(node.fsm.stream("json-1"), undefined);
  });

  it("an agent without a token is refused; with an agent token it streams (the agent's own transport)", async () => {
    const hello = toBinary(
      AgentMessageSchema,
      create(AgentMessageSchema, { body: { case: "hello", value: helloFor("pkg-auth") } }),
    );
    const open = (token?: string) =>
      createGrpcAgentTransport({
        keepaliveIntervalMs: 10_000,
        keepaliveTimeoutMs: 5000,
        backoffInitialMs: 100,
        backoffMaxMs: 1000,
        ...(token ? { token: () => token } : {}),
      });
    const bare = open();
    const s1 = bare.connect(node.apiServer.address);
    s1.write(hello);
    await refused(s1.messages[Symbol.asyncIterator]().next(), grpc.status.UNAUTHENTICATED, missing);
    bare.close();
    const reader = open(tokens.reader);
    const s2 = reader.connect(node.apiServer.address);
    s2.write(hello);
    await refused(
      s2.messages[Symbol.asyncIterator]().next(),
      grpc.status.PERMISSION_DENIED,
      'token "dashboards" (roles: reader) may not call understudy.agent.v1.AgentService/Connect: it needs role agent',
    );
    reader.close();
    assert.equal(node.fsm.component("pkg-auth"), undefined, "a refused agent registers nothing");
    const agent = open(tokens.agent);
    const s3 = agent.connect(node.apiServer.address);
    s3.write(hello);
    const first = await s3.messages[Symbol.asyncIterator]().next();
    assert.equal(first.value?.body.case, "welcome");
    s3.cancel();
    agent.close();
  });
});

describe("auth: Raft peer port", function () {
  this.timeout(20_000);
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  let dir: string;
  let peerToken: string;
  const peer = (opts: GrpcClientOptions) =>
    createGrpcClient(RaftService, node.peerServer.address, opts);
  const term = () => node.driver.status().term;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-auth-peer-"));
    peerToken = generateToken();
    const peerTokenFile = join(dir, "peer.token");
    writeFileSync(peerTokenFile, `${peerToken}\n`, { mode: 0o600 });
    node = await startSingleNode({
      raft: { tickMs: 10, electionTicks: 3, peerTokenFile },
    });
  });
  after(async () => {
    await node?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a rogue node without the peer token cannot AppendEntries or RequestVote: the term does not move; with it, it could", async () => {
    const t0 = term();
    const rogueAppend = { from: "rogue", to: "c1", term: 1000n, leaderId: "rogue" };
    const rogueVote = {
      from: "rogue",
      to: "c1",
      term: 1000n,
      lastLogIndex: 1000n,
      lastLogTerm: 999n,
    };
    const peerMissing =
      "missing bearer token: send 'authorization: Bearer <token>' (this node requires auth; see raft.peerTokenFile)";
    for (const opts of [{}, { bearerToken: generateToken() }]) {
      const c = peer(opts);
      const message = "bearerToken" in opts ? "token not recognized" : peerMissing;
      await refused(c.appendEntries(rogueAppend), grpc.status.UNAUTHENTICATED, message);
      await refused(c.requestVote(rogueVote), grpc.status.UNAUTHENTICATED, message);
      await refused(
        c.timeoutNow({ from: "rogue", to: "c1", term: 1000n }),
        grpc.status.UNAUTHENTICATED,
        message,
      );
      c.close();
    }
    assert.equal(term(), t0, "the refused calls moved the term");
    assert.equal(node.cluster.leadership().isLeader, true);
    // Control: the same AppendEntries with the cluster's token reaches Raft
    // and deposes this leader, so the assertions above can fail.
    const member = peer({ bearerToken: peerToken });
    await member.appendEntries(rogueAppend).catch(() => undefined);
    member.close();
    assert.ok(term() >= 1000, `term ${term()} after an authenticated AppendEntries`);
  });
});

describe("auth: packager control port (PackagerService)", function () {
  this.timeout(20_000);
  let pkg: PackagerNode;
  const coordinatorToken = generateToken();
  const readerToken = generateToken();
  const spec = (id: string) => {
    const base = streamSpec(id);
    return {
      ...base,
      renditions: originSpecRenditions,
      segmentPolicy: { ...base.segmentPolicy, segmentDurationMaxMs: 2000 },
    };
  };
  const assignReq = (id: string) => ({
    epoch: 3n,
    coordinatorTerm: 2n,
    stream: spec(id),
    renditionIds: ["720p"],
    role: AssignmentRole.PRIMARY,
  });

  before(async () => {
    pkg = createPackagerNode(
      originConfig({
        nodeId: "pkg-auth",
        control: "127.0.0.1:0",
        controlAuth: {
          tokens: [
            { name: "coordinators", sha256: tokenDigest(coordinatorToken), roles: ["coordinator"] },
            { name: "monitoring", sha256: tokenDigest(readerToken), roles: ["reader"] },
          ],
        },
        streams: [],
      }),
      { logger: createLogger({}, { write: () => {} }) },
    );
    await pkg.start();
  });
  after(async () => {
    await pkg?.stop();
  });

  it("refuses Assign without a token or without role coordinator and keeps its state; the coordinator's clients with packagerControl's token get through", async () => {
    const c = (opts: GrpcClientOptions) =>
      createGrpcClient(PackagerService, pkg.urls.control!, opts);
    const bare = c({});
    await refused(
      bare.assign(assignReq("live-1")),
      grpc.status.UNAUTHENTICATED,
      "missing bearer token: send 'authorization: Bearer <token>' (this node requires auth; see controlAuth.tokens)",
    );
    await refused(
      bare.drain({ coordinatorTerm: 9n }),
      grpc.status.UNAUTHENTICATED,
      "missing bearer token: send 'authorization: Bearer <token>' (this node requires auth; see controlAuth.tokens)",
    );
    bare.close();
    const monitoring = c({ bearerToken: readerToken });
    await refused(
      monitoring.assign(assignReq("live-1")),
      grpc.status.PERMISSION_DENIED,
      'token "monitoring" (roles: reader) may not call understudy.packager.v1.PackagerService/Assign: it needs role coordinator',
    );
    // Reader may look: nothing was assigned, nothing drained, no term recorded.
    const st = await monitoring.getStatus({});
    assert.deepEqual(
      st.streams.map((s) => s.streamId),
      [],
    );
    assert.equal(st.draining, false);
    assert.equal(st.coordinatorTerm, 0n);
    monitoring.close();

    // The coordinator's own client code (act/effects.ts) with the token.
    const clients = createPackagerClients({ bearerToken: coordinatorToken });
    const component = { id: "pkg-auth", controlAddress: pkg.urls.control! } as Component;
    const res = await clients.client(component).assign(assignReq("live-1"));
    assert.equal(res.epoch, 3n);
    const after = await clients.client(component).getStatus({});
    assert.deepEqual(
      after.streams.map((s) => s.streamId),
      ["live-1"],
    );
    clients.close();
  });
});

describe("auth: token files and token config", function () {
  this.timeout(20_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-auth-files-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a token file readable by group or others is refused with a message saying what to do", () => {
    const f = join(dir, "open.token");
    writeFileSync(f, `${generateToken()}\n`);
    chmodSync(f, 0o644);
    assert.throws(
      () => readTokenFile(f),
      (err) => {
        assert.ok(err instanceof TokenFileError);
        assert.equal(
          err.message,
          `token file ${f}: is readable by group and others (mode 0644); a token is a secret: chmod 600 ${f} (owner = the service user), or hand it in with systemd LoadCredential=`,
        );
        return true;
      },
    );
    chmodSync(f, 0o640);
    assert.throws(() => readTokenFile(f), /is readable by group \(mode 0640\)/);
    chmodSync(f, 0o600);
    assert.ok(readTokenFile(f).startsWith("ust_"));
    const short = join(dir, "short.token");
    writeFileSync(short, "abc\n", { mode: 0o600 });
    assert.throws(() => readTokenFile(short), /a token needs at least 16 characters/);
  });

  it("$CREDENTIALS_DIRECTORY (systemd LoadCredential=) is expanded, named when unset, and its ACL'd files accepted", () => {
    assert.equal(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: systemd's spelling of the variable, literally
      resolveTokenFilePath("${CREDENTIALS_DIRECTORY}/peer-token", {
        CREDENTIALS_DIRECTORY: "/run/credentials/x.service",
      }),
      "/run/credentials/x.service/peer-token",
    );
    assert.throws(
      () => resolveTokenFilePath("$CREDENTIALS_DIRECTORY/peer-token", {}),
      /names \$CREDENTIALS_DIRECTORY, which is not set/,
    );
    // systemd's credential files are 0400 plus an ACL for the service user,
    // which shows as 0440: accepted there, refused anywhere else.
    const creds = mkdtempSync(join(dir, "creds-"));
    const token = generateToken();
    writeFileSync(join(creds, "peer-token"), `${token}\n`);
    chmodSync(join(creds, "peer-token"), 0o440);
    const env = { CREDENTIALS_DIRECTORY: creds };
    assert.equal(readTokenFile("$CREDENTIALS_DIRECTORY/peer-token", env), token);
    assert.throws(() => readTokenFile(join(creds, "peer-token"), {}), /readable by group/);
    chmodSync(join(creds, "peer-token"), 0o444);
    assert.throws(
      () => readTokenFile("$CREDENTIALS_DIRECTORY/peer-token", env),
      /readable by others \(mode 0444\)/,
    );
  });

  it("a coordinator whose peer token file is world-readable does not start; the CLI exits 2 naming the file", async () => {
    const f = join(dir, "peer-open.token");
    writeFileSync(f, `${generateToken()}\n`);
    chmodSync(f, 0o644);
    await assert.rejects(
      startSingleNode({ raft: { tickMs: 10, electionTicks: 3, peerTokenFile: f } }),
      (err) => err instanceof TokenFileError && err.message.includes("(mode 0644)"),
    );
    const cfg = join(dir, "agent.yaml");
    writeFileSync(
      cfg,
      stringify({
        component: { id: "pkg-1", role: "packager" },
        coordinator: { addresses: ["127.0.0.1:9"], tokenFile: f },
      }),
    );
    const r = await runCli(["agent", "--config", cfg]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`coordinator\\.tokenFile: token file ${f}: is readable by group and others`),
    );
  });

  it("`understudy token` writes a new 0600 token file and prints the entry with its digest, never the token", async () => {
    const out = join(dir, "made", "ops.token");
    const r = await runCli(["token", "--name", "ops", "--roles", "admin,reader", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const token = readTokenFile(out);
    assert.ok(!r.stdout.includes(token), "the token was printed");
    assert.match(
      r.stdout,
      new RegExp(
        `^- \\{ name: ops, sha256: ${tokenDigest(token)}, roles: \\[admin, reader\\] \\}$`,
        "m",
      ),
    );
    const again = await runCli(["token", "--name", "ops", "--roles", "admin", "--out", out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists \(use --force to replace it\)/);
    assert.equal(readTokenFile(out), token, "an existing token file is left alone");
    const digest = await runCli(["token", "--digest", "--file", out]);
    assert.equal(digest.stdout.trim(), tokenDigest(token));
  });

  it("token entries are checked: roles, digest form, duplicates", () => {
    const parse = (tokensList: unknown) =>
      parseConfig(coordinatorConfigSchema, {
        nodeId: "c1",
        dataDir: "/tmp/x",
        peerListen: "127.0.0.1:0",
        apiListen: "127.0.0.1:0",
        auth: { tokens: tokensList },
      });
    const digest = tokenDigest(generateToken());
    assert.throws(
      () => parse([{ name: "ops", sha256: digest, roles: ["root"] }]),
      (e) => e instanceof ConfigError && e.field === "auth.tokens[0].roles[0]",
    );
    assert.throws(
      () => parse([{ name: "ops", sha256: "ust_plaintext-token-pasted-here", roles: ["admin"] }]),
      (e) => e instanceof ConfigError && /SHA-256 hex digest/.test(e.message),
    );
    assert.throws(
      () =>
        parse([
          { name: "ops", sha256: digest, roles: ["admin"] },
          { name: "ops", sha256: tokenDigest(generateToken()), roles: ["reader"] },
        ]),
      (e) => e instanceof ConfigError && e.field === "auth.tokens[1].name",
    );
    const ok = parse([{ name: "ops", sha256: digest.toUpperCase(), roles: ["admin"] }]);
    assert.equal(ok.auth?.tokens[0]?.sha256, digest);
  });

  it("rotation without restart: a changed tokens file is picked up; a broken change keeps the previous tokens; a client token file is re-read", () => {
    const clock = createManualClock(0);
    const file = join(dir, "tokens.yaml");
    const [a, b] = [generateToken(), generateToken()];
    const write = (list: unknown) => writeFileSync(file, stringify({ tokens: list }));
    write([{ name: "a", sha256: tokenDigest(a), roles: ["admin"] }]);
    const set = createTokenSet({ file, roles: ["admin", "reader"], clock, recheckMs: 1000 });
    assert.equal(set.lookup(a)?.name, "a");
    assert.equal(set.lookup(b), undefined);
    write([
      { name: "a", sha256: tokenDigest(a), roles: ["admin"] },
      { name: "b", sha256: tokenDigest(b), roles: ["reader"] },
    ]);
    assert.equal(set.lookup(b), undefined, "not before the recheck interval");
    clock.advance(1000);
    assert.equal(set.lookup(b)?.name, "b");
    writeFileSync(file, "tokens: [ {name: b, sha256: nope, roles: [reader]} ]\n");
    clock.advance(1000);
    assert.equal(set.lookup(b)?.name, "b", "a broken file keeps the previous tokens");

    const tf = join(dir, "client.token");
    writeFileSync(tf, `${a}\n`, { mode: 0o600 });
    const src = createTokenFileSource(tf, { clock, recheckMs: 1000 });
    assert.equal(src.token(), a);
    writeFileSync(tf, `${b}\n`, { mode: 0o600 });
    clock.advance(1000);
    assert.equal(src.token(), b);
    chmodSync(tf, 0o644);
    writeFileSync(tf, `${a}\n`);
    clock.advance(1000);
    assert.equal(src.token(), b, "an unusable change keeps the previous token");
  });

  it("every method of every served service is decided by the policies", () => {
    const decided = apiPolicy.table();
    for (const s of [
      StreamService,
      ClusterService,
      ChainService,
      HandoverService,
      ComponentService,
      ClientService,
      AgentService,
    ]) {
      for (const m of s.methods) assert.ok(decided.has(`${s.typeName}/${m.name}`), m.name);
    }
    for (const m of RaftService.methods) {
      assert.deepEqual(peerPolicy.rule(RaftService.typeName, m.name), ["peer"]);
    }
    // Unknown methods need admin.
    assert.deepEqual(apiPolicy.rule("x.Y", "Z"), ["admin"]);
  });
});
