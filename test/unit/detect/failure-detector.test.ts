/**
 * The leader's failure detector against the real FSM (fake single-node
 * cluster) with a manual clock: what it proposes, when, and what it leaves
 * alone.
 */
import assert from "node:assert/strict";
import { createManualClock, type ManualClock } from "../../../common/clock.ts";
import { Code, ConnectError } from "../../../common/errors.ts";
import { silentLogger } from "../../../common/log.ts";
import {
  createFailureDetector,
  type FailureDetector,
  type FailureDetectorOptions,
} from "../../../coordinator/src/detect/index.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { createFakeCluster, type FakeCluster } from "../ingest/fake-cluster.ts";

const S = ComponentStatus;

interface Rig {
  clock: ManualClock;
  cluster: FakeCluster;
  det: FailureDetector;
  /** Advances in 50 ms ticks for `ms`, heartbeating `alive` ids every 250 ms; settles proposals. */
  run(ms: number, alive: string[]): Promise<void>;
  status(id: string): ComponentStatus | undefined;
}

function rig(opts: Partial<FailureDetectorOptions> = {}, ids = ["pkg-1"]): Rig {
  const clock = createManualClock(1_700_000_000_000);
  const cluster = createFakeCluster(clock);
  for (const id of ids) cluster.register(id, ComponentRole.PACKAGER);
  const det = createFailureDetector({
    cluster,
    clock,
    log: silentLogger,
    autoTick: false,
    graceMs: 0,
    ...opts,
  });
  let t = 0;
  return {
    clock,
    cluster,
    det,
    async run(ms, alive) {
      for (let k = 0; k < ms / 50; k++) {
        clock.advance(50);
        t += 50;
        if (t % 250 === 0) for (const id of alive) det.observe(id);
        det.tick();
        await det.idle();
      }
    },
    status: (id) => cluster.fsm.component(id)?.status,
  };
}

const statusProposals = (c: FakeCluster) =>
  c.proposals
    .filter((p) => p.op?.case === "updateComponentStatus")
    .map((p) => {
      const v = p.op?.value as { componentId: string; status: ComponentStatus };
      return `${v.componentId}:${S[v.status]}`;
    });

describe("detect: failure detector (leader side)", () => {
  it("proposes SUSPECT then DOWN for a silent component, and HEALTHY when it recovers", async () => {
    const r = rig();
    r.det.start();
    await r.run(2000, ["pkg-1"]);
    assert.deepEqual(
      statusProposals(r.cluster),
      [],
      "a registered, reporting component stays HEALTHY",
    );
    await r.run(1000, []);
    assert.equal(r.status("pkg-1"), S.DOWN);
    const c = r.cluster.fsm.component("pkg-1")!;
    assert.match(c.statusReason, /^liveness: no heartbeat for \d+ ms, phi [\d.]+ \(\d missed\)$/);
    await r.run(1000, ["pkg-1"]);
    assert.equal(r.status("pkg-1"), S.HEALTHY);
    assert.equal(r.cluster.fsm.component("pkg-1")!.statusReason, "liveness: heartbeats resumed");
    assert.deepEqual(statusProposals(r.cluster), ["pkg-1:SUSPECT", "pkg-1:DOWN", "pkg-1:HEALTHY"]);
    assert.deepEqual(r.det.stats().proposed, { healthy: 1, suspect: 1, down: 1 });
    r.det.close();
  });

  it("only the leader proposes; a new leader waits out the grace period", async () => {
    const r = rig({ graceMs: 3000 }, ["pkg-1", "pkg-2"]);
    r.cluster.setLeadership({ isLeader: false, leaderId: "c2" });
    r.det.start();
    await r.run(2000, []);
    assert.deepEqual(statusProposals(r.cluster), []);
    assert.equal(r.det.stats().leading, false);
    r.cluster.setLeadership({ isLeader: true, leaderId: "c1", term: 4 });
    await r.run(2950, ["pkg-2"]);
    assert.deepEqual(statusProposals(r.cluster), [], "nothing during grace");
    await r.run(1000, ["pkg-2"]);
    assert.deepEqual(statusProposals(r.cluster), ["pkg-1:DOWN"]);
    r.det.close();
  });

  it("leaves DRAINING components and other owners' verdicts alone", async () => {
    const r = rig({}, ["drn", "pred", "probe"]);
    r.cluster.register("drn", ComponentRole.ORIGIN, S.DRAINING, "operator drain");
    r.cluster.register("pred", ComponentRole.ORIGIN, S.SUSPECT, "predict: p(fail in 30s)=0.91");
    r.cluster.register("probe", ComponentRole.ORIGIN, S.DOWN, "probe: http 503");
    r.det.start();
    await r.run(2000, ["drn", "pred", "probe"]);
    assert.deepEqual(
      statusProposals(r.cluster),
      [],
      "a live component does not revert SUSPECT/DOWN it did not set",
    );
    await r.run(1500, ["pred", "probe"]);
    assert.equal(r.status("drn"), S.DRAINING, "draining is never overridden");
    await r.run(1500, ["probe"]);
    assert.equal(
      r.status("pred"),
      S.DOWN,
      "a predicted-suspect component that goes silent is DOWN",
    );
    r.det.close();
  });

  it("bounds proposals in flight and converges for many components at once", async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `c-${i}`);
    const r = rig({ proposeConcurrencyMax: 4 }, ids);
    r.det.start();
    await r.run(1000, ids);
    r.cluster.proposeDelayMs = 2;
    let maxInFlight = 0;
    for (let k = 0; k < 60; k++) {
      r.clock.advance(50);
      r.det.tick();
      maxInFlight = Math.max(maxInFlight, r.det.stats().proposalsInFlight);
    }
    await r.det.idle();
    assert.ok(maxInFlight <= 4, `in flight ${maxInFlight}`);
    for (const id of ids) assert.equal(r.status(id), S.DOWN, id);
    r.det.close();
  });

  it("a failed proposal is retried by the periodic sweep, not in a hot loop", async () => {
    const r = rig({ reconcileIntervalMs: 1000 });
    r.det.start();
    await r.run(500, ["pkg-1"]);
    await r.run(600, []);
    assert.equal(r.status("pkg-1"), S.SUSPECT);
    r.cluster.failNextPropose(new ConnectError("deadline exceeded", Code.DeadlineExceeded));
    const before = r.det.stats().proposalsFailed;
    await r.run(400, []);
    assert.equal(r.det.stats().proposalsFailed, before + 1);
    assert.equal(r.status("pkg-1"), S.SUSPECT, "down not yet committed");
    await r.run(1000, []);
    assert.equal(r.status("pkg-1"), S.DOWN);
    r.det.close();
  });

  it("stops watching deregistered components", async () => {
    const r = rig({ reconcileIntervalMs: 100 });
    r.det.start();
    await r.run(500, ["pkg-1"]);
    r.cluster.fsm.apply(
      999,
      3,
      (await import("../../../coordinator/src/fsm/fsm.ts")).encodeCommand(
        { op: { case: "deregisterComponent", value: { componentId: "pkg-1" } } },
        { requestId: "dereg", proposerNodeId: "c1", proposedUnixMs: 0, proposerTerm: 3 },
      ),
    );
    await r.run(500, []);
    assert.equal(r.det.stats().tracked, 0);
    r.det.close();
  });
});
