import assert from "node:assert/strict";
import {
  createTrace,
  FAILURE_MODES,
  GRADUAL_MODES,
} from "../../../coordinator/src/predict/trace.ts";

const HOUR = 3_600_000;

function valuesOf(c: {
  samples: readonly { name: string; value: number }[];
}): Record<string, number> {
  return Object.fromEntries(c.samples.map((s) => [s.name, s.value]));
}

describe("predict/trace", () => {
  it("is deterministic for a seed and differs across seeds", () => {
    const run = (seed: number) => {
      const tr = createTrace(seed, { components: 3, durationMs: HOUR });
      const out: number[] = [];
      for (let t = 0; t < 600_000; t += 1000) {
        for (const c of tr.components) if (c.step(t)) out.push(c.samples[0]!.value);
      }
      return { out, failures: tr.components.map((c) => c.failures) };
    };
    assert.deepEqual(run(7), run(7));
    assert.notDeepEqual(run(7).out, run(8).out);
  });

  it("covers every failure mode across a few seeds, with valid schedules", () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 4; seed++) {
      const tr = createTrace(seed, { components: 5, durationMs: 6 * HOUR });
      for (const c of tr.components) {
        seen.add(c.mode);
        if (c.mode === "encoder-fps-decay") assert.equal(c.role, "encoder");
        if (c.mode === "ingest-latency") assert.equal(c.role, "packager");
        const scheduled = c.failures.filter((f) => !f.early).length;
        assert.ok(scheduled >= 1 && scheduled <= 3);
        let prevRecover = 0;
        for (const f of c.failures) {
          assert.equal(f.mode, c.mode);
          assert.ok(f.precursorStartMs <= f.failMs && f.failMs < f.recoverMs);
          assert.ok(
            f.precursorStartMs >= prevRecover,
            "precursors do not overlap earlier failures",
          );
          assert.equal(f.precursorStartMs === f.failMs, c.mode === "sudden");
          prevRecover = f.recoverMs;
        }
      }
    }
    assert.deepEqual([...seen].sort(), [...FAILURE_MODES].sort());
    assert.equal(GRADUAL_MODES.length, FAILURE_MODES.length - 1);
  });

  it("produces no samples while down and shows each precursor before the failure", () => {
    const checks: Record<
      string,
      (before: Record<string, number>, last: Record<string, number>) => boolean
    > = {
      "memory-leak": (b, l) => l["mem.available_bytes"]! < 0.3 * b["mem.available_bytes"]!,
      "disk-fill": (_b, l) => l["fs.used_ratio"]! > 0.99,
      thermal: (_b, l) => l["cpu.temp_c"]! > 95,
      "packet-loss": (_b, l) => l["probe.loss_ratio"]! > 0.2,
      "cpu-runaway": (_b, l) => l["heartbeat.interval_ms"]! > 2500,
      "encoder-fps-decay": (b, l) => l["encoder.fps"]! < 0.5 * b["encoder.fps"]!,
      "ingest-latency": (b, l) =>
        l["packager.ingest_latency_ms"]! > 10 * b["packager.ingest_latency_ms"]!,
    };
    const checked = new Set<string>();
    for (let seed = 0; seed < 4; seed++) {
      const tr = createTrace(seed, { components: 5, durationMs: 6 * HOUR });
      for (const c of tr.components) {
        const f = c.failures.find((x) => !x.early)!;
        let before: Record<string, number> = {};
        let last: Record<string, number> = {};
        let upWhileDown = false;
        for (let t = 0; t < f.recoverMs; t += 1000) {
          const up = c.step(t);
          if (t >= f.failMs && up) upWhileDown = true;
          if (!up) continue;
          if (t === f.precursorStartMs - 60_000) before = valuesOf(c);
          if (t === f.failMs - 1000) last = valuesOf(c);
        }
        assert.equal(upWhileDown, false, `${c.id} reported while down`);
        assert.ok(c.step(f.recoverMs), "back after recovery");
        const check = checks[c.mode];
        if (check) {
          assert.ok(check(before, last), `${c.mode} precursor visible on ${c.id}`);
          checked.add(c.mode);
        }
      }
    }
    assert.equal(checked.size, GRADUAL_MODES.length);
  });

  it("gives young components steep early failures and fresh starts after redeploys", () => {
    let early = 0;
    let gaps = 0;
    for (let seed = 0; seed < 6; seed++) {
      const tr = createTrace(seed, { components: 5, durationMs: 6 * HOUR });
      for (const c of tr.components) {
        let lastUp = Number.NaN;
        let segmentStart = 0;
        const starts: number[] = [0];
        for (let t = 0; t < tr.durationMs; t += 1000) {
          if (!c.step(t)) continue;
          if (!Number.isNaN(lastUp) && t - lastUp > 10_000) {
            segmentStart = t;
            starts.push(t);
            const down = c.failures.some(
              (f) => f.failMs > lastUp && f.failMs <= lastUp + 1000 && f.recoverMs <= t,
            );
            if (!down) {
              gaps++;
              assert.ok(t - lastUp >= 12_000 && t - lastUp <= 46_000, `redeploy gap ${t - lastUp}`);
            }
          }
          lastUp = t;
        }
        void segmentStart;
        for (const f of c.failures.filter((x) => x.early)) {
          early++;
          const sinceStart =
            f.precursorStartMs - Math.max(...starts.filter((s) => s <= f.precursorStartMs));
          assert.ok(
            sinceStart >= 15_000 && sinceStart <= 120_000,
            `early precursor ${sinceStart} ms after a start`,
          );
          assert.ok(f.failMs - f.precursorStartMs <= 300_000, "early precursors are steep");
        }
      }
    }
    assert.ok(early >= 3, `only ${early} early failures in 30 components`);
    assert.ok(gaps >= 10, `only ${gaps} redeploys in 30 components`);
    assert.throws(() => createTrace(1, { earlyFailureChance: 2 }), /earlyFailureChance/);
  });

  it("validates options", () => {
    assert.throws(() => createTrace(1, { components: 0 }), /components/);
    assert.throws(() => createTrace(1, { durationMs: 1000 }), /durationMs/);
  });
});
