/**
 * Bounded single-consumer async queue. When full, `push` drops the OLDEST
 * item and counts it: for notices the newest (highest epoch) is what matters,
 * and a consumer that fell behind recovers the rest from the coordinator.
 * Never unbounded.
 */
export interface BoundedQueue<T> extends AsyncIterableIterator<T> {
  /** Adds an item; drops the oldest when `capacityMax` items are waiting. No-op after end. */
  push(item: T): void;
  /** Ends iteration once the items already queued are consumed. */
  end(): void;
  readonly size: number;
  /** Items dropped because the queue was full. */
  readonly droppedCount: number;
  readonly ended: boolean;
  /** Stops iterating: drops what is queued, ends, and unregisters the queue from its producer. */
  return(): Promise<IteratorResult<T>>;
}

export function createBoundedQueue<T>(
  capacityMax: number,
  opts: { onReturn?: () => void } = {},
): BoundedQueue<T> {
  if (!(Number.isInteger(capacityMax) && capacityMax >= 1)) {
    throw new RangeError(`queue capacity must be an integer >= 1 (got ${capacityMax})`);
  }
  // Ring buffer: `head` is the oldest item, `count` items follow it. It starts
  // small and doubles up to capacityMax, so thousands of idle queues (one per
  // SDK client in a viewer farm) cost little memory.
  let ring: (T | undefined)[] = new Array(Math.min(capacityMax, 4));
  let head = 0;
  let count = 0;
  let dropped = 0;
  let ended = false;
  const waiters: ((r: IteratorResult<T>) => void)[] = [];

  const take = (): T => {
    const item = ring[head] as T;
    ring[head] = undefined;
    head = (head + 1) % ring.length;
    count--;
    return item;
  };
  const grow = () => {
    const next: (T | undefined)[] = new Array(Math.min(capacityMax, ring.length * 2));
    for (let i = 0; i < count; i++) next[i] = ring[(head + i) % ring.length];
    ring = next;
    head = 0;
  };

  const q: BoundedQueue<T> = {
    push(item: T) {
      if (ended) return;
      const waiter = waiters.shift();
      if (waiter) {
        waiter({ value: item, done: false });
        return;
      }
      if (count === capacityMax) {
        take();
        dropped++;
      } else if (count === ring.length) {
        grow();
      }
      ring[(head + count) % ring.length] = item;
      count++;
    },
    end() {
      if (ended) return;
      ended = true;
      for (const w of waiters.splice(0)) w({ value: undefined, done: true });
    },
    get size() {
      return count;
    },
    get droppedCount() {
      return dropped;
    },
    get ended() {
      return ended;
    },
    next(): Promise<IteratorResult<T>> {
      if (count > 0) return Promise.resolve({ value: take(), done: false });
      if (ended) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => waiters.push(resolve));
    },
    return(): Promise<IteratorResult<T>> {
      // The consumer stopped (break/return): drop what is left and unregister.
      count = 0;
      ring.fill(undefined);
      q.end();
      opts.onReturn?.();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return q;
    },
  };
  return q;
}
