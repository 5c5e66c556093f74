/**
 * Reconnect delays: exponential with "equal jitter" (half fixed, half random),
 * capped. Every delay lies in [ceil/2, ceil] where ceil = min(maxMs,
 * initialMs * multiplier^attempt), so agents that lost the same leader spread
 * their reconnects without any of them waiting longer than maxMs. Pure:
 * randomness comes in as an Rng.
 */
import type { Rng } from "../../common/rng.ts";

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Growth per failed attempt; default 2. */
  multiplier?: number;
}

export interface Backoff {
  /** Delay before the next attempt; each call counts one more failed attempt. */
  nextDelayMs(): number;
  /** Call after a successful connection: the next failure starts from initialMs again. */
  reset(): void;
  readonly attempts: number;
}

export function createBackoff(opts: BackoffOptions, rng: Rng): Backoff {
  const multiplier = opts.multiplier ?? 2;
  if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs) || !(multiplier >= 1)) {
    throw new RangeError(
      `backoff needs 0 < initialMs <= maxMs and multiplier >= 1, got ${opts.initialMs}, ${opts.maxMs}, ${multiplier}`,
    );
  }
  let attempts = 0;
  return {
    nextDelayMs() {
      // The exponent is bounded so the ceiling never overflows to Infinity.
      const ceil = Math.min(opts.maxMs, opts.initialMs * multiplier ** Math.min(attempts, 64));
      attempts++;
      const half = ceil / 2;
      return Math.round(half + rng.next() * half);
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}
