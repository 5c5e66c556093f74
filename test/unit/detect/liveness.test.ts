/**
 * Failure-detector timing with a manual clock: a small discrete-event model of
 * one agent (heartbeat timer with jitter and GC pauses, a TCP path with
 * latency spikes, in-order delivery) and of the coordinator's event loop
 * (a 50 ms detector tick, stalls during which nothing runs, and the Node
 * order after a stall: the overdue timer first, then queued I/O).
 */
import assert from "node:assert/strict";
import { createRng, type Rng } from "../../../common/rng.ts";
import {
  createDetectorSet,
  createIntervalStats,
  defaultLivenessOptions,
  type LivenessState,
  phiOf,
} from "../../../coordinator/src/detect/index.ts";

interface Stall {
  atMs: number;
  durMs: number;
}

interface SimOptions {
  seed: number;
  durationMs: number;
  /** Agent process dies at this time (no heartbeat is sent at or after it). */
  killAtMs?: number;
  /** Agent comes back at this time (after killAtMs). */
  reviveAtMs?: number;
  stalls?: Stall[];
  /** Max agent timer jitter per heartbeat, ms. */
  sendJitterMs?: number;
  /** Probability of an agent GC pause delaying one heartbeat by gcPauseMs. */
  gcChance?: number;
  gcPauseMs?: number;
  /** Base one-way latency range and spike. */
  latencyMs?: [number, number];
  spikeChance?: number;
  spikeMs?: number;
  /** Stall accounting on (the detector sees its tick lateness); off to show why it matters. */
  tickIntervalMs?: number;
  stallToleranceMs?: number;
  /** Real tick period when the loop is busy (every tick late); default tickIntervalMs. */
  tickActualMs?: number;
}

interface SimEvent {
  atMs: number;
  from: LivenessState;
  to: LivenessState;
  phi: number;
}

function arrivals(o: SimOptions, rng: Rng): number[] {
  const hb = defaultLivenessOptions.heartbeatIntervalMs;
  const [latMin, latMax] = o.latencyMs ?? [1, 15];
  const out: number[] = [];
  let last = 0;
  for (let k = 1; k * hb < o.durationMs; k++) {
    let send = k * hb + rng.next() * (o.sendJitterMs ?? 40);
    if (rng.chance(o.gcChance ?? 0.01)) send += o.gcPauseMs ?? 100;
    const dead = o.killAtMs !== undefined && send >= o.killAtMs;
    const revived = o.reviveAtMs !== undefined && send >= o.reviveAtMs;
    if (dead && !revived) continue;
    let lat = latMin + rng.next() * (latMax - latMin);
    if (rng.chance(o.spikeChance ?? 0.005)) lat += o.spikeMs ?? 120;
    // One TCP stream: arrivals keep send order.
    last = Math.max(last, send + lat);
    out.push(last);
  }
  return out;
}

function simulate(o: SimOptions): SimEvent[] {
  const rng = createRng(o.seed);
  const tickMs = o.tickIntervalMs ?? 50;
  const set = createDetectorSet({
    tickIntervalMs: tickMs,
    stallToleranceMs: o.stallToleranceMs ?? 15,
  });
  set.begin(0, 0, ["c1"]);
  const arr = arrivals(o, rng);
  const stalls = [...(o.stalls ?? [])].sort((a, b) => a.atMs - b.atMs);
  // When does work that is ready at t actually run? After any stall covering t.
  const runAt = (t: number) => {
    for (const s of stalls) if (t >= s.atMs && t < s.atMs + s.durMs) return s.atMs + s.durMs;
    return t;
  };
  const events: SimEvent[] = [];
  const period = o.tickActualMs ?? tickMs;
  let nextTick = period;
  let i = 0;
  // Bounded: one iteration per tick or arrival.
  for (let guard = 0; guard < 1_000_000; guard++) {
    const tickRun = runAt(nextTick);
    const arrRun = i < arr.length ? runAt(arr[i]!) : Number.POSITIVE_INFINITY;
    if (tickRun > o.durationMs && arrRun > o.durationMs) break;
    // Node runs an overdue timer before the I/O queued during a stall.
    if (tickRun <= arrRun) {
      for (const tr of set.tick(tickRun)) {
        events.push({ atMs: tickRun, from: tr.from, to: tr.to, phi: tr.verdict.phi });
      }
      nextTick = tickRun + period;
    } else {
      set.arrival("c1", arrRun);
      i++;
    }
  }
  return events;
}

