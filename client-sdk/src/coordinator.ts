/**
 * Calls to the coordinator API over Connect (connect-web: fetch-based, works
 * in browsers and Node 20+), with failover between coordinator nodes.
 *
 * Policy for one operation:
 * - Try the preferred URL; on a retriable failure move to the next URL, and
 *   after a full round over the list wait a jittered backoff.
 * - A follower that cannot serve a call answers UNAVAILABLE naming the
 *   leader's API address, in the `x-understudy-leader` header or in the
 *   message ("... leader "c2" at 127.0.0.1:7001"). The next attempt goes
 *   straight there (no backoff), and that address becomes preferred.
 *   Learned addresses are added to the list (bounded by `learnedUrlsMax`).
 * - Each attempt has its own timeout (`rpcTimeoutMs`); the operation gives up
 *   after `attemptsMax` attempts and rethrows the last error.
 * Non-retriable codes (INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, ...) fail
 * at once: another node would answer the same.
 */
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { abortableFetch } from "./abortable-fetch.ts";
import { type BackoffOptions, backoffDelayMs, sleep } from "./async.ts";

/** Response header naming the leader's API address (host:port) on a redirect. */
export const leaderHeader = "x-understudy-leader";

export interface CoordinatorPoolOptions {
  /** Connect base URLs of coordinator API listeners, e.g. "http://10.0.0.1:7000". */
  urls: readonly string[];
  fetch?: typeof globalThis.fetch;
  /** Overrides how a transport is made for a base URL (tests, custom auth). */
  transport?: (baseUrl: string) => Transport;
  random?: () => number;
  /** Per-attempt timeout, ms. */
  rpcTimeoutMs?: number;
  /** Attempts per operation (all URLs together). */
  attemptsMax?: number;
  backoff?: BackoffOptions;
  /** Bound on leader addresses learned from redirects and added to `urls`. */
  learnedUrlsMax?: number;
}

export interface CallContext {
  readonly baseUrl: string;
  readonly transport: Transport;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface CoordinatorPool {
  /** Configured plus learned URLs. */
  urls(): readonly string[];
  /** URL the next operation starts with; undefined when no URL is configured. */
  preferred(): string | undefined;
  /** Runs `op` with failover; see the file comment for the policy. */
  call<T>(
    op: (ctx: CallContext) => Promise<T>,
    opts?: { signal?: AbortSignal; timeoutMs?: number; attemptsMax?: number },
  ): Promise<T>;
  /** Records a failure seen outside `call` (e.g. a broken stream) and picks the next URL. */
  reportFailure(baseUrl: string, err: unknown): void;
  transportFor(baseUrl: string): Transport;
}

export const retriableCodes: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Unknown,
  Code.Internal,
  Code.Aborted,
  Code.ResourceExhausted,
]);

export function isRetriable(err: unknown): boolean {
  return retriableCodes.has(ConnectError.from(err).code);
}

/**
 * The leader's address named by a redirect, as a base URL with the scheme of
 * `fromUrl`; undefined if the error names none.
 */
export function leaderUrlFromError(err: unknown, fromUrl: string): string | undefined {
  const ce = ConnectError.from(err);
  if (ce.code !== Code.Unavailable) return undefined;
  const header = ce.metadata.get(leaderHeader)?.trim();
  const fromMessage = /\bat\s+((?:https?:\/\/)?[A-Za-z0-9.\-[\]:]+:\d+)/.exec(ce.rawMessage)?.[1];
  const addr = header || fromMessage;
  if (!addr) return undefined;
  if (/^https?:\/\//.test(addr)) return trimSlash(addr);
  let scheme = "http:";
  try {
    scheme = new URL(fromUrl).protocol;
  } catch {
    // Keep http: for an unparsable base URL (it failed anyway).
  }
  return `${scheme}//${addr}`;
}

function trimSlash(u: string): string {
  return u.replace(/\/+$/, "");
}

export function createCoordinatorPool(opts: CoordinatorPoolOptions): CoordinatorPool {
  const configured = opts.urls.map(trimSlash);
  for (const u of configured) {
    if (!/^https?:\/\//.test(u)) {
      throw new TypeError(
        `coordinator URL "${u}" must be an http(s) base URL, e.g. "http://127.0.0.1:7000"`,
      );
    }
  }
  const urls = [...configured];
  const learnedMax = opts.learnedUrlsMax ?? 8;
  let learned = 0;
  let index = 0;
  const random = opts.random ?? Math.random;
  const timeoutMs = opts.rpcTimeoutMs ?? 3000;
  const backoff = opts.backoff ?? { initialMs: 200, maxMs: 5000 };
  const transports = new Map<string, Transport>();
  // Watch streams live long: their abort must work even after a GC (see abortable-fetch.ts).
  const fetchFn = abortableFetch(opts.fetch ?? globalThis.fetch.bind(globalThis));

  const transportFor = (baseUrl: string): Transport => {
    let t = transports.get(baseUrl);
    if (!t) {
      t =
        opts.transport?.(baseUrl) ??
        createConnectTransport({ baseUrl, useBinaryFormat: true, fetch: fetchFn });
      transports.set(baseUrl, t);
    }
    return t;
  };

  /** Makes `url` preferred, adding it if new (within the learned bound). */
  const prefer = (url: string): boolean => {
    let i = urls.indexOf(url);
    if (i < 0) {
      if (learned >= learnedMax) return false;
      learned++;
      urls.push(url);
      i = urls.length - 1;
    }
    index = i;
    return true;
  };

  const reportFailure = (baseUrl: string, err: unknown): boolean => {
    const hint = leaderUrlFromError(err, baseUrl);
    if (hint && hint !== baseUrl && prefer(hint)) return true;
    if (urls[index] === baseUrl) index = (index + 1) % Math.max(1, urls.length);
    return false;
  };

  return {
    urls: () => urls,
    preferred: () => urls[index],
    transportFor,
    reportFailure(baseUrl, err) {
      reportFailure(baseUrl, err);
    },
    async call(op, callOpts = {}) {
      if (urls.length === 0) {
        throw new ConnectError("no coordinator URLs configured", Code.FailedPrecondition);
      }
      const attemptsMax = callOpts.attemptsMax ?? Math.max(3, 2 * urls.length);
      let lastErr: unknown;
      let sinceBackoff = 0;
      let rounds = 0;
      for (let attempt = 1; attempt <= attemptsMax; attempt++) {
        if (callOpts.signal?.aborted) throw new ConnectError("aborted", Code.Canceled);
        const baseUrl = urls[index]!;
        try {
          return await op({
            baseUrl,
            transport: transportFor(baseUrl),
            timeoutMs: callOpts.timeoutMs ?? timeoutMs,
            ...(callOpts.signal ? { signal: callOpts.signal } : {}),
          });
        } catch (err) {
          lastErr = err;
          if (callOpts.signal?.aborted || !isRetriable(err)) throw err;
          const redirected = reportFailure(baseUrl, err);
          sinceBackoff++;
          if (!redirected && sinceBackoff >= urls.length && attempt < attemptsMax) {
            sinceBackoff = 0;
            rounds++;
            await sleep(backoffDelayMs(rounds, backoff, random), callOpts.signal);
          }
        }
      }
      throw lastErr;
    },
  };
}
