/**
 * The encoder-pool live source: loops the fixture forever in real time on a
 * continuous timeline (see timeline.ts) and pushes the shards this encoder
 * owns (see shard-map.ts) to their packager targets (see pusher.ts).
 *
 * Timing: shard n is pushed when its media end time is reached in wall-clock
 * time (origin + (n+1) * partDurationMs), as a live encoder can only emit a
 * part once it has encoded all of it. If the process falls behind (a stalled
 * event loop, a suspended VM, the wall clock jumping forward) it produces at
 * most `catchUpShardsMax` overdue shards and skips older ones: they would be
 * outside the live window anyway.
 *
 * Takeover: a new shard map may hand this encoder shards that are already
 * complete (the coordinator rewinds a lost encoder's range to the first shard
 * its packagers never received). Those shards, at most `takeoverShardsMax`
 * before the one in progress and none before this source started, are
 * produced at once, in order and under the new epoch, ahead of the live
 * ones (each push lane is FIFO), so the packagers get every part in sequence.
 * Shards the previous assignment already gave this encoder are not produced
 * again.
 *
 * Segment granularity: segments are cut by the stream's segment schedule
 * (`segmentSchedule`, replaced at run time by `setSegmentSchedule` when the
 * coordinator commits a change). A change applies from its first shard on,
 * which the coordinator commits ahead of time; MSNs and part indexes then
 * continue from the boundary, and every part push says how long its segment
 * is (`X-Understudy-Segment-Duration-Ms`), so packagers close segments of
 * any length without knowing the schedule. A schedule that arrives after
 * shards it renumbers were pushed cannot undo those pushes: that is logged
 * (it means the change reached this encoder later than the coordinator's
 * lead time).
 *
 * Complete segments (`segmentPush`):
 * - "last-shard-owner" (default): the encoder that owns the last shard of
 *   segment m also pushes `{m}.m4s`, the concatenation of m's parts. It can,
 *   because shard bytes depend only on (fixture, shard number), so it can
 *   rebuild the parts other encoders pushed, byte for byte. With a static
 *   pool in "segment" units that encoder owns all of m's parts anyway.
 * - "never": only parts are pushed; the packager closes a segment when all
 *   of its parts are present. This is what a real encoder pool (that cannot
 *   re-encode another encoder's shards) would use.
 */
import { type Clock, systemClock } from "../../../common/clock.ts";
import { ConfigError } from "../../../common/config.ts";
import { failedPrecondition, invalidArgument } from "../../../common/errors.ts";
import { type Logger, silentLogger } from "../../../common/log.ts";
import { createRng, type Rng } from "../../../common/rng.ts";
import { type Fixture, type FixtureRendition, sha256Hex } from "./fixture.ts";
import {
  createHttpClient,
  createPushTarget,
  defaultPushLimits,
  type HttpSend,
  type PushItem,
  type PushLimits,
  type PushTarget,
  type RenditionInit,
  type TargetStatus,
} from "./pusher.ts";
import { type Scheduler, systemScheduler, type TimerHandle } from "./scheduler.ts";
import { type Assignment, assignmentEpoch, parseShardMap, targetsFor } from "./shard-map.ts";
import {
  buildSegment,
  buildShard,
  firstShardOf,
  type ScheduleEntry,
  shardAt,
  shardPosition,
  type Timeline,
  timelineOf,
} from "./timeline.ts";

export type SegmentPush = "last-shard-owner" | "never";

