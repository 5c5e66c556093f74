/**
 * The CMSD handover hint, end to end. First the leader actor on a real
 * single-node coordinator with recorded PackagerService calls (when it sets,
 * renews, re-sets, clears, retries, gives up, and what a new leader clears).
 * Then a real coordinator with real packager-nodes: an operator handover
 * started through HandoverService.StartHandover puts the hint on the old
 * primary's real HTTP responses while it is under way; it is gone after
 * completion, and after an abort (the primary keeps serving, without hint).
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "../../common/errors.ts";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { silentLogger } from "../../common/log.ts";
import {
  type CmsdHintCalls,
  createCmsdHintActor,
  type HintClear,
  type HintSet,
} from "../../coordinator/src/act/cmsd-hint.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import {
  AssignmentRole,
  PackagerService,
} from "../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { eventually, feed, originConfig, request } from "../packager/helpers.ts";
import { streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

type Node = Awaited<ReturnType<typeof startSingleNode>>;

interface Recorded {
  kind: "set" | "clear";
  handoverId: string;
  packager: string;
  epoch: bigint;
  switchMsn?: bigint;
  duress?: boolean;
  toBaseUrl?: string;
}

function recorder(fail: (r: Recorded) => Error | undefined = () => undefined) {
  const calls: Recorded[] = [];
  const record = async (r: Recorded) => {
    calls.push(r);
    const err = fail(r);
    if (err) throw err;
  };
  const impl: CmsdHintCalls = {
    set: (c, h: HintSet) =>
      record({
        kind: "set",
        handoverId: h.handoverId,
        packager: c.id,
        epoch: h.epoch,
        switchMsn: h.switchMsn,
        duress: h.duress,
        toBaseUrl: h.toBaseUrl,
      }),
    clear: (c, h: HintClear) =>
      record({ kind: "clear", handoverId: h.handoverId, packager: c.id, epoch: h.epoch }),
    close() {},
  };
  return { calls, impl };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function registerPackager(node: Node, id: string, baseUrl: string, controlAddress: string) {
  const r = await node.cluster.propose({
    op: {
      case: "registerComponent",
      value: { componentId: id, role: ComponentRole.PACKAGER, baseUrl, controlAddress },
    },
  });
  assert.ok(r.ok, r.ok ? "" : r.message);
}

async function createStream(node: Node, id: string, primary: string) {
  const c = node.cluster;
  const spec = streamSpec(id);
  for (const op of [
    { case: "createStream" as const, value: { spec } },
    {
      case: "setAssignments" as const,
      value: {
        streamId: id,
        assignments: [{ renditionId: "v720", primaryPackagerId: primary, replicaPackagerIds: [] }],
      },
    },
    {
      case: "setShardMap" as const,
      value: {
        streamId: id,
        ranges: [{ firstShard: 0n, encoderId: "enc-1", replicaPackagerIds: [primary] }],
      },
    },
  ]) {
    const r = await c.propose({ op });
    assert.ok(r.ok, r.ok ? "" : r.message);
  }
}

async function advance(node: Node, handoverId: string, state: HandoverState, switchMsn = 0n) {
  const r = await node.cluster.propose({
    op: { case: "handoverAdvanced", value: { handoverId, state, switchMsn } },
  });
  assert.ok(r.ok, r.ok ? "" : r.message);
  return node.cluster.fsm.handover(handoverId)!.epoch;
}

async function begin(node: Node, handoverId: string, streamId: string, reason: HandoverReason) {
  const r = await node.cluster.propose({
    op: {
      case: "handoverBegun",
      value: { handoverId, streamId, fromComponentId: "pkg-a", toComponentId: "pkg-b", reason },
    },
  });
  assert.ok(r.ok, r.ok ? "" : r.message);
  await advance(node, handoverId, HandoverState.STANDBY_READY);
  await advance(node, handoverId, HandoverState.PRE_STITCHED);
}

describe("CMSD hint actor (real single-node Raft, recorded PackagerService calls)", function () {
  this.timeout(20_000);
  let node: Node;
  const actors: Array<{ stop(): void }> = [];
  const start = (calls: CmsdHintCalls) => {
    const a = createCmsdHintActor({
      cluster: node.cluster,
      log: silentLogger,
      calls,
      ttlMs: 1000,
      renewIntervalMs: 200,
      backoffMs: 10,
      attemptsMax: 3,
    });
    actors.push(a);
    return a;
  };
  beforeEach(async () => {
    node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
      predict: { enabled: false },
    });
    // Nobody listens on port 9: the control plane's own actor fails quietly there.
    await registerPackager(node, "pkg-a", "http://127.0.0.1:9", "127.0.0.1:9");
    await registerPackager(node, "pkg-b", "http://10.0.0.2:8080", "127.0.0.1:9");
    await createStream(node, "live-1", "pkg-a");
  });
  afterEach(async () => {
    for (const a of actors.splice(0)) a.stop();
    await node.cleanup();
  });

  it("sets the hint at NOTIFIED, renews it, re-sets it at SWITCHED and clears it at COMPLETED", async () => {
    const { calls, impl } = recorder();
    start(impl);
    await begin(node, "h1", "live-1", HandoverReason.PREDICTED);
    await sleep(300);
    assert.equal(calls.length, 0, "no hint before viewers are told to move");
    const notified = await advance(node, "h1", HandoverState.NOTIFIED, 42n);
    await eventually(() => calls.length >= 1, "first set");
    assert.deepEqual(calls[0], {
      kind: "set",
      handoverId: "h1",
      packager: "pkg-a",
      epoch: notified,
      switchMsn: 42n,
      duress: true,
      toBaseUrl: "http://10.0.0.2:8080",
    });
    await eventually(() => calls.length >= 3, "renewals", 2000);
    assert.ok(calls.every((c) => c.kind === "set" && c.epoch === notified));
    const switched = await advance(node, "h1", HandoverState.SWITCHED);
    await eventually(() => calls.some((c) => c.epoch === switched), "set with the SWITCHED epoch");
    const completed = await advance(node, "h1", HandoverState.COMPLETED);
    await eventually(() => calls.at(-1)?.kind === "clear", "clear");
    assert.deepEqual(calls.at(-1), {
      kind: "clear",
      handoverId: "h1",
      packager: "pkg-a",
      epoch: completed,
    });
    const n = calls.length;
    await sleep(500);
    assert.equal(calls.length, n, "nothing after the clear (no renewals, no repeated clears)");
  });

  it("retries transient failures with backoff and does not retry a fence refusal", async () => {
    let unavailable = 2;
    const { calls, impl } = recorder((r) => {
      if (r.handoverId === "h1" && unavailable > 0) {
        unavailable--;
        return new ConnectError("connection refused", Code.Unavailable);
      }
      if (r.handoverId === "h2") return new ConnectError("stale epoch", Code.FailedPrecondition);
      return undefined;
    });
    const actor = start(impl);
    await begin(node, "h1", "live-1", HandoverReason.OPERATOR);
    await advance(node, "h1", HandoverState.NOTIFIED, 7n);
    await eventually(() => actor.applied() === 1, "set after two transient failures");
    assert.equal(calls.filter((c) => c.handoverId === "h1").length, 3);
    assert.equal(calls[0]!.duress, false, "an operator handover is not duress");
    await advance(node, "h1", HandoverState.ABORTED);
    await eventually(() => calls.at(-1)?.kind === "clear", "clear after abort");

    await createStream(node, "live-2", "pkg-a");
    await begin(node, "h2", "live-2", HandoverReason.PREDICTED);
    await advance(node, "h2", HandoverState.NOTIFIED, 9n);
    await eventually(() => calls.some((c) => c.handoverId === "h2"), "h2 set");
    await sleep(600); // three renewal ticks
    assert.equal(
      calls.filter((c) => c.handoverId === "h2").length,
      1,
      "a refused set is not retried until the handover moves",
    );
  });

  it("on taking over (as after a leader change) it clears hints of handovers that ended within the TTL, not older ones", async () => {
    await begin(node, "h-old", "live-1", HandoverReason.PREDICTED);
    await advance(node, "h-old", HandoverState.NOTIFIED, 5n);
    await advance(node, "h-old", HandoverState.ABORTED);
    await sleep(1100);
    await begin(node, "h-new", "live-1", HandoverReason.PREDICTED);
    await advance(node, "h-new", HandoverState.NOTIFIED, 6n);
    await advance(node, "h-new", HandoverState.SWITCHED);
    const completed = await advance(node, "h-new", HandoverState.COMPLETED);
    const { calls, impl } = recorder();
    start(impl);
    await eventually(() => calls.length >= 1, "clear by the new actor");
    await sleep(300);
    assert.deepEqual(calls, [
      { kind: "clear", handoverId: "h-new", packager: "pkg-a", epoch: completed },
    ]);
  });
});

describe("CMSD hint end to end (real coordinator, real packager-nodes, real HTTP)", function () {
  this.timeout(30_000);
  let node: Node;
  let pkgA: PackagerNode;
  let pkgB: PackagerNode;
  let handovers: ReturnType<typeof createGrpcClient<typeof HandoverService>>;
  let controlA: ReturnType<typeof createGrpcClient<typeof PackagerService>>;

  const startPackager = async (nodeId: string) => {
    const p = createPackagerNode(originConfig({ nodeId, control: "127.0.0.1:0", streams: [] }), {
      logger: silentLogger,
    });
    await p.start();
    return p;
  };
  const hintOf = async (p: PackagerNode, path: string) => {
    const r = await request(`${p.urls.http}/live/${path}`);
    return { status: r.status, dynamic: r.headers.get("cmsd-dynamic") ?? "" };
  };
  /** What the placement loop would do: the stream's primary serves it. */
  const assignPrimary = async (streamId: string) => {
    const s = node.cluster.fsm.stream(streamId)!;
    await controlA.assign({
      epoch: s.epoch,
      coordinatorTerm: BigInt(node.cluster.leadership().term),
      stream: s.spec,
      renditionIds: ["v720"],
      role: AssignmentRole.PRIMARY,
    });
  };
  const handoverOf = (streamId: string) =>
    node.cluster.fsm.handovers().find((h) => h.streamId === streamId)!;

  before(async () => {
    pkgA = await startPackager("pkg-a");
    pkgB = await startPackager("pkg-b");
    node = await startSingleNode({
      // Short steps so the abort case below does not wait long.
      handover: { stepDeadlineMs: 3000, switchAheadSegments: 1, replicateLastN: 2 },
      placement: { automatic: false },
      predict: { enabled: false },
    });
    await registerPackager(node, "pkg-a", pkgA.urls.http, pkgA.urls.control!);
    await registerPackager(node, "pkg-b", pkgB.urls.http, pkgB.urls.control!);
    handovers = createGrpcClient(HandoverService, node.apiServer.address);
    controlA = createGrpcClient(PackagerService, pkgA.urls.control!);
  });
  after(async () => {
    handovers?.close();
    controlA?.close();
    await node?.cleanup();
    await pkgA?.stop();
    await pkgB?.stop();
  });

  it("the primary's responses carry the hint while the handover is under way, and not after completion", async () => {
    await createStream(node, "live-1", "pkg-a");
    await assignPrimary("live-1");
    await feed(pkgA.urls.http, "live-1", ["v720"], 0, 4);
    assert.doesNotMatch((await hintOf(pkgA, "live-1/v720/index.m3u8")).dynamic, /understudy/);

    const started = await handovers.startHandover({
      streamId: "live-1",
      fromComponentId: "pkg-a",
      toComponentId: "pkg-b",
      reason: "cmsd hint test",
      requestId: "cmsd-1",
    });
    const id = started.handover!.id;
    let seen = { status: 0, dynamic: "" };
    await eventually(
      async () => {
        seen = await hintOf(pkgA, "live-1/v720/index.m3u8");
        return seen.dynamic.includes("com.understudy-to");
      },
      "the hint on the primary's playlist",
      8000,
    );
    const h = handoverOf("live-1");
    assert.equal(h.state, HandoverState.NOTIFIED, "the standby has not reached the switch yet");
    assert.equal(seen.status, 200);
    assert.equal(
      seen.dynamic.replace(/;rd=\d+/, ""),
      `"pkg-a";com.understudy-ho="${id}";com.understudy-to="pkg-b";com.understudy-url="${pkgB.urls.http}";com.understudy-msn=${h.switchMsn};com.understudy-ep=${h.epoch}`,
      "operator handover: no du",
    );
    assert.match((await hintOf(pkgA, "live-1/master.m3u8")).dynamic, /com\.understudy-to="pkg-b"/);

    // The standby reaches the switch segment (dual ingest): the handover completes.
    const to = Number(h.switchMsn) + 1;
    await feed(pkgB.urls.http, "live-1", ["v720"], 4, to);
    await feed(pkgA.urls.http, "live-1", ["v720"], 4, to);
    await eventually(
      () => handoverOf("live-1").state === HandoverState.COMPLETED,
      "completion",
      8000,
    );
    await eventually(() => pkgA.handoverHints.size === 0, "hint cleared on the old primary");
    const after = await hintOf(pkgA, "live-1/v720/index.m3u8");
    assert.doesNotMatch(after.dynamic, /understudy/);
    // The new primary never carried it.
    assert.doesNotMatch((await hintOf(pkgB, "live-1/v720/index.m3u8")).dynamic, /understudy/);
  });

  it("after an abort the primary keeps serving, without the hint", async () => {
    await createStream(node, "live-2", "pkg-a");
    await assignPrimary("live-2");
    await feed(pkgA.urls.http, "live-2", ["v720"], 0, 4);
    await handovers.startHandover({
      streamId: "live-2",
      fromComponentId: "pkg-a",
      toComponentId: "pkg-b",
      reason: "cmsd abort test",
      requestId: "cmsd-2",
    });
    await eventually(
      async () =>
        (await hintOf(pkgA, "live-2/v720/index.m3u8")).dynamic.includes("com.understudy-to"),
      "the hint on the primary's playlist",
      8000,
    );
    // The standby never reaches the switch segment: the step deadline aborts it.
    await eventually(
      () => handoverOf("live-2").state === HandoverState.ABORTED,
      "abort at the step deadline",
      8000,
    );
    await eventually(async () => {
      const r = await hintOf(pkgA, "live-2/v720/index.m3u8");
      return r.status === 200 && !r.dynamic.includes("understudy");
    }, "a 200 from the primary without the hint");
    assert.match(handoverOf("live-2").error, /NOTIFIED/);
  });
});
