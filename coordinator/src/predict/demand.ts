/**
 * Short-term viewer demand per key (stream/rendition) for the packaging
 * planner: damped Holt-Winters (additive) over session counts.
 *
 * Observations are averaged into buckets of `bucketMs`; each closed bucket
 * updates level, trend and (if `seasonMs` > 0) a seasonal offset for its
 * slot in the season. A silent stretch advances the damped trend without
 * data; longer than `maxGapBuckets` and the level restarts from the next
 * observation (the seasonal shape is kept). The bucket in progress is folded
 * in provisionally when forecasting, so a sudden surge shows at once.
 *
 * `forecast(key, aheadMs)` forecasts for the time `aheadMs` after the key's
 * latest observation (the forecaster has no clock). `upper`/`lower` are a
 * band of ±intervalZ one-step error standard deviations scaled by √h.
 * Memory is bounded by `keysMax` (least recently observed keys are dropped).
 */
export interface DemandForecasterOptions {
  bucketMs?: number;
  alpha?: number;
  beta?: number;
  gamma?: number;
  /** Trend damping per bucket, in (0, 1]. */
  phi?: number;
  /** Season length; 0 disables seasonality. Must be a multiple of bucketMs. */
  seasonMs?: number;
  keysMax?: number;
  maxGapBuckets?: number;
  intervalZ?: number;
}

export interface DemandForecast {
  readonly sessions: number;
  readonly lower: number;
  readonly upper: number;
}

export interface DemandForecaster {
  /** False (and nothing stored) for a non-finite or negative count, or a time before the key's latest. */
  observe(key: string, tMs: number, sessions: number): boolean;
  /** undefined for a key never observed (or dropped). */
  forecast(key: string, aheadMs: number): DemandForecast | undefined;
  forget(key: string): void;
  readonly size: number;
}

interface KeyState {
  level: number;
  trend: number;
  season: Float64Array | undefined;
  errVar: number;
  /** Index of the bucket in progress (floor(t / bucketMs)). */
  bucket: number;
  sum: number;
  count: number;
  /** Closed buckets so far; 0 until the first bucket closes. */
  closed: number;
  /** False during the first season, while `season` holds raw values. */
  seasonReady: boolean;
  seasonStart: number;
  lastTMs: number;
}

export const DEMAND_SEASON_SLOTS_MAX = 10_080;

