/**
 * Server-streaming watches over FSM changes. Each watcher keeps only the set
 * of keys that changed since it last read (latest-state semantics, like a
 * level-triggered watch): a slow client never makes the server buffer more
 * than one entry per key, and the number of keys and watchers is bounded.
 */
import { Code, ConnectError } from "../../../common/errors.ts";
import type { FsmChange } from "../fsm/fsm.ts";

export const watchersMax = 10_000;
export const pendingKeysMax = 10_000;

let activeWatchers = 0;

/**
 * Yields batches of keys (from `keyOf`, undefined = not interesting) until the
 * signal aborts. Too many pending keys ends the stream with RESOURCE_EXHAUSTED
 * (the client re-watches and re-reads the current state).
 *
 * `seed` gives keys to yield first (e.g. "send the current state"). It is
 * called right after subscribing, so a change applied while the first batch
 * is read and sent is not lost: it comes again as a change.
 */
export async function* watchKeys(
  subscribe: (listener: (changes: readonly FsmChange[]) => void) => () => void,
  keyOf: (c: FsmChange) => string | undefined,
  signal: AbortSignal,
  seed?: () => Iterable<string>,
): AsyncGenerator<string[]> {
  if (activeWatchers >= watchersMax) {
    throw new ConnectError(
      `too many watchers on this node (max ${watchersMax})`,
      Code.ResourceExhausted,
    );
  }
  activeWatchers++;
  const pending = new Set<string>();
  let overflow = false;
  let wake: (() => void) | undefined;
  const unsubscribe = subscribe((changes) => {
    for (const c of changes) {
      const k = keyOf(c);
      if (k === undefined) continue;
      pending.add(k);
      if (pending.size > pendingKeysMax) overflow = true;
    }
    if (pending.size > 0) wake?.();
  });
  if (seed) for (const k of seed()) pending.add(k);
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  try {
    while (!signal.aborted) {
      if (overflow) {
        throw new ConnectError(
          "watch fell too far behind; re-read and watch again",
          Code.ResourceExhausted,
        );
      }
      if (pending.size > 0) {
        const batch = [...pending];
        pending.clear();
        yield batch;
        continue;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
  } finally {
    activeWatchers--;
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
