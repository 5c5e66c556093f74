/**
 * Timers as an input. The source schedules everything (part deadlines,
 * retry backoff, request timeouts) through a Scheduler so tests can drive a
 * manual one together with a manual Clock and run minutes of stream in
 * milliseconds; production uses the system timers.
 */
import type { ManualClock } from "../../../common/clock.ts";

export interface TimerHandle {
  cancel(): void;
}

export interface Scheduler {
  /** Runs `fn` once after `delayMs` (clamped to >= 0). */
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
}

export const systemScheduler: Scheduler = {
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(t) };
  },
};

export interface ManualScheduler extends Scheduler {
  /**
   * Moves the clock forward by `ms`, firing due timers in due order (ties in
   * creation order) with the clock set to each timer's due time. Returns the
   * number of timers fired. Timers created while firing run too if due.
   */
  advance(ms: number): number;
  /** Timers not yet fired or cancelled. */
  pending(): number;
}

/** A scheduler driven by `advance`, sharing time with a ManualClock (monotonic ms). */
export function createManualScheduler(clock: ManualClock, maxFiresPerAdvance = 100_000) {
  interface Timer {
    dueMs: number;
    seq: number;
    fn: () => void;
    live: boolean;
  }
  let timers: Timer[] = [];
  let seq = 0;
  const scheduler: ManualScheduler = {
    setTimeout(fn, delayMs) {
      const timer: Timer = {
        dueMs: clock.monotonicMs() + Math.max(0, delayMs),
        seq: seq++,
        fn,
        live: true,
      };
      timers.push(timer);
      return {
        cancel() {
          timer.live = false;
        },
      };
    },
    advance(ms) {
      if (!(ms >= 0)) throw new RangeError(`cannot advance by ${ms} ms`);
      const endMs = clock.monotonicMs() + ms;
      let fired = 0;
      for (;;) {
        timers = timers.filter((t) => t.live);
        let next: Timer | undefined;
        for (const t of timers) {
          if (
            t.dueMs <= endMs &&
            (!next || t.dueMs < next.dueMs || (t.dueMs === next.dueMs && t.seq < next.seq))
          ) {
            next = t;
          }
        }
        if (!next) break;
        if (++fired > maxFiresPerAdvance) {
          throw new Error(
            `more than ${maxFiresPerAdvance} timers fired in one advance (a timer loop?)`,
          );
        }
        clock.advance(next.dueMs - clock.monotonicMs());
        next.live = false;
        next.fn();
      }
      clock.advance(endMs - clock.monotonicMs());
      return fired;
    },
    pending: () => timers.filter((t) => t.live).length,
  };
  return scheduler;
}
