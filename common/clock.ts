/**
 * Time as an input. The deterministic core (Raft, FSM, planners, models) never
 * reads the clock itself; runtimes pass a Clock in, tests pass a manual one.
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch (may jump; use for timestamps only). */
  nowMs(): number;
  /** Monotonic milliseconds from an arbitrary origin (never goes back; use for durations). */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

export interface ManualClock extends Clock {
  /** Moves both clocks forward by `ms` (must be >= 0). */
  advance(ms: number): void;
  set(nowMs: number): void;
}

export function createManualClock(startMs = 0): ManualClock {
  let wall = startMs;
  let mono = 0;
  return {
    nowMs: () => wall,
    monotonicMs: () => mono,
    advance(ms: number) {
      if (!(ms >= 0)) throw new RangeError(`clock cannot move back (advance by ${ms} ms)`);
      wall += ms;
      mono += ms;
    },
    set(nowMs: number) {
      wall = nowMs;
    },
  };
}