export interface SourceOptions {
  readonly streamId: string;
  readonly encoderId: string;
  readonly fixture: Fixture;
  /** Rendition ids to produce (default: all of the fixture's). */
  readonly renditions?: readonly string[];
  /** Wall-clock ms of media time 0; every encoder of the pool must use the same value. */
  readonly timelineOriginMs: number;
  /**
   * How segments are cut (the coordinator's Stream.segment_schedule); every
   * encoder of the pool must use the same. Default: the fixture's segment
   * duration from shard 0.
   */
  readonly segmentSchedule?: readonly ScheduleEntry[];
  readonly assignment: Assignment;
  readonly segmentPush?: SegmentPush;
  readonly limits?: Partial<PushLimits>;
  readonly authToken?: string;
  /** See PushTargetOptions.onStaleEpoch. */
  readonly onStaleEpoch?: () => void;
  /** Overdue shards produced after a stall before older ones are skipped. */
  readonly catchUpShardsMax?: number;
  /** Past shards a new shard map may hand over for immediate production (default 16). */
  readonly takeoverShardsMax?: number;
  /** Bound on distinct packager targets held at once. */
  readonly targetsMax?: number;
  readonly clock?: Clock;
  readonly scheduler?: Scheduler;
  readonly rng?: Rng;
  readonly logger?: Logger;
  /** Replaces the real HTTP client (tests that need no sockets). */
  readonly send?: HttpSend;
}

export interface SourceStatus {
  readonly streamId: string;
  readonly encoderId: string;
  readonly running: boolean;
  readonly epoch: number;
  readonly assignment:
    | { kind: "static"; index: number; size: number; unit: string; targets: readonly string[] }
    | { kind: "map"; ranges: number };
  readonly timeline: {
    originMs: number;
    partDurationMs: number;
    /** Of the segment being produced next. */
    segmentDurationMs: number;
    partsPerSegment: number;
    loopDurationMs: number;
    segmentSchedule: readonly ScheduleEntry[];
  };
  readonly renditions: readonly string[];
  readonly nextShard: number;
  readonly nextMsn: number;
  readonly lastShard: number | undefined;
  readonly shards: { produced: number; notOwned: number; skipped: number; takenOver: number };
  readonly targets: readonly TargetStatus[];
  readonly nowMs: number;
}

export interface LiveSource {
  /** The timeline in force (replaced by setSegmentSchedule). */
  readonly timeline: Timeline;
  /** Begins producing from the shard in progress now (its end is the first deadline). */
  start(): void;
  /** Stops producing and pushing; in-flight requests are aborted. */
  stop(): Promise<void>;
  /**
   * Replaces the shard assignment with a coordinator shard map. It applies from
   * the next shard produced (`effectiveFromShard`); past shards it newly hands
   * to this encoder are produced at once (`takenOver`, see Takeover above).
   * Throws ConnectError InvalidArgument naming the field for a malformed map,
   * FailedPrecondition when its epoch is not newer than the current one.
   */
  setShardMap(map: unknown): {
    epoch: number;
    effectiveFromShard: number;
    takenOver: readonly number[];
  };
  /**
   * Replaces the segment schedule (the coordinator's, whole). Shards not yet
   * produced are cut by it. Returns the shards already pushed that it numbers
   * differently (a change learned too late; empty normally). Throws
   * ConnectError InvalidArgument for a schedule this fixture cannot follow.
   */
  setSegmentSchedule(schedule: readonly ScheduleEntry[]): { renumberedShards: readonly number[] };
  status(): SourceStatus;
  /** Resolves when no push request is in flight (for tests driving a manual scheduler). */
  settled(): Promise<void>;
}

