/**
 * HandoverService: handovers as replicated state, their notices, and the
 * operator's way to start one. Watches work on any node (every node applies
 * the same log); StartHandover goes through the leader's orchestrator.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { failedPrecondition, invalidArgument, notFound } from "../../../common/errors.ts";
import {
  type HandoverService,
  type ListHandoversResponse,
  ListHandoversResponseSchema,
  type WatchHandoversResponse,
  WatchHandoversResponseSchema,
} from "../../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import type { Handover } from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import type { HandoverNotice } from "../../../proto/gen/understudy/notice/v1/notice_pb.ts";
import { buildHandoverNotice, latestHandover } from "../act/notices.ts";
import { isHandoverOpen } from "../fsm/fsm.ts";
import type { ClusterHandle } from "./cluster-handle.ts";
import { idPattern } from "./validate-stream.ts";
import { watchKeys } from "./watch.ts";
import { requireLeader } from "./writes.ts";

export const handoverPageSizeMax = 1000;

/** Starts an operator handover (implemented by the orchestrator on the leader). */
export type StartHandoverFn = (req: {
  streamId: string;
  fromComponentId: string;
  toComponentId: string;
  reason: string;
  requestId: string;
}) => Promise<Handover>;

export function createHandoverService(
  cluster: ClusterHandle,
  startHandover?: StartHandoverFn,
): Partial<ServiceImpl<typeof HandoverService>> {
  const meta = () => ({ nowMs: cluster.clock.nowMs(), term: cluster.leadership().term });
  const checkStream = (field: string, id: string) => {
    if (!idPattern.test(id))
      throw invalidArgument(field, "must be a stream id (1–64 chars of [a-z0-9-])");
  };
  return {
    async listHandovers(req): Promise<ListHandoversResponse> {
      if (req.streamId) checkStream("stream_id", req.streamId);
      if (req.pageSize > handoverPageSizeMax) {
        throw invalidArgument("page_size", `at most ${handoverPageSizeMax}`);
      }
      await cluster.readBarrier();
      const size = req.pageSize || 100;
      const after = req.pageToken ? Buffer.from(req.pageToken, "base64url").toString("utf8") : "";
      const all = cluster.fsm
        .handovers()
        .filter(
          (h) =>
            (!req.streamId || h.streamId === req.streamId) &&
            (req.includeFinished || isHandoverOpen(h)),
        )
        .filter((h) => h.id > after);
      const page = all.slice(0, size);
      const last = page.at(-1)?.id;
      return create(ListHandoversResponseSchema, {
        handovers: page,
        nextPageToken: all.length > size && last ? Buffer.from(last).toString("base64url") : "",
      });
    },
    async getHandover(req) {
      if (!req.handoverId) throw invalidArgument("handover_id", "required");
      await cluster.readBarrier();
      const h = cluster.fsm.handover(req.handoverId);
      if (!h) throw notFound("handover", req.handoverId);
      return { handover: h };
    },
    async getLatestNotice(req) {
      checkStream("stream_id", req.streamId);
      await cluster.readBarrier();
      const stream = cluster.fsm.stream(req.streamId);
      if (!stream) throw notFound("stream", req.streamId);
      const h = latestHandover(cluster.fsm, req.streamId);
      return {
        ...(h ? { notice: buildHandoverNotice(cluster.fsm, h, meta()) } : {}),
        streamEpoch: stream.epoch,
      };
    },
    async *watchHandovers(req, ctx) {
      if (req.streamId) checkStream("stream_id", req.streamId);
      if (req.sendLatestFirst) await cluster.readBarrier();
      // Keys: "h:<handover id>" for a changed handover, "s:<stream id>" for a
      // stream's latest state (send_latest_first). The latest state is read
      // after subscribing, so nothing committed meanwhile is missed.
      const seed = req.sendLatestFirst
        ? () =>
            (req.streamId
              ? [req.streamId]
              : cluster.fsm.streams().map((s) => s.spec?.id ?? "")
            ).map((sid) => `s:${sid}`)
        : undefined;
      for await (const keys of watchKeys(
        (l) => cluster.fsm.onChange(l),
        (c) =>
          c.kind === "handover" && (!req.streamId || c.streamId === req.streamId)
            ? `h:${c.id}`
            : undefined,
        ctx.signal,
        seed,
      )) {
        const out: WatchHandoversResponse[] = [];
        const live: HandoverNotice[] = [];
        for (const key of keys) {
          const id = key.slice(2);
          if (key.startsWith("s:")) {
            // The stream's latest notice and its epoch, read together.
            const stream = cluster.fsm.stream(id);
            if (!stream) continue;
            const h = latestHandover(cluster.fsm, id);
            out.push(
              create(WatchHandoversResponseSchema, {
                streamId: id,
                streamEpoch: stream.epoch,
                ...(h ? { notice: buildHandoverNotice(cluster.fsm, h, meta()) } : {}),
              }),
            );
          } else {
            const h = cluster.fsm.handover(id);
            if (h) live.push(buildHandoverNotice(cluster.fsm, h, meta()));
          }
        }
        // Epoch order within a batch (per stream, epochs only grow).
        live.sort((a, b) => (a.epoch < b.epoch ? -1 : a.epoch > b.epoch ? 1 : 0));
        for (const n of live) {
          out.push(create(WatchHandoversResponseSchema, { streamId: n.streamId, notice: n }));
        }
        for (const m of out) yield m;
      }
    },
    async startHandover(req) {
      checkStream("stream_id", req.streamId);
      if (!idPattern.test(req.fromComponentId))
        throw invalidArgument("from_component_id", "must be a component id");
      if (req.toComponentId && !idPattern.test(req.toComponentId)) {
        throw invalidArgument(
          "to_component_id",
          "must be a component id or empty (the coordinator picks)",
        );
      }
      if (req.reason.length > 512) throw invalidArgument("reason", "at most 512 chars");
      requireLeader(cluster);
      if (!cluster.fsm.stream(req.streamId)) throw notFound("stream", req.streamId);
      if (!cluster.fsm.component(req.fromComponentId))
        throw notFound("component", req.fromComponentId);
      if (req.toComponentId && !cluster.fsm.component(req.toComponentId)) {
        throw notFound("component", req.toComponentId);
      }
      if (!startHandover) {
        throw failedPrecondition("handover orchestration is not enabled on this coordinator");
      }
      return { handover: await startHandover(req) };
    },
  };
}
