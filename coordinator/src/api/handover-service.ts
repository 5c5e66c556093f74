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
} from "../../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import type { Handover } from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
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
      if (!cluster.fsm.stream(req.streamId)) throw notFound("stream", req.streamId);
      const h = latestHandover(cluster.fsm, req.streamId);
      return h ? { notice: buildHandoverNotice(cluster.fsm, h, meta()) } : {};
    },
    async *watchHandovers(req, ctx) {
      if (req.streamId) checkStream("stream_id", req.streamId);
      if (req.sendLatestFirst) {
        await cluster.readBarrier();
        const streams = req.streamId
          ? [req.streamId]
          : cluster.fsm.streams().map((s) => s.spec?.id ?? "");
        for (const sid of streams) {
          const h = latestHandover(cluster.fsm, sid);
          if (h) yield { notice: buildHandoverNotice(cluster.fsm, h, meta()) };
        }
      }
      for await (const ids of watchKeys(
        (l) => cluster.fsm.onChange(l),
        (c) =>
          c.kind === "handover" && (!req.streamId || c.streamId === req.streamId)
            ? c.id
            : undefined,
        ctx.signal,
      )) {
        for (const id of ids) {
          const h = cluster.fsm.handover(id);
          if (h) yield { notice: buildHandoverNotice(cluster.fsm, h, meta()) };
        }
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
