import assert from "node:assert/strict";
import { createAlarmState, stepAlarm } from "../../../coordinator/src/predict/alarm.ts";
import {
  createTally,
  quantile,
  scoreTimeline,
  type Timeline,
} from "../../../coordinator/src/predict/evaluation.ts";

/** Timeline from a string: '.' up/no alarm, 'A' up/alarm, '_' down. One char per second from t=0. */
function tl(pattern: string, failures: { failMs: number; mode: string }[]): Timeline {
  const n = pattern.length;
  const up = new Uint8Array(n);
  const alarm = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    up[i] = pattern[i] === "_" ? 0 : 1;
    alarm[i] = pattern[i] === "A" ? 1 : 0;
  }
  return { startMs: 0, tickMs: 1000, up, alarm, failures };
}

const W = { horizonMs: 3000, slackMs: 1000 }; // window [f - 4 s, f)

describe("predict/evaluation", () => {
  it("an alarm inside [f - H - slack, f) detects the failure; lead = f - episode start", () => {
    // failure at t=10 s (first down tick); alarm at 7..9 s
    const s = scoreTimeline(tl(".......AAA_____", [{ failMs: 10_000, mode: "m" }]), W);
    assert.equal(s.failures[0]!.detected, true);
    assert.equal(s.failures[0]!.leadMs, 3000);
    assert.equal(s.falseAlarms, 0);
    assert.equal(s.episodes, 1);
    assert.equal(s.upMs, 10_000);
    assert.equal(s.alarmMs, 3000);
  });

  it("an episode that starts early and lasts into the window counts, with its full lead", () => {
    const s = scoreTimeline(tl("..AAAAAAAA______", [{ failMs: 10_000, mode: "m" }]), W);
    assert.equal(s.failures[0]!.leadMs, 8000);
    assert.equal(s.falseAlarms, 0);
  });

  it("an episode that ends before the window is a false alarm and the failure is missed", () => {
    // alarm at 1..3 s; window is [6, 10)
    const s = scoreTimeline(tl(".AAA......______", [{ failMs: 10_000, mode: "m" }]), W);
    assert.equal(s.failures[0]!.detected, false);
    assert.ok(Number.isNaN(s.failures[0]!.leadMs));
    assert.equal(s.falseAlarms, 1);
    // the slack admits an episode ending exactly at f - H - slack (t = 6 s)
    const t = scoreTimeline(tl("....AAA...______", [{ failMs: 10_000, mode: "m" }]), W);
    assert.equal(t.failures[0]!.detected, true);
    assert.equal(t.falseAlarms, 0);
  });

  it("flapping before one failure earns one detection and no false alarms; alarms while down are ignored", () => {
    const s = scoreTimeline(tl("......A.A.______", [{ failMs: 10_000, mode: "m" }]), W);
    assert.equal(s.episodes, 2);
    assert.equal(s.falseAlarms, 0);
    assert.equal(s.failures[0]!.leadMs, 4000);
    const down = tl("AAA___", []);
    down.alarm.fill(1);
    const d = scoreTimeline(down, W);
    assert.equal(d.episodes, 1);
    assert.equal(d.alarmMs, 3000);
  });

  it("a down gap splits an episode; an episode open at the end with no failure is false", () => {
    const s = scoreTimeline(tl("AA_AA", []), W);
    assert.equal(s.episodes, 2);
    assert.equal(s.falseAlarms, 2);
  });

  it("tally: precision = detected / (detected + false alarms), per component-day", () => {
    const t = createTally();
    t.add(scoreTimeline(tl(".......AAA_____", [{ failMs: 10_000, mode: "m" }]), W));
    t.add(scoreTimeline(tl(".AAA......______", [{ failMs: 10_000, mode: "m" }]), W));
    const s = t.summary();
    assert.equal(s.failures, 2);
    assert.equal(s.detected, 1);
    assert.equal(s.falseAlarms, 1);
    assert.equal(s.precision, 0.5);
    assert.equal(s.recall, 0.5);
    assert.equal(s.f1, 0.5);
    assert.equal(s.componentDays, 20_000 / 86_400_000);
    assert.equal(s.falseAlarmsPerComponentDay, 1 / (20_000 / 86_400_000));
    assert.equal(s.leadS.p50, 3);
    assert.ok(Number.isNaN(createTally().summary().precision));
  });

  it("quantile interpolates", () => {
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(quantile([5], 0.9), 5);
    assert.ok(Number.isNaN(quantile([], 0.5)));
  });
});

describe("predict/alarm", () => {
  it("turns on after onTicks firing ticks and off after offTicks released ticks", () => {
    const s = createAlarmState();
    const p = { onTicks: 2, offTicks: 3 };
    const seq = [true, true, false, false, false, false];
    const rel = [false, false, true, true, true, true];
    const out = seq.map((f, i) => stepAlarm(s, f, rel[i]!, p));
    assert.deepEqual(out, [false, true, true, true, false, false]);
    // a tick between threshold and release neither fires nor releases: stays on
    const s2 = createAlarmState();
    stepAlarm(s2, true, false, p);
    stepAlarm(s2, true, false, p);
    for (let i = 0; i < 10; i++) assert.equal(stepAlarm(s2, false, false, p), true);
  });
});
