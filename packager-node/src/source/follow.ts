/**
 * Coordinator-driven encoder pool: the source reads its stream's timeline
 * origin, segment schedule and shard map from the coordinator (any node: the
 * API is served by followers too) and follows ChainService.WatchChain, so
 * shard reassignment after an encoder failure, dual ingest to a handover
 * standby, the move away from a drained packager and segment duration
 * changes all reach the encoders without a restart. The chain graph does not
 * carry the schedule: on every chain update (a schedule change is a stream
 * change) the source re-reads the stream from the node that sent the update,
 * which has applied at least that change. Reconnects with jittered, bounded
 * backoff across the coordinator list.
 */
import { createGrpcClient, type GrpcClientOptions } from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import {
  type ChainGraph,
  ChainService,
} from "../../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { StreamService } from "../../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import type { Stream } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import type { ShardMap } from "./shard-map.ts";
import type { ScheduleEntry } from "./timeline.ts";

export interface StreamPlan {
  readonly timelineOriginMs: number;
  readonly map: ShardMap | undefined;
  /** The stream's segment schedule; undefined when the stream has none (only its target). */
  readonly schedule: readonly ScheduleEntry[] | undefined;
  /** The stream's shard duration (must equal the fixture's part duration to follow it). */
  readonly shardDurationMs: number;
  /** Where the stream's segments may start (SegmentPolicy.keyframe_interval_ms; 0 = unknown). */
  readonly keyframeIntervalMs: number;
}

/** Stream.segment_schedule as the source timeline's entries (the spec's target from 0 when empty). */
export function scheduleOfStream(stream: Stream | undefined): readonly ScheduleEntry[] | undefined {
  if (!stream) return undefined;
  if (stream.segmentSchedule.length === 0) {
    const target = stream.spec?.segmentPolicy?.segmentDurationTargetMs ?? 0;
    return target > 0 ? [{ sinceShard: 0, sinceMsn: 0, segmentDurationMs: target }] : undefined;
  }
  return stream.segmentSchedule.map((e) => ({
    sinceShard: Number(e.sinceShard),
    sinceMsn: Number(e.sinceMsn),
    segmentDurationMs: e.segmentDurationMs,
  }));
}

/** The source's shard map for a chain graph: replica ids become packager base URLs. */
export function shardMapOfGraph(graph: ChainGraph): ShardMap | undefined {
  const urlOf = new Map(graph.nodes.map((n) => [n.componentId, n.baseUrl]));
  const ranges = graph.shardMap
    .map((r) => ({
      firstShard: Number(r.firstShard),
      lastShard: r.lastShard === undefined ? null : Number(r.lastShard),
      encoderId: r.encoderId,
      replicaTargets: r.replicaPackagerIds.map((id) => urlOf.get(id) ?? "").filter((u) => u !== ""),
    }))
    .filter((r) => r.replicaTargets.length > 0);
  if (ranges.length === 0) return undefined;
  return { epoch: Number(graph.epoch), ranges };
}

export interface Follower {
  stop(): void;
  /**
   * Drops the current watch and re-reads the chain from the next
   * coordinator at once (at most once per `refreshMinIntervalMs`): for when
   * something shows this encoder's view is behind (a push refused as a
   * stale epoch).
   */
  refresh(): void;
}

/** Keepalive on the chain watch: a hung coordinator is left within ~2 × this. */
const watchKeepaliveMs = 2000;
const refreshMinIntervalMs = 1000;

const backoffMaxMs = 5000;

