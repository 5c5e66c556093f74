/**
 * Leader-only: publishes a HandoverNotice on NATS for every committed
 * handover transition, and a ChainUpdateNotice when a stream's placement
 * changes. After gaining leadership or a NATS reconnect it republishes the
 * latest notice of every stream, so nothing stays missed because of an
 * outage. Followers publish nothing (a deposed leader stops at once).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "../../../common/log.ts";
import {
  ChainUpdateNoticeSchema,
  HandoverNoticeSchema,
} from "../../../proto/gen/understudy/notice/v1/notice_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import type { NoticeBus } from "./notice-bus.ts";
import { buildHandoverNotice, chainSubject, handoverSubject, latestHandover } from "./notices.ts";

export interface NoticePublisher {
  /** Notices published since start (for metrics and tests). */
  published(): number;
  stop(): void;
}

export function createNoticePublisher(
  cluster: ClusterHandle,
  bus: NoticeBus,
  log: Logger,
): NoticePublisher {
  let published = 0;
  const isLeader = () => cluster.leadership().isLeader;
  const meta = () => ({ nowMs: cluster.clock.nowMs(), term: cluster.leadership().term });

  const publishHandover = (id: string) => {
    const h = cluster.fsm.handover(id);
    if (!h) return;
    const notice = buildHandoverNotice(cluster.fsm, h, meta());
    bus.publish(handoverSubject(h.streamId), toBinary(HandoverNoticeSchema, notice));
    published++;
  };

  const publishChain = (streamId: string, summary: string) => {
    const s = cluster.fsm.stream(streamId);
    const m = meta();
    bus.publish(
      chainSubject(streamId),
      toBinary(
        ChainUpdateNoticeSchema,
        create(ChainUpdateNoticeSchema, {
          streamId,
          chainVersion: s?.epoch ?? 0n,
          epoch: s?.epoch ?? 0n,
          summary,
          publishedUnixMs: BigInt(Math.trunc(m.nowMs)),
          coordinatorTerm: BigInt(m.term),
        }),
      ),
    );
    published++;
  };

  const republishAll = (why: string) => {
    if (!isLeader()) return;
    let n = 0;
    for (const s of cluster.fsm.streams()) {
      const h = latestHandover(cluster.fsm, s.spec?.id ?? "");
      if (h) {
        publishHandover(h.id);
        n++;
      }
    }
    if (n > 0) log.info("republished latest handover notices", { why, streams: n });
  };

  const offChange = cluster.fsm.onChange((changes) => {
    if (!isLeader()) return;
    for (const c of changes) {
      if (c.kind === "handover") publishHandover(c.id);
      else if (c.kind === "shard-map" || c.kind === "assignments") publishChain(c.streamId, c.kind);
      else if (c.kind === "stream")
        publishChain(c.id, c.deleted ? "stream deleted" : "stream updated");
    }
  });
  // Republish only once caught up with the log, so the "latest" notice is
  // really the latest committed one.
  const offLeader = cluster.onLeadershipChange((l) => {
    if (!l.isLeader) return;
    cluster
      .readBarrier()
      .then(() => republishAll("became leader"))
      .catch((err) => log.warn("could not republish notices after becoming leader", { err }));
  });
  const offBus = bus.onConnected(() => republishAll("nats connected"));

  return {
    published: () => published,
    stop() {
      offChange();
      offLeader();
      offBus();
    },
  };
}
