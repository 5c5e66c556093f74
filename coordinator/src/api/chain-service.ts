/**
 * ChainService: the encoding chain graph of a stream (ingest → encoders →
 * packagers/origins → edges), derived from replicated state: the shard map
 * names encoders, assignments name packagers, open handovers mark standbys
 * and draining primaries. Version = stream epoch, so a graph is newer iff its
 * version is higher.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument, notFound } from "../../../common/errors.ts";
import {
  type ChainGraph,
  ChainGraphSchema,
  ChainNodeStage,
  type ChainService,
  ChainUpdateReason,
} from "../../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { type FsmChange, type FsmView, isHandoverOpen } from "../fsm/fsm.ts";
import type { ClusterHandle } from "./cluster-handle.ts";
import { idPattern } from "./validate-stream.ts";
import { watchKeys } from "./watch.ts";

export function buildChainGraph(fsm: FsmView, streamId: string): ChainGraph | undefined {
  const stream = fsm.stream(streamId);
  if (!stream) return undefined;
  const shardMap = fsm.shardMap(streamId)?.ranges ?? [];
  const assignments = fsm.assignments(streamId)?.assignments ?? [];
  const open = fsm.handovers().filter((h) => h.streamId === streamId && isHandoverOpen(h));
  const standby = new Set(open.map((h) => h.toComponentId));
  const leaving = new Set(open.map((h) => h.fromComponentId));
  const ids = new Set<string>();
  for (const r of shardMap) {
    ids.add(r.encoderId);
    for (const p of r.replicaPackagerIds) ids.add(p);
  }
  for (const a of assignments) {
    ids.add(a.primaryPackagerId);
    for (const p of a.replicaPackagerIds) ids.add(p);
  }
  for (const id of standby) ids.add(id);
  for (const id of leaving) ids.add(id);
  ids.delete("");
  const nodes = [...ids].sort().map((id) => {
    const c = fsm.component(id);
    const draining =
      leaving.has(id) ||
      c?.status === ComponentStatus.DRAINING ||
      c?.status === ComponentStatus.DRAINED;
    return {
      componentId: id,
      role: c?.role ?? ComponentRole.UNSPECIFIED,
      status: c?.status ?? ComponentStatus.UNKNOWN,
      stage: standby.has(id)
        ? ChainNodeStage.STANDBY
        : draining
          ? ChainNodeStage.DRAINING
          : ChainNodeStage.ACTIVE,
      baseUrl: c?.baseUrl ?? "",
    };
  });
  const edges = new Map<string, Set<string>>();
  const edge = (from: string, to: string, rendition: string) => {
    if (!from || !to) return;
    const k = `${from}\u0000${to}`;
    let set = edges.get(k);
    if (!set) {
      set = new Set();
      edges.set(k, set);
    }
    if (rendition) set.add(rendition);
  };
  const renditions = stream.spec?.renditions.map((r) => r.id) ?? [];
  for (const r of shardMap) {
    for (const p of r.replicaPackagerIds) for (const rid of renditions) edge(r.encoderId, p, rid);
  }
  for (const h of open)
    for (const rid of h.renditionIds.length ? h.renditionIds : renditions)
      edge(h.fromComponentId, h.toComponentId, rid);
  return create(ChainGraphSchema, {
    streamId,
    version: stream.epoch,
    epoch: stream.epoch,
    nodes,
    edges: [...edges.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, set]) => {
        const [from, to] = k.split("\u0000") as [string, string];
        return { fromComponentId: from, toComponentId: to, renditionIds: [...set].sort() };
      }),
    shardMap,
    assignments,
  });
}

function reasonOf(c: FsmChange): ChainUpdateReason {
  switch (c.kind) {
    case "stream":
      return ChainUpdateReason.STREAM_UPDATED;
    case "shard-map":
    case "assignments":
      return ChainUpdateReason.PLACEMENT_CHANGED;
    case "component":
      return ChainUpdateReason.COMPONENT_STATUS;
    case "handover":
      return ChainUpdateReason.HANDOVER;
    default:
      return ChainUpdateReason.UNSPECIFIED;
  }
}

export function createChainService(
  cluster: ClusterHandle,
): Partial<ServiceImpl<typeof ChainService>> {
  const check = (id: string) => {
    if (!idPattern.test(id))
      throw invalidArgument("stream_id", "must be a stream id (1–64 chars of [a-z0-9-])");
  };
  return {
    async getChain(req) {
      check(req.streamId);
      await cluster.readBarrier();
      const graph = buildChainGraph(cluster.fsm, req.streamId);
      if (!graph) throw notFound("stream", req.streamId);
      return { graph };
    },
    async *watchChain(req, ctx) {
      check(req.streamId);
      await cluster.readBarrier();
      if (!buildChainGraph(cluster.fsm, req.streamId)) throw notFound("stream", req.streamId);
      // The first graph comes from the watch's seed, read after subscribing,
      // so a change committed while it is built and sent comes again as an
      // update instead of being lost between a read and a later subscribe.
      let initial = true;
      let lastReason = ChainUpdateReason.UNSPECIFIED;
      for await (const _ of watchKeys(
        (l) => cluster.fsm.onChange(l),
        (c) => {
          const relevant =
            (c.kind === "stream" && c.id === req.streamId) ||
            ((c.kind === "shard-map" || c.kind === "assignments" || c.kind === "handover") &&
              c.streamId === req.streamId) ||
            (c.kind === "component" &&
              buildChainGraph(cluster.fsm, req.streamId)?.nodes.some(
                (n) => n.componentId === c.id,
              ));
          if (!relevant) return undefined;
          lastReason = reasonOf(c);
          return "graph";
        },
        ctx.signal,
        () => ["graph"],
      )) {
        const graph = buildChainGraph(cluster.fsm, req.streamId);
        if (!graph) {
          yield { reason: ChainUpdateReason.STREAM_UPDATED, detail: "stream deleted" };
          return;
        }
        yield { graph, reason: initial ? ChainUpdateReason.INITIAL : lastReason };
        initial = false;
      }
    },
  };
}
