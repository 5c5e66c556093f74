/**
 * PackagerService.SetHandoverHint / ClearHandoverHint: the coordinator's way
 * to put a handover hint (cmcd/handover-hint.ts) on this node's playback
 * responses while it moves a stream's viewers away.
 *
 * Order of checks: input (INVALID_ARGUMENT naming the field), then the
 * node's fence (term, then the stream's ingest/assignment epoch), then the
 * hint's own per-stream epoch (FAILED_PRECONDITION naming both values). The
 * node's fence is read, never raised, here: raising the stream's epoch would
 * make encoders still on the previous epoch get 409 on ingest mid-handover.
 * Only the term is recorded, as every mutating call does.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  Code,
  ConnectError,
  failedPrecondition,
  invalidArgument,
  resourceExhausted,
} from "../../../common/errors.ts";
import {
  ClearHandoverHintResponseSchema,
  type PackagerService,
  SetHandoverHintResponseSchema,
} from "../../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { RENDITION_ID_PATTERN, STREAM_ID_PATTERN } from "../config.ts";
import type { PackagerNode } from "../node.ts";

export const HINT_TTL_MS_MIN = 1000;
export const HINT_TTL_MS_MAX = 600_000;
const HANDOVER_ID_PATTERN = /^[\x21-\x7e]{1,64}$/;
const COMPONENT_ID_PATTERN = /^[a-z0-9-]{1,64}$/;
const BASE_URL_MAX = 512;
const HINT_RENDITIONS_MAX = 16;

function checkStreamId(streamId: string): void {
  if (!STREAM_ID_PATTERN.test(streamId))
    throw invalidArgument("stream_id", `"${streamId}" is not 1–64 chars of [a-z0-9-]`);
}

function staleHint(streamId: string, epoch: bigint, highest: number): ConnectError {
  return failedPrecondition(
    `stale epoch ${epoch} < ${highest} for the handover hint of stream "${streamId}" (highest seen by this node)`,
  );
}

export function createHandoverHintRpcs(
  node: PackagerNode,
): Pick<ServiceImpl<typeof PackagerService>, "setHandoverHint" | "clearHandoverHint"> {
  return {
    async setHandoverHint(req) {
      checkStreamId(req.streamId);
      if (!HANDOVER_ID_PATTERN.test(req.handoverId))
        throw invalidArgument("handover_id", "is required: 1–64 visible ASCII chars");
      if (!COMPONENT_ID_PATTERN.test(req.toComponentId)) {
        throw invalidArgument(
          "to_component_id",
          `is required: the standby's component id (1–64 chars of [a-z0-9-]), got "${req.toComponentId}"`,
        );
      }
      if (req.toBaseUrl !== "") {
        let ok =
          req.toBaseUrl.length <= BASE_URL_MAX && /^https?:\/\/[\x21-\x7e]+$/.test(req.toBaseUrl);
        try {
          new URL(req.toBaseUrl);
        } catch {
          ok = false;
        }
        if (!ok)
          throw invalidArgument(
            "to_base_url",
            `must be empty or an http(s) URL of at most ${BASE_URL_MAX} visible ASCII chars`,
          );
      }
      if (req.switchMsn < 1n || req.switchMsn > BigInt(Number.MAX_SAFE_INTEGER))
        throw invalidArgument(
          "switch_msn",
          "is required (> 0): send the hint once the switch point is chosen",
        );
      if (req.ttlMs < HINT_TTL_MS_MIN || req.ttlMs > HINT_TTL_MS_MAX) {
        throw invalidArgument(
          "ttl_ms",
          `must be ${HINT_TTL_MS_MIN}–${HINT_TTL_MS_MAX} (renew the hint before it expires), got ${req.ttlMs}`,
        );
      }
      if (req.renditionIds.length > HINT_RENDITIONS_MAX)
        throw invalidArgument(
          "rendition_ids",
          `at most ${HINT_RENDITIONS_MAX}, got ${req.renditionIds.length}`,
        );
      req.renditionIds.forEach((id, i) => {
        if (!RENDITION_ID_PATTERN.test(id))
          throw invalidArgument(`rendition_ids[${i}]`, `"${id}" is not 1–32 chars of [a-z0-9_-]`);
      });
      node.fence.checkTerm(Number(req.coordinatorTerm));
      node.fence.checkEpoch(req.streamId, Number(req.epoch));
      if (node.store && !node.store.streams.has(req.streamId)) {
        throw new ConnectError(
          `stream "${req.streamId}" is not served here, so no response would carry the hint; assign it first`,
          Code.NotFound,
        );
      }
      const r = node.handoverHints.set(
        {
          streamId: req.streamId,
          handoverId: req.handoverId,
          epoch: Number(req.epoch),
          toComponentId: req.toComponentId,
          toBaseUrl: req.toBaseUrl,
          switchMsn: Number(req.switchMsn),
          duress: req.duress,
          renditionIds: req.renditionIds,
        },
        req.ttlMs,
      );
      if (!r.ok) {
        if ("full" in r)
          throw resourceExhausted(
            "this node already holds the maximum number of handover hints; clear finished ones first",
          );
        throw staleHint(req.streamId, req.epoch, r.highestEpoch);
      }
      await node.fence.observe(Number(req.coordinatorTerm), undefined, 0);
      return create(SetHandoverHintResponseSchema, {
        expiresUnixMs: BigInt(Math.trunc(r.expiresUnixMs)),
      });
    },

    async clearHandoverHint(req) {
      checkStreamId(req.streamId);
      if (req.handoverId !== "" && !HANDOVER_ID_PATTERN.test(req.handoverId))
        throw invalidArgument("handover_id", "must be empty or 1–64 visible ASCII chars");
      node.fence.checkTerm(Number(req.coordinatorTerm));
      node.fence.checkEpoch(req.streamId, Number(req.epoch));
      const r = node.handoverHints.clear(
        req.streamId,
        Number(req.epoch),
        req.handoverId || undefined,
      );
      if (!r.ok) throw staleHint(req.streamId, req.epoch, r.highestEpoch);
      await node.fence.observe(Number(req.coordinatorTerm), undefined, 0);
      return create(ClearHandoverHintResponseSchema, { cleared: r.cleared });
    },
  };
}