const bad = (e: SimEvent) => e.to === "suspect" || e.to === "down";

describe("detect: phi accrual", () => {
  it("phi grows monotonically with silence and stays finite", () => {
    let prev = -1;
    for (let t = 0; t <= 5000; t += 10) {
      const p = phiOf(t, 250, 50);
      assert.ok(Number.isFinite(p), `phi(${t}) finite`);
      assert.ok(p >= prev, `phi(${t})=${p} < phi(${t - 10})=${prev}`);
      prev = p;
    }
    // At the mean the chance that the heartbeat is just late is one half.
    assert.ok(Math.abs(phiOf(250, 250, 50) - Math.log10(2)) < 1e-9);
    assert.ok(phiOf(500, 250, 50) > 5);
  });

  it("interval stats match a naive mean/std-dev over the retained window", () => {
    const rng = createRng(7);
    const s = createIntervalStats(16);
    const all: number[] = [];
    for (let k = 0; k < 100; k++) {
      const v = 200 + rng.next() * 100;
      s.add(v);
      all.push(v);
      const w = all.slice(-16);
      const m = w.reduce((a, b) => a + b, 0) / w.length;
      const sd = Math.sqrt(w.reduce((a, b) => a + (b - m) ** 2, 0) / w.length);
      assert.ok(Math.abs(s.mean() - m) < 1e-6);
      assert.ok(Math.abs(s.stdDev() - sd) < 1e-4);
    }
    s.add(Number.NaN);
    s.add(-1);
    assert.equal(s.count, 16);
  });

  it("rejects inconsistent options, naming the field", () => {
    assert.throws(
      () => createDetectorSet({ liveness: { ...defaultLivenessOptions, downPhi: 1 } }),
      /liveness\.downPhi: must be >= suspectPhi/,
    );
  });
});

