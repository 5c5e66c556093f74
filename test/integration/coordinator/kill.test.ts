/**
 * Leader SIGKILLs under continuous writes, on 3 real coordinator processes.
 *
 * Writers create streams with unique ids through whichever node is leader,
 * retrying the same request_id on UNAVAILABLE / DEADLINE_EXCEEDED and
 * following the leader the error names. Meanwhile the leader is SIGKILLed
 * `killRounds` times (each killed node is restarted before the next round).
 * Afterwards every acknowledged write must be on every node (linearizable
 * ListStreams on each), nothing unasked-for may appear, replicas must have
 * equal state hashes at equal applied index, and no term may have had two
 * leaders.
 *
 * Run it 5 times in a row: test/integration/coordinator/kill-loop.sh.
 */
import assert from "node:assert/strict";
import {
  grpcCode,
  grpcMessage,
  perTestCluster,
  raftOnly,
  streamSpec,
  until,
} from "../../support/cluster.ts";

const killRounds = 5;
const writers = 8;
/** Writes acknowledged in a leader's term before it is killed. */
const acksPerTerm = 25;
/**
 * Hard bound on the scenario (writers stop, rounds give up); the mocha
 * timeout is above it. A run takes ~15 s on an idle 2-core machine; the bound
 * leaves room for a machine shared with other suites.
 */
const scenarioBudgetMs = 90_000;

describe("coordinator: leader SIGKILL under continuous writes (3 real processes)", function () {
  this.timeout(scenarioBudgetMs + 20_000);
  const clusters = perTestCluster();

  it(`loses no acknowledged write across ${killRounds} leader kills; replicas converge`, async () => {
    const started = performance.now();
    const deadline = started + scenarioBudgetMs;
    /** Waits inside the scenario are bounded by what is left of its budget. */
    const remaining = () => Math.max(1000, deadline - performance.now());
    const cluster = await clusters.start({ name: "kill", config: raftOnly });
    await cluster.waitForLeader(10_000);
    const monitor = cluster.monitorLeaders(50);

    const attempted = new Set<string>();
    const acked = new Set<string>();
    const failed: string[] = [];
    const attemptsHistogram = new Map<number, number>();
    let stop = false;
    const writerLoops = Array.from({ length: writers }, (_, w) =>
      (async () => {
        for (let n = 0; !stop && performance.now() < deadline; n++) {
          const id = `k-${w}-${n}`;
          attempted.add(id);
          try {
            const r = await cluster.write(
              (node, timeoutMs) =>
                node.streams.createStream(
                  { spec: streamSpec(id), requestId: `req-${id}` },
                  { timeoutMs },
                ),
              { deadlineMs: 30_000, attemptTimeoutMs: 2000 },
            );
            assert.equal(r.value.stream?.spec?.id, id);
            acked.add(id);
            attemptsHistogram.set(r.attempts, (attemptsHistogram.get(r.attempts) ?? 0) + 1);
          } catch (err) {
            failed.push(`${id}: code ${grpcCode(err)}: ${grpcMessage(err)}`);
          }
        }
      })(),
    );

    const failoverMs: number[] = [];
    try {
      for (let round = 0; round < killRounds; round++) {
        const leader = await cluster.waitForLeader(remaining());
        const base = acked.size;
        await until(
          () => acked.size >= base + acksPerTerm,
          remaining(),
          `${acksPerTerm} writes acknowledged under leader ${leader} (round ${round})`,
        );
        const t0 = performance.now();
        await cluster.kill(leader, "SIGKILL");
        await cluster.waitForLeader(remaining(), { exclude: [leader] });
        failoverMs.push(Math.round(performance.now() - t0));
        await cluster.restart(leader);
        assert.ok(performance.now() < deadline, `round ${round} ended past the time budget`);
      }
      // Writes keep flowing after the last restart.
      const base = acked.size;
      await until(
        () => acked.size >= base + acksPerTerm,
        remaining(),
        "writes after the last round",
      );
    } finally {
      stop = true;
      await Promise.all(writerLoops);
    }
    const { conflicts, samples } = await monitor.stop();

    assert.deepEqual(
      failed,
      [],
      "every write is eventually acknowledged (retries follow the leader)",
    );
    assert.deepEqual(conflicts, [], "at most one leader per term");

    const converged = await cluster.waitForConverged(15_000, { ids: cluster.ids() });
    for (const id of cluster.ids()) {
      const ids = new Set(await cluster.listStreamIds(id));
      const missing = [...acked].filter((s) => !ids.has(s));
      assert.deepEqual(missing, [], `${id} holds every acknowledged write`);
      const unasked = [...ids].filter((s) => !attempted.has(s));
      assert.deepEqual(unasked, [], `${id} holds nothing that was not written`);
    }
    console.log(
      `      kill test: ${acked.size} writes acknowledged (${attempted.size - acked.size} in flight at the end), ` +
        `failover ms ${JSON.stringify(failoverMs)}, attempts/write ${JSON.stringify(Object.fromEntries(attemptsHistogram))}, ` +
        `applied ${converged[0]!.applied} hash ${converged[0]!.stateHash}, ${samples} leader samples, ` +
        `${Math.round(performance.now() - started)} ms`,
    );
  });
});
