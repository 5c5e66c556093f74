/**
 * StreamService: live stream definitions, backed by the Raft log. Writes go
 * through the leader (a follower answers UNAVAILABLE naming the leader);
 * reads are linearizable unless the caller sets stale_ok.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument, notFound } from "../../../common/errors.ts";
import {
  type GetStreamResponse,
  GetStreamResponseSchema,
  ListStreamsResponseSchema,
  type SegmentGranularity,
  SegmentGranularitySchema,
  type StreamService,
} from "../../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import {
  type SegmentScheduleEntry,
  SegmentScheduleEntrySchema,
  type Stream,
} from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import { targetDurationSecOf } from "../fsm/fsm.ts";
import type { ClusterHandle } from "./cluster-handle.ts";
import { idPattern, validateStreamSpec } from "./validate-stream.ts";
import { commit, requireLeader } from "./writes.ts";

export const listPageSizeMax = 1000;
const listPageSizeDefault = 100;

export function createStreamService(
  cluster: ClusterHandle,
): Partial<ServiceImpl<typeof StreamService>> {
  const read = async (staleOk: boolean) => {
    if (!staleOk) await cluster.readBarrier();
  };
  return {
    async createStream(req) {
      const bad = validateStreamSpec(req.spec);
      if (bad) throw bad;
      requireLeader(cluster);
      await commit(
        cluster,
        { op: { case: "createStream", value: { spec: req.spec } } },
        req.requestId,
      );
      return { stream: cluster.fsm.stream(req.spec?.id ?? "") };
    },
    async updateStream(req) {
      const bad = validateStreamSpec(req.spec);
      if (bad) throw bad;
      requireLeader(cluster);
      await commit(
        cluster,
        {
          op: {
            case: "updateStream",
            value: { spec: req.spec, expectedVersion: req.expectedVersion },
          },
        },
        req.requestId,
      );
      return { stream: cluster.fsm.stream(req.spec?.id ?? "") };
    },
    async deleteStream(req) {
      if (!idPattern.test(req.streamId))
        throw invalidArgument("stream_id", "must be a stream id ([a-z0-9-], 1–64 chars)");
      requireLeader(cluster);
      await commit(
        cluster,
        {
          op: {
            case: "deleteStream",
            value: { streamId: req.streamId, expectedVersion: req.expectedVersion },
          },
        },
        req.requestId,
      );
      return {};
    },
    async getStream(req): Promise<GetStreamResponse> {
      if (!idPattern.test(req.streamId))
        throw invalidArgument("stream_id", "must be a stream id ([a-z0-9-], 1–64 chars)");
      await read(req.staleOk);
      const stream = cluster.fsm.stream(req.streamId);
      if (!stream) throw notFound("stream", req.streamId);
      return create(GetStreamResponseSchema, {
        stream,
        servedByNodeId: cluster.nodeId,
        appliedIndex: BigInt(cluster.fsm.appliedIndex()),
        segmentGranularity: segmentGranularityOf(stream, cluster.clock.nowMs()),
      });
    },
    async listStreams(req) {
      if (req.pageSize > listPageSizeMax) {
        throw invalidArgument("page_size", `at most ${listPageSizeMax}, got ${req.pageSize}`);
      }
      const size = req.pageSize || listPageSizeDefault;
      await read(req.staleOk);
      // Page tokens are the last id of the previous page: stable under inserts.
      const after = req.pageToken ? decodeToken(req.pageToken) : "";
      const all = cluster.fsm.streams().filter((s) => (s.spec?.id ?? "") > after);
      const page = all.slice(0, size);
      const last = page.at(-1)?.spec?.id;
      return create(ListStreamsResponseSchema, {
        streams: page,
        nextPageToken: all.length > size && last ? Buffer.from(last).toString("base64url") : "",
      });
    },
  };
}

/**
 * Where a stream's segment schedule stands at `nowMs`: the entry in force
 * for the shard in production and the next committed change, so an operator
 * sees the current and the coming segment duration (and when it lands).
 */
export function segmentGranularityOf(stream: Stream, nowMs: number): SegmentGranularity {
  const spec = stream.spec;
  const originMs = Number(spec?.timelineOriginUnixMs || stream.createdUnixMs);
  const shardMs = spec?.shardDurationMs || 1;
  const currentShard = Math.floor((nowMs - originMs) / shardMs);
  const entries: SegmentScheduleEntry[] =
    stream.segmentSchedule.length > 0
      ? stream.segmentSchedule
      : [
          create(SegmentScheduleEntrySchema, {
            segmentDurationMs: spec?.segmentPolicy?.segmentDurationTargetMs ?? 0,
          }),
        ];
  let current = entries[0] as SegmentScheduleEntry;
  for (const e of entries) if (Number(e.sinceShard) <= currentShard) current = e;
  const next = entries.find((e) => Number(e.sinceShard) > currentShard && e !== current);
  return create(SegmentGranularitySchema, {
    currentShard: BigInt(currentShard),
    current,
    ...(next
      ? { next, nextEffectiveUnixMs: BigInt(originMs + Number(next.sinceShard) * shardMs) }
      : {}),
    targetDurationS: targetDurationSecOf(spec),
  });
}

function decodeToken(token: string): string {
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!idPattern.test(id))
    throw invalidArgument("page_token", "not a token returned by ListStreams");
  return id;
}