export function createDemandForecaster(opts: DemandForecasterOptions = {}): DemandForecaster {
  const bucketMs = opts.bucketMs ?? 60_000;
  const alpha = opts.alpha ?? 0.3;
  const beta = opts.beta ?? 0.1;
  const gamma = opts.gamma ?? 0.1;
  const phi = opts.phi ?? 0.98;
  const seasonMs = opts.seasonMs ?? 0;
  const keysMax = opts.keysMax ?? 10_000;
  const maxGap = opts.maxGapBuckets ?? 60;
  const z = opts.intervalZ ?? 1.64;
  if (!(bucketMs > 0)) throw new RangeError(`bucketMs must be > 0, got ${bucketMs}`);
  if (!(phi > 0 && phi <= 1)) throw new RangeError(`phi must be in (0, 1], got ${phi}`);
  const slots = seasonMs > 0 ? Math.round(seasonMs / bucketMs) : 0;
  if (
    seasonMs > 0 &&
    (slots * bucketMs !== seasonMs || slots < 2 || slots > DEMAND_SEASON_SLOTS_MAX)
  ) {
    throw new RangeError(
      `seasonMs must be 2..${DEMAND_SEASON_SLOTS_MAX} whole buckets of ${bucketMs} ms, got ${seasonMs}`,
    );
  }
  const keys = new Map<string, KeyState>();
  const slotOf = (bucket: number) => ((bucket % slots) + slots) % slots;

  /**
   * Applies one closed bucket with mean y. With seasonality, the first
   * season only records raw values (forecasts use level and trend meanwhile);
   * when it completes, the seasonal offsets start as each slot's deviation
   * from that season's mean: the usual Holt-Winters initialisation, without
   * which the level soaks up the seasonal swing.
   */
  function update(s: KeyState, y: number, bucket: number): void {
    const slot = s.season ? slotOf(bucket) : 0;
    const seasonal = s.season && s.seasonReady ? s.season[slot]! : 0;
    if (s.closed === 0) {
      s.level = y - seasonal;
      s.trend = 0;
      s.closed = 1;
      if (s.season && !s.seasonReady) {
        s.season.fill(Number.NaN);
        s.season[slot] = y;
        s.seasonStart = bucket;
      }
      return;
    }
    const err = y - (s.level + phi * s.trend + seasonal);
    s.errVar = s.closed === 1 ? err * err : 0.9 * s.errVar + 0.1 * err * err;
    const level = alpha * (y - seasonal) + (1 - alpha) * (s.level + phi * s.trend);
    s.trend = beta * (level - s.level) + (1 - beta) * phi * s.trend;
    s.level = level;
    s.closed++;
    if (!s.season) return;
    if (s.seasonReady) {
      s.season[slot] = gamma * (y - level) + (1 - gamma) * seasonal;
      return;
    }
    s.season[slot] = y;
    if (bucket - s.seasonStart + 1 >= slots) {
      let sum = 0;
      let n = 0;
      for (const v of s.season) {
        if (!Number.isNaN(v)) {
          sum += v;
          n++;
        }
      }
      const mean = sum / n;
      for (let i = 0; i < slots; i++) {
        const v = s.season[i]!;
        s.season[i] = Number.isNaN(v) ? 0 : v - mean;
      }
      s.seasonReady = true;
      s.level = y - s.season[slot]!;
      s.trend = 0;
    }
  }

  /** Advances over silent buckets between the last closed one and `bucket`. */
  function skip(s: KeyState, missing: number): void {
    if (missing > maxGap) {
      s.closed = 0;
      return;
    }
    for (let i = 0; i < missing; i++) {
      s.level += phi * s.trend;
      s.trend *= phi;
    }
  }

  return {
    get size() {
      return keys.size;
    },
    observe(key, tMs, sessions) {
      if (!Number.isFinite(tMs) || !Number.isFinite(sessions) || sessions < 0) return false;
      const b = Math.floor(tMs / bucketMs);
      let s = keys.get(key);
      if (s !== undefined && tMs < s.lastTMs) return false;
      if (s === undefined) {
        s = {
          level: 0,
          trend: 0,
          season: slots > 0 ? new Float64Array(slots) : undefined,
          errVar: 0,
          bucket: b,
          sum: 0,
          count: 0,
          closed: 0,
          seasonReady: false,
          seasonStart: b,
          lastTMs: tMs,
        };
        if (keys.size >= keysMax) keys.delete(keys.keys().next().value!);
      } else {
        keys.delete(key); // re-insert below: Map order = least recently observed first
        if (b > s.bucket) {
          if (s.count > 0) update(s, s.sum / s.count, s.bucket);
          skip(s, b - s.bucket - 1);
          s.bucket = b;
          s.sum = 0;
          s.count = 0;
        }
      }
      keys.set(key, s);
      s.sum += sessions;
      s.count++;
      s.lastTMs = tMs;
      return true;
    },
    forecast(key, aheadMs) {
      const live = keys.get(key);
      if (live === undefined) return undefined;
      if (!(aheadMs >= 0)) throw new RangeError(`aheadMs must be >= 0, got ${aheadMs}`);
      const s: KeyState = {
        ...live,
        season: live.season ? Float64Array.from(live.season) : undefined,
      };
      if (s.count > 0) update(s, s.sum / s.count, s.bucket);
      const target = Math.floor((s.lastTMs + aheadMs) / bucketMs);
      const h = Math.max(0, target - s.bucket);
      let trendSum = 0;
      let f = 1;
      for (let i = 1; i <= h; i++) {
        f *= phi;
        trendSum += f;
      }
      const seasonal = s.season && s.seasonReady ? s.season[slotOf(target)]! : 0;
      const mean = s.level + s.trend * trendSum + seasonal;
      const band = z * Math.sqrt(s.errVar * Math.max(1, h));
      return {
        sessions: Math.max(0, mean),
        lower: Math.max(0, mean - band),
        upper: Math.max(0, mean + band),
      };
    },
    forget(key) {
      keys.delete(key);
    },
  };
}
