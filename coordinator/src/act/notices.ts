/**
 * Handover notices: built from replicated state only (so every node builds
 * the same notice for the same handover), published on NATS by the leader,
 * streamed by HandoverService.WatchHandovers from any node. NATS carries
 * notices, not truth: a client that missed one catches up with
 * GetLatestNotice, and the epoch lets it ignore stale ones.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Handover,
  HandoverState,
} from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import {
  type HandoverNotice,
  HandoverNoticeSchema,
} from "../../../proto/gen/understudy/notice/v1/notice_pb.ts";
import type { FsmView } from "../fsm/fsm.ts";

export const handoverSubjectPrefix = "understudy.v1.handover.";
export const chainSubjectPrefix = "understudy.v1.chain.";

export const handoverSubject = (streamId: string): string => `${handoverSubjectPrefix}${streamId}`;
export const chainSubject = (streamId: string): string => `${chainSubjectPrefix}${streamId}`;

export function buildHandoverNotice(
  fsm: FsmView,
  h: Handover,
  meta: { nowMs: number; term: number },
): HandoverNotice {
  const origin = (id: string) => ({ componentId: id, baseUrl: fsm.component(id)?.baseUrl ?? "" });
  return create(HandoverNoticeSchema, {
    streamId: h.streamId,
    handoverId: h.id,
    epoch: h.epoch,
    fromOrigin: origin(h.fromComponentId),
    toOrigin: origin(h.toComponentId),
    switchMsn: h.switchMsn,
    reason: h.reason,
    probability: h.probability,
    state: h.state,
    publishedUnixMs: BigInt(Math.trunc(meta.nowMs)),
    coordinatorTerm: BigInt(meta.term),
  });
}

/**
 * The handover a stream's latest notice describes: the most recent by epoch
 * (epochs grow with every handover transition of the stream).
 */
export function latestHandover(fsm: FsmView, streamId: string): Handover | undefined {
  let best: Handover | undefined;
  for (const h of fsm.handovers()) {
    if (h.streamId !== streamId) continue;
    if (!best || h.epoch > best.epoch) best = h;
  }
  return best;
}

/** States worth telling clients about (they act on NOTIFIED; the rest inform). */
export function isNotifiable(h: Handover): boolean {
  return h.state !== HandoverState.UNSPECIFIED;
}