export function createSource(opts: SourceOptions): LiveSource {
  const clock = opts.clock ?? systemClock;
  const scheduler = opts.scheduler ?? systemScheduler;
  const logger = (opts.logger ?? silentLogger).child({
    stream: opts.streamId,
    encoder: opts.encoderId,
  });
  const rng = opts.rng ?? createRng(clock.nowMs());
  const limits: PushLimits = { ...defaultPushLimits, ...opts.limits };
  const catchUpShardsMax = opts.catchUpShardsMax ?? 4;
  const takeoverShardsMax = opts.takeoverShardsMax ?? 16;
  const targetsMax = opts.targetsMax ?? 64;
  const segmentPush = opts.segmentPush ?? "last-shard-owner";
  const fixture = opts.fixture;
  const timelineFor = (schedule: readonly ScheduleEntry[] | undefined) => {
    try {
      return timelineOf(fixture, opts.timelineOriginMs, schedule);
    } catch (err) {
      if (err instanceof RangeError) throw invalidArgument("segmentSchedule", err.message);
      throw err;
    }
  };
  let timeline = timelineFor(opts.segmentSchedule);
  /** Schedule entries (by sinceShard) already warned about for cutting segments off keyframes. */
  const warnedOffKeyframe = new Set<number>();

  const wanted = opts.renditions ?? fixture.renditions.map((r) => r.id);
  const renditions: FixtureRendition[] = wanted.map((id) => {
    const r = fixture.renditions.find((x) => x.id === id);
    if (!r) {
      throw invalidArgument(
        "renditions",
        `unknown rendition "${id}" (fixture has ${fixture.renditions.map((x) => x.id).join(", ")})`,
      );
    }
    return r;
  });
  const inits = new Map<string, RenditionInit>(
    renditions.map((r) => [
      r.id,
      { body: r.initBytes, sha256: sha256Hex(r.initBytes), contentType: r.contentType },
    ]),
  );

  const http = opts.send ? undefined : createHttpClient(scheduler);
  const send: HttpSend = opts.send ?? http!.send;
  const targets = new Map<string, PushTarget>();
  let assignment = opts.assignment;
  let timer: TimerHandle | undefined;
  let running = false;
  let nextShard = 0;
  /** nextShard at start(): this source has no media before it. */
  let startShard = 0;
  let lastShard: number | undefined;
  const counts = { produced: 0, notOwned: 0, skipped: 0, takenOver: 0 };

  const targetFor = (baseUrl: string): PushTarget | undefined => {
    let t = targets.get(baseUrl);
    if (!t) {
      if (targets.size >= targetsMax) {
        logger.error("too many packager targets; not pushing to this one", { baseUrl, targetsMax });
        return undefined;
      }
      t = createPushTarget({
        baseUrl,
        streamId: opts.streamId,
        limits,
        clock,
        scheduler,
        rng: rng.fork(),
        logger,
        send,
        initFor: (id) => inits.get(id)!,
        ...(opts.authToken === undefined ? {} : { authToken: opts.authToken }),
        ...(opts.onStaleEpoch === undefined ? {} : { onStaleEpoch: opts.onStaleEpoch }),
      });
      targets.set(baseUrl, t);
    }
    return t;
  };

  /** Targets the current assignment can still push to; others are closed once drained. */
  const pruneTargets = () => {
    const live = new Set<string>(
      assignment.kind === "static"
        ? assignment.targets
        : assignment.map.ranges.flatMap((r) => r.replicaTargets),
    );
    for (const [url, t] of targets) {
      if (!live.has(url) && t.idle()) {
        t.close();
        targets.delete(url);
      }
    }
  };

  const headersFor = (
    r: FixtureRendition,
    body: Uint8Array,
    durationMs: number,
    independent: boolean,
    timelineMs: number,
    segmentMs: number,
  ): Record<string, string> => ({
    "Content-Type": r.contentType,
    "X-Understudy-Duration-Ms": String(durationMs),
    "X-Understudy-Independent": independent ? "1" : "0",
    "X-Understudy-Timeline-Ms": String(timelineMs),
    "X-Understudy-Program-Date-Time": new Date(timeline.originMs + timelineMs).toISOString(),
    "X-Understudy-Segment-Duration-Ms": String(segmentMs),
    "X-Understudy-Sha256": sha256Hex(body),
  });

  const produce = (shard: number) => {
    const pos = shardPosition(timeline, shard);
    const owned = targetsFor(assignment, opts.encoderId, shard, pos.msn);
    if (!owned) {
      counts.notOwned++;
      return;
    }
    const epoch = assignmentEpoch(assignment);
    if (pos.partIndex === 0 && !pos.independent) {
      // Once per schedule entry: the entry in force for this shard.
      let since = 0;
      for (const e of timeline.schedule) if (e.sinceShard <= shard) since = e.sinceShard;
      if (!warnedOffKeyframe.has(since)) {
        warnedOffKeyframe.add(since);
        logger.warn("segment does not start with a keyframe: the fixture cannot insert one", {
          msn: pos.msn,
          shard,
          segmentDurationMs: pos.segmentDurationMs,
          keyframeEveryMs: timeline.keyframeEveryParts * timeline.partDurationMs,
        });
      }
    }
    const pushTargets = owned.map(targetFor).filter((t): t is PushTarget => t !== undefined);
    for (const r of renditions) {
      const body = buildShard(timeline, r, shard);
      const part: PushItem = {
        kind: "part",
        rendition: r.id,
        name: `${pos.msn}.${pos.partIndex}.m4s`,
        body,
        headers: headersFor(
          r,
          body,
          timeline.partDurationMs,
          pos.independent,
          pos.timelineMs,
          pos.segmentDurationMs,
        ),
        readyAtMs: pos.readyAtMs,
      };
      for (const t of pushTargets) t.enqueue(part, epoch);
      if (pos.lastOfSegment && segmentPush === "last-shard-owner") {
        const segBody = buildSegment(timeline, r, pos.msn);
        const first = shardPosition(timeline, firstShardOf(timeline, pos.msn));
        const segment: PushItem = {
          kind: "segment",
          rendition: r.id,
          name: `${pos.msn}.m4s`,
          body: segBody,
          headers: headersFor(
            r,
            segBody,
            pos.segmentDurationMs,
            first.independent,
            first.timelineMs,
            pos.segmentDurationMs,
          ),
          readyAtMs: pos.readyAtMs,
        };
        for (const t of pushTargets) t.enqueue(segment, epoch);
      }
    }
    counts.produced++;
    lastShard = Math.max(lastShard ?? shard, shard);
  };

  /**
   * Past shards (< nextShard) the current assignment gives this encoder and
   * `previous` did not: nobody has produced them. Produced now, in order.
   */
  const takeOver = (previous: Assignment): number[] => {
    if (!running) return [];
    const shards: number[] = [];
    for (let n = Math.max(startShard, nextShard - takeoverShardsMax); n < nextShard; n++) {
      let msn: number;
      try {
        msn = shardPosition(timeline, n).msn;
      } catch {
        continue; // before the schedule this source holds: nobody can number it
      }
      if (targetsFor(previous, opts.encoderId, n, msn) !== undefined) continue;
      if (targetsFor(assignment, opts.encoderId, n, msn) === undefined) continue;
      shards.push(n);
    }
    for (const n of shards) {
      try {
        produce(n);
        counts.takenOver++;
      } catch (err) {
        logger.error("cannot produce shard", { shard: n, error: err });
      }
    }
    return shards;
  };

  const schedule = (minDelayMs: number) => {
    const readyAtMs = shardPosition(timeline, nextShard).readyAtMs;
    timer = scheduler.setTimeout(tick, Math.max(minDelayMs, readyAtMs - clock.nowMs()));
  };

  function tick() {
    timer = undefined;
    if (!running) return;
    const lastComplete = shardAt(timeline, clock.nowMs()) - 1;
    const overdue = lastComplete - nextShard + 1;
    if (overdue > catchUpShardsMax) {
      const skip = overdue - catchUpShardsMax;
      counts.skipped += skip;
      logger.warn("fell behind; skipping shards outside the catch-up bound", {
        from: nextShard,
        count: skip,
      });
      nextShard += skip;
    }
    const before = nextShard;
    for (; nextShard <= lastComplete; nextShard++) {
      try {
        produce(nextShard);
      } catch (err) {
        // A shard that cannot be built is a bug in the fixture or the tools; keep the stream going.
        logger.error("cannot produce shard", { shard: nextShard, error: err });
      }
    }
    pruneTargets();
    // A timer that fired a hair early produced nothing: retry in 1 ms rather than spin.
    schedule(nextShard === before ? 1 : 0);
  }

  return {
    get timeline() {
      return timeline;
    },
    start() {
      if (running) throw failedPrecondition("source already started");
      running = true;
      nextShard = Math.max(0, shardAt(timeline, clock.nowMs()));
      startShard = nextShard;
      logger.info("source started", {
        nextShard,
        originMs: timeline.originMs,
        renditions: renditions.map((r) => r.id),
      });
      schedule(0);
    },
    async stop() {
      running = false;
      timer?.cancel();
      timer = undefined;
      for (const t of targets.values()) t.close();
      http?.close();
      await Promise.all([...targets.values()].map((t) => t.quiescent().catch(() => undefined)));
    },
    setShardMap(value) {
      let map: ReturnType<typeof parseShardMap>;
      try {
        map = parseShardMap(value);
      } catch (err) {
        if (err instanceof ConfigError) throw invalidArgument(err.field || "shardMap", err.problem);
        throw err;
      }
      const current = assignmentEpoch(assignment);
      if (map.epoch <= current) {
        throw failedPrecondition(
          `shard map epoch ${map.epoch} is not newer than the current epoch ${current}`,
        );
      }
      const previous = assignment;
      assignment = { kind: "map", map };
      const takenOver = takeOver(previous);
      logger.info("shard map replaced", {
        epoch: map.epoch,
        effectiveFromShard: nextShard,
        ...(takenOver.length > 0
          ? { takenOverFrom: takenOver[0], takenOverCount: takenOver.length }
          : {}),
      });
      return { epoch: map.epoch, effectiveFromShard: nextShard, takenOver };
    },
    setSegmentSchedule(schedule) {
      const next = timelineFor(schedule);
      const previous = timeline;
      // Shards already pushed (bounded like takeovers) that the new schedule numbers otherwise.
      const renumberedShards: number[] = [];
      if (running) {
        for (let n = Math.max(startShard, nextShard - takeoverShardsMax); n < nextShard; n++) {
          try {
            const a = shardPosition(previous, n);
            const b = shardPosition(next, n);
            if (a.msn !== b.msn || a.partIndex !== b.partIndex) renumberedShards.push(n);
          } catch {
            // outside one of the schedules: nothing to compare
          }
        }
      }
      timeline = next;
      if (renumberedShards.length > 0) {
        logger.error("segment schedule arrived after shards it renumbers were pushed", {
          firstShard: renumberedShards[0],
          count: renumberedShards.length,
        });
      }
      logger.info("segment schedule replaced", {
        entries: schedule.length,
        nextShard,
        nextMsn: running ? shardPosition(timeline, nextShard).msn : undefined,
        segmentDurationMs: running
          ? shardPosition(timeline, nextShard).segmentDurationMs
          : undefined,
      });
      return { renumberedShards };
    },
    status() {
      let next: ReturnType<typeof shardPosition> | undefined;
      try {
        next = shardPosition(timeline, nextShard);
      } catch {
        next = undefined;
      }
      return {
        streamId: opts.streamId,
        encoderId: opts.encoderId,
        running,
        epoch: assignmentEpoch(assignment),
        assignment:
          assignment.kind === "static"
            ? { kind: "static", ...assignment.pool, targets: assignment.targets }
            : { kind: "map", ranges: assignment.map.ranges.length },
        timeline: {
          originMs: timeline.originMs,
          partDurationMs: timeline.partDurationMs,
          segmentDurationMs: next?.segmentDurationMs ?? 0,
          partsPerSegment: next?.partsPerSegment ?? 0,
          loopDurationMs: fixture.loopDurationMs,
          segmentSchedule: timeline.schedule,
        },
        renditions: renditions.map((r) => r.id),
        nextShard,
        nextMsn: next?.msn ?? -1,
        lastShard,
        shards: { ...counts },
        targets: [...targets.values()].map((t) => t.status()),
        nowMs: clock.nowMs(),
      };
    },
    async settled() {
      await Promise.all([...targets.values()].map((t) => t.quiescent()));
    },
  };
}
