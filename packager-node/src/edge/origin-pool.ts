/**
 * The origins an edge proxies, in priority order, with per-origin health:
 * a network error, timeout or 5xx (other than a 503 "not yet/draining"
 * answer) counts as a failure and puts the origin in exponential backoff.
 * Requests try healthy origins first in priority order, then — rather than
 * failing outright — origins still in backoff.
 */
import type { Clock } from "../../../common/clock.ts";

export interface OriginHealth {
  readonly url: string;
  consecutiveFailures: number;
  backoffUntilMono: number;
  lastError: string | undefined;
  requests: number;
  failures: number;
}

export class OriginPool {
  readonly origins: OriginHealth[];

  constructor(
    urls: readonly string[],
    private readonly opts: { backoffMs: number; backoffMaxMs: number; clock: Clock },
  ) {
    this.origins = urls.map((u) => ({
      url: u.replace(/\/+$/, ""),
      consecutiveFailures: 0,
      backoffUntilMono: 0,
      lastError: undefined,
      requests: 0,
      failures: 0,
    }));
  }

  /** Origins to try for one request: healthy ones in priority order, then those in backoff. */
  order(): OriginHealth[] {
    const now = this.opts.clock.monotonicMs();
    const healthy = this.origins.filter((o) => o.backoffUntilMono <= now);
    const backingOff = this.origins.filter((o) => o.backoffUntilMono > now);
    return [...healthy, ...backingOff];
  }

  isHealthy(o: OriginHealth): boolean {
    return o.backoffUntilMono <= this.opts.clock.monotonicMs();
  }

  succeeded(o: OriginHealth): void {
    o.requests++;
    o.consecutiveFailures = 0;
    o.backoffUntilMono = 0;
  }

  failed(o: OriginHealth, error: string): void {
    o.requests++;
    o.failures++;
    o.consecutiveFailures++;
    o.lastError = error;
    const backoff = Math.min(
      this.opts.backoffMaxMs,
      this.opts.backoffMs * 2 ** Math.min(30, o.consecutiveFailures - 1),
    );
    o.backoffUntilMono = this.opts.clock.monotonicMs() + backoff;
  }

  status(): Array<{
    url: string;
    healthy: boolean;
    consecutiveFailures: number;
    backoffRemainingMs: number;
    lastError: string | null;
    requests: number;
    failures: number;
  }> {
    const now = this.opts.clock.monotonicMs();
    return this.origins.map((o) => ({
      url: o.url,
      healthy: o.backoffUntilMono <= now,
      consecutiveFailures: o.consecutiveFailures,
      backoffRemainingMs: Math.max(0, Math.round(o.backoffUntilMono - now)),
      lastError: o.lastError ?? null,
      requests: o.requests,
      failures: o.failures,
    }));
  }
}
