/**
 * Small async helpers shared by the SDK: abortable sleep, jittered backoff,
 * linked abort signals and timers that never keep a Node process alive.
 */

export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  initialMs: number;
  /** Cap on any single delay, ms. */
  maxMs: number;
}

/**
 * Exponential backoff with "equal jitter": the delay for `attempt` (1-based)
 * is uniformly drawn from [d/2, d] where d = min(maxMs, initialMs·2^(attempt-1)),
 * so a crowd of clients that lost the same server does not come back in step.
 */
export function backoffDelayMs(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exp = Math.min(30, Math.max(0, attempt - 1));
  const d = Math.min(opts.maxMs, opts.initialMs * 2 ** exp);
  return Math.round(d / 2 + (random() * d) / 2);
}

/** A timer that does not keep a Node process alive (no-op in browsers). */
export function unrefTimer(t: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  (t as unknown as { unref?: () => void }).unref?.();
  return t;
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      },
      Math.max(0, ms),
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * An AbortController that also aborts when any of `parents` aborts, plus an
 * optional timeout. `dispose()` removes the listeners (call it when done so
 * long-lived parents do not accumulate them).
 */
export function linkedAbort(
  parents: readonly (AbortSignal | undefined)[],
  timeoutMs?: number,
): { signal: AbortSignal; abort(reason?: unknown): void; dispose(): void; timedOut(): boolean } {
  const ctl = new AbortController();
  let timedOut = false;
  const onAbort = () => ctl.abort();
  for (const p of parents) {
    if (!p) continue;
    if (p.aborted) ctl.abort();
    else p.addEventListener("abort", onAbort, { once: true });
  }
  const timer =
    timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          ctl.abort(new Error(`timed out after ${timeoutMs} ms`));
        }, timeoutMs)
      : undefined;
  return {
    signal: ctl.signal,
    abort: (reason?: unknown) => ctl.abort(reason),
    dispose() {
      if (timer !== undefined) clearTimeout(timer);
      for (const p of parents) p?.removeEventListener("abort", onAbort);
    },
    timedOut: () => timedOut,
  };
}

/** Nearest-rank percentile of a sorted ascending array (p in [0, 100]); 0 when empty. */
export function percentile(sortedAsc: readonly number[], p: number): number {
  if (sortedAsc.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sortedAsc.length);
  return sortedAsc[Math.min(sortedAsc.length - 1, Math.max(0, rank - 1))]!;
}
