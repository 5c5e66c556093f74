/**
 * A fetch whose AbortSignal always works, for the whole life of the request.
 *
 * Why: Node's built-in fetch (undici, at least through 6.x/7.x) links the
 * caller's signal to the request only through a WeakRef to an internal
 * AbortController. Once a GC has collected that controller (the Request
 * object is unreachable while a response streams), aborting the caller's
 * signal does nothing: a pending fetch() never rejects and a response body
 * never ends until the server ends it (nodejs/undici#3644, nodejs/node#55428).
 * For the SDK that meant a WatchHandovers stream that `close()` could not
 * stop, so close() hung until the server-side deadline (watchMaxDurationMs).
 *
 * The wrapper holds the signal itself: an abort rejects a fetch still waiting
 * for headers (the late response's body is cancelled when it comes), and
 * errors a body being read while cancelling undici's own reader, which closes
 * the connection. Harmless where fetch has no such bug (browsers).
 */

export type FetchFn = typeof globalThis.fetch;

const wrapped = new WeakSet<FetchFn>();

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

export function abortableFetch(base: FetchFn): FetchFn {
  if (wrapped.has(base)) return base;
  const f: FetchFn = async (input, init) => {
    const signal = init?.signal ?? undefined;
    if (!signal) return base(input, init);
    if (signal.aborted) throw abortReason(signal);
    const pending = base(input, init);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortReason(signal));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    let res: Response;
    try {
      res = await Promise.race([pending, aborted]);
    } catch (err) {
      // The request may still complete underneath; never leave its body open.
      pending.then((r) => r.body?.cancel().catch(() => {})).catch(() => {});
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort!);
    }
    const body = res.body;
    if (!body) return res;
    return new Response(followSignal(body, signal), {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
  wrapped.add(f);
  return f;
}

/** A stream reading `src` that errors (and cancels `src`) when `signal` aborts. */
function followSignal(
  src: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): ReadableStream<Uint8Array> {
  const reader = src.getReader();
  let onAbort: (() => void) | undefined;
  const release = () => {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    onAbort = undefined;
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      onAbort = () => {
        release();
        const reason = abortReason(signal);
        controller.error(reason);
        reader.cancel(reason).catch(() => {});
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      try {
        const r = await reader.read();
        if (signal.aborted) return; // already errored by onAbort
        if (r.done) {
          release();
          controller.close();
        } else {
          controller.enqueue(r.value);
        }
      } catch (err) {
        release();
        if (!signal.aborted) controller.error(err);
      }
    },
    cancel(reason) {
      release();
      return reader.cancel(reason);
    },
  });
}