/** Waits until the stream exists and returns its origin and first shard map. */
export async function fetchStreamPlan(
  addresses: readonly string[],
  streamId: string,
  log: Logger,
  signal: AbortSignal,
  /** The coordinators' token (coordinator.tokenFile). */
  auth: GrpcClientOptions = {},
): Promise<StreamPlan> {
  let attempt = 0;
  for (;;) {
    const address = addresses[attempt % addresses.length] as string;
    const streams = createGrpcClient(StreamService, address, auth);
    const chains = createGrpcClient(ChainService, address, auth);
    try {
      const { stream } = await streams.getStream(
        { streamId, staleOk: true },
        { timeoutMs: 2000, signal },
      );
      const origin = Number(stream?.spec?.timelineOriginUnixMs || stream?.createdUnixMs || 0n);
      const { graph } = await chains.getChain({ streamId }, { timeoutMs: 2000, signal });
      return {
        timelineOriginMs: origin,
        map: graph ? shardMapOfGraph(graph) : undefined,
        schedule: scheduleOfStream(stream),
        shardDurationMs: stream?.spec?.shardDurationMs ?? 0,
        keyframeIntervalMs: stream?.spec?.segmentPolicy?.keyframeIntervalMs ?? 0,
      };
    } catch (err) {
      if (signal.aborted) throw err;
      log.warn("waiting for the stream on the coordinator", { address, err });
    } finally {
      streams.close();
      chains.close();
    }
    attempt++;
    await delay(
      Math.min(backoffMaxMs, 200 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2),
      signal,
    );
  }
}

/**
 * Follows the stream's chain: `apply` gets each shard map; with
 * `applySchedule`, every update also re-reads the stream and passes its
 * segment schedule (before the map: a map may hand over past shards, which
 * the schedule numbers).
 */
export function followChain(
  addresses: readonly string[],
  streamId: string,
  apply: (map: ShardMap) => void,
  log: Logger,
  applySchedule?: (schedule: readonly ScheduleEntry[]) => void,
  /** The coordinators' token (coordinator.tokenFile). */
  auth: GrpcClientOptions = {},
): Follower {
  const ac = new AbortController();
  /** Aborts the watch in progress only (refresh). */
  let current: AbortController | undefined;
  let lastRefreshMs = Number.NEGATIVE_INFINITY;
  void (async () => {
    // The address in use stays until it fails; then the next one is tried
    // at once (the one that failed is probably dead or not serving), and the
    // backoff grows only when every address failed in a row.
    let index = 0;
    let failuresInRow = 0;
    while (!ac.signal.aborted) {
      const address = addresses[index % addresses.length] as string;
      const client = createGrpcClient(ChainService, address, {
        ...auth,
        keepaliveMs: watchKeepaliveMs,
      });
      const streams = createGrpcClient(StreamService, address, auth);
      const watch = new AbortController();
      current = watch;
      const onStop = () => watch.abort();
      ac.signal.addEventListener("abort", onStop, { once: true });
      try {
        for await (const update of client.watchChain({ streamId }, { signal: watch.signal })) {
          failuresInRow = 0;
          if (applySchedule) {
            // This node sent the update, so it has applied it: a local read is fresh enough.
            const { stream } = await streams.getStream(
              { streamId, staleOk: true },
              { timeoutMs: 2000, signal: watch.signal },
            );
            const schedule = scheduleOfStream(stream);
            if (schedule) applySchedule(schedule);
          }
          const map = update.graph ? shardMapOfGraph(update.graph) : undefined;
          if (map) apply(map);
        }
      } catch (err) {
        if (ac.signal.aborted) return;
        if (watch.signal.aborted) log.info("chain watch refreshed", { address });
        else log.warn("chain watch interrupted; reconnecting", { address, err });
      } finally {
        ac.signal.removeEventListener("abort", onStop);
        current = undefined;
        client.close();
        streams.close();
      }
      index++;
      failuresInRow++;
      if (failuresInRow < addresses.length) continue;
      await delay(
        Math.min(backoffMaxMs, 100 * 2 ** Math.min(failuresInRow, 6)) * (0.5 + Math.random() / 2),
        ac.signal,
      ).catch(() => undefined);
    }
  })();
  return {
    stop: () => ac.abort(),
    refresh() {
      const now = performance.now();
      if (now - lastRefreshMs < refreshMinIntervalMs) return;
      lastRefreshMs = now;
      current?.abort();
    },
  };
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