describe("detect: liveness timing (manual clock)", () => {
  it("normal jitter, GC pauses and latency spikes never trip (10 min x 6 seeds)", () => {
    for (let seed = 1; seed <= 6; seed++) {
      const ev = simulate({ seed, durationMs: 600_000 });
      assert.deepEqual(
        ev.filter(bad),
        [],
        `seed ${seed}: unexpected ${JSON.stringify(ev.filter(bad)[0])}`,
      );
      assert.equal(ev[0]?.to, "alive");
    }
  });

  it("a 200 ms coordinator stall never trips, at any phase, with jitter", () => {
    for (let seed = 1; seed <= 4; seed++) {
      const stalls: Stall[] = [];
      // One stall every ~3 s at every phase of the heartbeat period.
      for (let k = 0; k < 200; k++)
        stalls.push({ atMs: 3000 * (k + 1) + ((k * 37) % 250), durMs: 200 });
      const ev = simulate({ seed, durationMs: 610_000, stalls, gcChance: 0.02 });
      assert.deepEqual(ev.filter(bad), [], `seed ${seed}: ${JSON.stringify(ev.filter(bad)[0])}`);
    }
  });

  it("stall accounting is what keeps a long stall from tripping", () => {
    // 700 ms: nearly three heartbeat intervals. Counted against the agent it
    // would look like a suspect (and phase-dependent, a down) component.
    const stalls = [{ atMs: 10_010, durMs: 700 }];
    const withAccounting = simulate({ seed: 3, durationMs: 20_000, stalls, sendJitterMs: 5 });
    assert.deepEqual(withAccounting.filter(bad), []);
    const without = simulate({
      seed: 3,
      durationMs: 20_000,
      stalls,
      sendJitterMs: 5,
      stallToleranceMs: 1e9,
    });
    assert.ok(without.some(bad), "without accounting the stall trips the detector");
  });

  it("a hard stop is DOWN within 1 s, passing through SUSPECT, never before the stop", () => {
    const worst: number[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const killAtMs = 30_000 + seed * 113;
      const ev = simulate({ seed, durationMs: killAtMs + 5000, killAtMs });
      const early = ev.filter((e) => bad(e) && e.atMs < killAtMs);
      assert.deepEqual(early, [], `seed ${seed}: tripped before the stop`);
      const down = ev.find((e) => e.to === "down");
      assert.ok(down, `seed ${seed}: never down`);
      const suspect = ev.find((e) => e.to === "suspect");
      assert.ok(suspect && suspect.atMs < down.atMs, `seed ${seed}: suspect before down`);
      assert.ok(
        down.atMs - killAtMs <= 1000,
        `seed ${seed}: down after ${down.atMs - killAtMs} ms`,
      );
      worst.push(down.atMs - killAtMs);
    }
    // Not just barely: the typical case leaves headroom for commit latency.
    worst.sort((a, b) => a - b);
    assert.ok(worst[Math.floor(worst.length / 2)]! <= 900, `median ${worst[20]} ms`);
  });

  it("a busy loop (every tick 30 ms late) does not blind the detector: stalls do not add up", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const killAtMs = 20_000 + seed * 97;
      const ev = simulate({ seed, durationMs: killAtMs + 5000, killAtMs, tickActualMs: 80 });
      assert.deepEqual(
        ev.filter((e) => bad(e) && e.atMs < killAtMs),
        [],
      );
      const down = ev.find((e) => e.to === "down");
      assert.ok(
        down && down.atMs - killAtMs <= 1000,
        `seed ${seed}: down after ${down && down.atMs - killAtMs} ms`,
      );
    }
  });

  it("a hard stop is still DOWN within 1 s with a jittery history (the absolute bound)", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const killAtMs = 60_000 + seed * 71;
      const ev = simulate({
        seed,
        durationMs: killAtMs + 5000,
        killAtMs,
        sendJitterMs: 120,
        gcChance: 0.05,
        latencyMs: [1, 40],
      });
      const down = ev.find((e) => e.to === "down");
      assert.ok(down && down.atMs >= killAtMs);
      assert.ok(
        down.atMs - killAtMs <= 1000,
        `seed ${seed}: down after ${down.atMs - killAtMs} ms`,
      );
    }
  });

  it("recovers after heartbeats resume: down → alive once, no flapping", () => {
    const ev = simulate({ seed: 9, durationMs: 40_000, killAtMs: 10_000, reviveAtMs: 20_000 });
    assert.deepEqual(
      ev.map((e) => e.to),
      ["alive", "suspect", "down", "alive"],
    );
    const back = ev[3]!;
    assert.ok(
      back.atMs >= 20_000 && back.atMs < 20_000 + 3 * 250 + 100,
      `recovered at ${back.atMs}`,
    );
  });

  it("one stray arrival does not recover a down component", () => {
    const set = createDetectorSet();
    set.begin(0, 0, []);
    let states: LivenessState[] = [];
    for (let t = 50; t <= 7000; t += 50) {
      if (t <= 5000 && t % 250 === 0) set.arrival("c1", t);
      states.push(...set.tick(t).map((x) => x.to));
    }
    assert.deepEqual(states, ["alive", "suspect", "down"]);
    set.arrival("c1", 7010);
    states = [];
    for (let t = 7050; t <= 10_000; t += 50) states.push(...set.tick(t).map((x) => x.to));
    assert.deepEqual(states, [], "still down after one stray arrival");
    assert.equal(set.verdict("c1")?.state, "down");
    set.arrival("c1", 10_010);
    set.arrival("c1", 10_260);
    assert.deepEqual(
      set.tick(10_300).map((x) => x.to),
      ["alive"],
    );
  });

  it("grace after a leader change: nothing before the deadline, then silent ones go down", () => {
    const set = createDetectorSet();
    set.begin(0, 3000, ["quiet", "talks"]);
    const changes: string[] = [];
    for (let t = 50; t <= 5000; t += 50) {
      if (t >= 1500 && t % 250 === 0) set.arrival("talks", t);
      for (const tr of set.tick(t)) changes.push(`${t}:${tr.componentId}:${tr.to}`);
    }
    const quietDown = changes.find((c) => c.endsWith("quiet:down"));
    assert.ok(quietDown, changes.join(" "));
    const at = Number(quietDown.split(":")[0]);
    assert.ok(at >= 3000 && at <= 3000 + 950, `quiet down at ${at}`);
    assert.ok(!changes.some((c) => c.includes("talks:suspect") || c.includes("talks:down")));
    assert.ok(changes.includes("1500:talks:alive"));
  });

  it("bounds the number of tracked components", () => {
    const set = createDetectorSet({ componentsMax: 2 });
    set.begin(0, 0, []);
    assert.equal(set.arrival("a", 1), true);
    assert.equal(set.arrival("b", 1), true);
    assert.equal(set.arrival("c", 1), false);
    assert.equal(set.size, 2);
  });
});
