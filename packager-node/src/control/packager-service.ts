/**
 * PackagerService (proto/understudy/packager/v1/packager.proto) for one node.
 *
 * Fencing: mutating calls check the coordinator term, then the stream epoch,
 * before doing anything; a stale value is FAILED_PRECONDITION naming both
 * values, and nothing changes. Values only rise after the call took effect.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Clock, systemClock } from "../../../common/clock.ts";
import { failedPrecondition, invalidArgument, notFound } from "../../../common/errors.ts";
import { serve, startRpcServer } from "../../../common/rpc-server.ts";
import {
  SegmentKind,
  type SegmentRef,
  SegmentRefSchema,
} from "../../../proto/gen/understudy/common/v1/segment_pb.ts";
import { LatencyMode, type StreamSpec } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import {
  AssignedStreamSchema,
  AssignmentRole,
  AssignResponseSchema,
  DrainResponseSchema,
  GetStatusResponseSchema,
  InventoryResponseSchema,
  NodeMode,
  PackagerService,
  ReplicateResponseSchema,
  SegmentMismatchSchema,
  UnassignResponseSchema,
} from "../../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { RENDITION_ID_PATTERN, STREAM_ID_PATTERN } from "../config.ts";
import type { PackagerNode } from "../node.ts";
import type { RenditionInfo } from "../playlist/model.ts";
import type { StreamDef } from "../store/media-store.ts";
import { controlAuthInterceptors } from "./auth.ts";
import { createHandoverHintRpcs } from "./handover-hint-rpc.ts";
import { type CopiedObject, replicateFromPeer } from "./replicator.ts";

export interface PackagerServiceOptions {
  clock?: Clock;
  /** Per HTTP request to a peer during Replicate. */
  replicateRequestTimeoutMs?: number;
}

interface Assignment {
  role: AssignmentRole;
  renditionIds: Set<string>;
  peers: Array<{ componentId: string; baseUrl: string }>;
}

const INVENTORY_DEFAULT_ENTRIES = 1000;
const INVENTORY_MAX_ENTRIES = 10_000;

function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

function ref(streamId: string, renditionId: string, o: CopiedObject): SegmentRef {
  return create(SegmentRefSchema, {
    streamId,
    renditionId,
    msn: BigInt(o.msn),
    partIndex: o.partIndex,
    durationMs: Math.round(o.durationMs),
    sha256: hexToBytes(o.sha256),
    sizeBytes: BigInt(o.sizeBytes),
    kind:
      o.kind === "init"
        ? SegmentKind.INIT
        : o.kind === "part"
          ? SegmentKind.PART
          : SegmentKind.SEGMENT,
  });
}

/** StreamSpec (validated) → the node's stream definition for the given renditions. */
export function streamDefFromSpec(
  spec: StreamSpec,
  renditionIds: ReadonlySet<string>,
  windowSegments: number,
): StreamDef {
  const renditions: RenditionInfo[] = spec.renditions
    .filter((r) => renditionIds.has(r.id))
    .map((r) => ({
      id: r.id,
      kind: r.audioOnly ? "audio" : "video",
      bandwidth: Number(r.bandwidthBps),
      codecs: r.codecs,
      ...(r.audioOnly ? {} : { resolution: `${r.width}x${r.height}` }),
      ...(r.frameRate > 0 ? { frameRate: r.frameRate } : {}),
    }));
  const low = spec.latencyMode === LatencyMode.LOW_LATENCY;
  const policy = spec.segmentPolicy!;
  return {
    id: spec.id,
    latency: low ? "low" : "standard",
    targetSegmentDurationMs: policy.segmentDurationTargetMs,
    // Segment granularity may schedule up to the maximum: playlists fix their target duration on it.
    segmentDurationMaxMs: Math.max(policy.segmentDurationTargetMs, policy.segmentDurationMaxMs),
    targetPartDurationMs: low
      ? policy.partDurationMs
      : Math.max(200, Math.floor(policy.segmentDurationTargetMs / 4)),
    windowSegments,
    deltaUpdates: false,
    segmentClose: "duration",
    renditions,
  };
}

function validateSpec(spec: StreamSpec | undefined, renditionIds: readonly string[]): StreamSpec {
  if (!spec) throw invalidArgument("stream", "is required");
  if (!STREAM_ID_PATTERN.test(spec.id))
    throw invalidArgument("stream.id", `"${spec.id}" is not 1–64 chars of [a-z0-9-]`);
  if (spec.renditions.length < 1 || spec.renditions.length > 16) {
    throw invalidArgument(
      "stream.renditions",
      `needs 1–16 renditions, got ${spec.renditions.length}`,
    );
  }
  const ids = new Set<string>();
  spec.renditions.forEach((r, i) => {
    if (!RENDITION_ID_PATTERN.test(r.id))
      throw invalidArgument(
        `stream.renditions[${i}].id`,
        `"${r.id}" is not 1–32 chars of [a-z0-9_-]`,
      );
    if (ids.has(r.id)) throw invalidArgument(`stream.renditions[${i}].id`, `duplicate "${r.id}"`);
    ids.add(r.id);
    if (r.bandwidthBps <= 0n)
      throw invalidArgument(`stream.renditions[${i}].bandwidth_bps`, "must be positive");
    if (!/^[\x20-\x7e]{1,256}$/.test(r.codecs))
      throw invalidArgument(
        `stream.renditions[${i}].codecs`,
        "must be 1–256 printable ASCII chars",
      );
    if (!r.audioOnly && (r.width < 16 || r.height < 16)) {
      throw invalidArgument(
        `stream.renditions[${i}]`,
        "video renditions need width and height >= 16",
      );
    }
  });
  if (spec.latencyMode === LatencyMode.UNSPECIFIED)
    throw invalidArgument("stream.latency_mode", "is required");
  const policy = spec.segmentPolicy;
  if (!policy) throw invalidArgument("stream.segment_policy", "is required");
  if (policy.segmentDurationTargetMs < 1000 || policy.segmentDurationTargetMs > 10_000) {
    throw invalidArgument(
      "stream.segment_policy.segment_duration_target_ms",
      `must be 1000–10000, got ${policy.segmentDurationTargetMs}`,
    );
  }
  if (spec.latencyMode === LatencyMode.LOW_LATENCY) {
    if (
      policy.partDurationMs < 200 ||
      policy.partDurationMs > 2000 ||
      policy.partDurationMs * 2 > policy.segmentDurationTargetMs
    ) {
      throw invalidArgument(
        "stream.segment_policy.part_duration_ms",
        `must be 200–2000 and at most half the segment target for LOW_LATENCY, got ${policy.partDurationMs}`,
      );
    }
  }
  if (renditionIds.length < 1 || renditionIds.length > 16) {
    throw invalidArgument("rendition_ids", `needs 1–16 ids, got ${renditionIds.length}`);
  }
  renditionIds.forEach((id, i) => {
    if (!ids.has(id))
      throw invalidArgument(`rendition_ids[${i}]`, `"${id}" is not in stream.renditions`);
  });
  return spec;
}

export function createPackagerServiceImpl(
  node: PackagerNode,
  opts: PackagerServiceOptions = {},
): ServiceImpl<typeof PackagerService> {
  const clock = opts.clock ?? systemClock;
  const replicateTimeoutMs = opts.replicateRequestTimeoutMs ?? 5000;
  const assignments = new Map<string, Assignment>();

  const originStore = () => {
    if (!node.store)
      throw failedPrecondition("this node runs in edge mode; streams are assigned to origins");
    return node.store;
  };
  const fenceMutation = (term: bigint, streamId: string | undefined, epoch: bigint) => {
    node.fence.checkTerm(Number(term));
    if (streamId !== undefined) node.fence.checkEpoch(streamId, Number(epoch));
  };

  return {
    ...createHandoverHintRpcs(node),
    async assign(req) {
      const store = originStore();
      const spec = validateSpec(req.stream, req.renditionIds);
      if (req.role === AssignmentRole.UNSPECIFIED)
        throw invalidArgument("role", "is required (PRIMARY or REPLICA)");
      if (req.originPeers.length > 8)
        throw invalidArgument("origin_peers", `at most 8, got ${req.originPeers.length}`);
      if (
        req.steeringServerUri !== "" &&
        (req.steeringServerUri.length > 512 || !/^https?:\/\/\S+$/.test(req.steeringServerUri))
      ) {
        throw invalidArgument(
          "steering_server_uri",
          "must be empty or an http(s) URL of at most 512 chars",
        );
      }
      fenceMutation(req.coordinatorTerm, spec.id, req.epoch);
      if (node.isDraining())
        throw failedPrecondition("this node is draining and takes no new assignments");
      const previous = assignments.get(spec.id);
      const ids = new Set([...(previous?.renditionIds ?? []), ...req.renditionIds]);
      const window =
        node.config.streams.find((s) => s.id === spec.id)?.windowSegments ??
        node.config.playback.windowSegments;
      node.defineStream(streamDefFromSpec(spec, ids, window));
      if (req.steeringServerUri) {
        node.setSteering(spec.id, {
          serverUri: req.steeringServerUri,
          pathwayId: node.config.nodeId,
        });
      }
      const st = store.streams.get(spec.id);
      if (st && !previous) await store.restoreFromDisk(st, clock.nowMs());
      assignments.set(spec.id, {
        role: req.role,
        renditionIds: ids,
        peers: req.originPeers.map((p) => ({ componentId: p.componentId, baseUrl: p.baseUrl })),
      });
      await node.fence.observe(Number(req.coordinatorTerm), spec.id, Number(req.epoch));
      return create(AssignResponseSchema, {
        epoch: BigInt(node.fence.epochOf(spec.id)),
        ingestBaseUrl: `${node.urls.http}/ingest/${spec.id}`,
      });
    },

    async unassign(req) {
      const store = originStore();
      if (!STREAM_ID_PATTERN.test(req.streamId))
        throw invalidArgument("stream_id", `"${req.streamId}" is not 1–64 chars of [a-z0-9-]`);
      fenceMutation(req.coordinatorTerm, req.streamId, req.epoch);
      const remaining = store.removeRenditions(req.streamId, req.renditionIds);
      const a = assignments.get(req.streamId);
      if (a) {
        if (remaining.length === 0) assignments.delete(req.streamId);
        else a.renditionIds = new Set(remaining);
      }
      for (const id of req.renditionIds.length === 0
        ? [...(a?.renditionIds ?? [])]
        : req.renditionIds) {
        if (!remaining.includes(id)) await store.disk?.removeRendition(req.streamId, id);
      }
      await node.fence.observe(Number(req.coordinatorTerm), req.streamId, Number(req.epoch));
      return create(UnassignResponseSchema, { remainingRenditionIds: remaining });
    },

    async replicate(req) {
      const store = originStore();
      if (!STREAM_ID_PATTERN.test(req.streamId))
        throw invalidArgument("stream_id", `"${req.streamId}" is not 1–64 chars of [a-z0-9-]`);
      if (!RENDITION_ID_PATTERN.test(req.renditionId)) {
        throw invalidArgument(
          "rendition_id",
          `"${req.renditionId}" is not 1–32 chars of [a-z0-9_-]`,
        );
      }
      let peer: URL;
      try {
        peer = new URL(req.peerBaseUrl);
      } catch {
        throw invalidArgument("peer_base_url", `"${req.peerBaseUrl}" is not an absolute URL`);
      }
      if (peer.protocol !== "http:" && peer.protocol !== "https:") {
        throw invalidArgument("peer_base_url", "must be http(s)");
      }
      if (req.lastNSegments < 1 || req.lastNSegments > 100) {
        throw invalidArgument("last_n_segments", `must be 1–100, got ${req.lastNSegments}`);
      }
      fenceMutation(req.coordinatorTerm, req.streamId, req.epoch);
      if (!store.rendition(req.streamId, req.renditionId)) {
        throw notFound("assigned rendition", `${req.streamId}/${req.renditionId}`);
      }
      const outcome = await replicateFromPeer({
        store,
        clock,
        streamId: req.streamId,
        renditionId: req.renditionId,
        peerBaseUrl: req.peerBaseUrl,
        lastNSegments: req.lastNSegments,
        includeParts: req.includeParts,
        requestTimeoutMs: replicateTimeoutMs,
      });
      await node.fence.observe(Number(req.coordinatorTerm), req.streamId, Number(req.epoch));
      return create(ReplicateResponseSchema, {
        segmentsCopied: outcome.segmentsCopied,
        copiedBytes: BigInt(outcome.copiedBytes),
        segments: outcome.copied.map((o) => ref(req.streamId, req.renditionId, o)),
        verified: outcome.verified,
        mismatches: outcome.mismatches.map((m) =>
          create(SegmentMismatchSchema, {
            expected: ref(req.streamId, req.renditionId, m.expected),
            actualSha256: hexToBytes(m.actualSha256),
            detail: m.detail.slice(0, 256),
          }),
        ),
      });
    },

    async inventory(req) {
      const store = originStore();
      if (req.renditionId && !req.streamId)
        throw invalidArgument("rendition_id", "requires stream_id");
      if (req.maxEntries > INVENTORY_MAX_ENTRIES) {
        throw invalidArgument(
          "max_entries",
          `must be 0–${INVENTORY_MAX_ENTRIES}, got ${req.maxEntries}`,
        );
      }
      const max = req.maxEntries === 0 ? INVENTORY_DEFAULT_ENTRIES : req.maxEntries;
      const refs: SegmentRef[] = [];
      let truncated = false;
      const push = (streamId: string, renditionId: string, o: CopiedObject) => {
        if (refs.length >= max) {
          truncated = true;
          return false;
        }
        refs.push(ref(streamId, renditionId, o));
        return true;
      };
      const streams = req.streamId
        ? [store.streams.get(req.streamId)].filter((s) => s !== undefined)
        : [...store.streams.values()];
      outer: for (const st of streams) {
        for (const [rid, r] of st.renditions) {
          if (req.renditionId && rid !== req.renditionId) continue;
          const t = r.timeline;
          if (t.open) {
            for (const p of [...t.open.parts].reverse()) {
              const o = {
                kind: "part" as const,
                msn: t.open.msn,
                partIndex: p.index,
                durationMs: p.durationMs,
                sha256: p.sha256,
                sizeBytes: p.bytes.length,
              };
              if (!push(st.def.id, rid, o)) break outer;
            }
          }
          for (const s of [...t.closed].reverse()) {
            if (
              !push(st.def.id, rid, {
                kind: "segment",
                msn: s.msn,
                partIndex: 0,
                durationMs: s.durationMs,
                sha256: s.sha256,
                sizeBytes: s.bytes.length,
              })
            )
              break outer;
            for (const p of [...s.parts].reverse()) {
              const o = {
                kind: "part" as const,
                msn: s.msn,
                partIndex: p.index,
                durationMs: p.durationMs,
                sha256: p.sha256,
                sizeBytes: p.bytes.length,
              };
              if (!push(st.def.id, rid, o)) break outer;
            }
          }
          if (t.init) {
            const o = {
              kind: "init" as const,
              msn: 0,
              partIndex: 0,
              durationMs: 0,
              sha256: t.init.sha256,
              sizeBytes: t.init.bytes.length,
            };
            if (!push(st.def.id, rid, o)) break outer;
          }
        }
      }
      return create(InventoryResponseSchema, { segments: refs, truncated });
    },

    async drain(req) {
      node.fence.checkTerm(Number(req.coordinatorTerm));
      node.drain(Number(req.deadlineUnixMs));
      await node.fence.observe(Number(req.coordinatorTerm), undefined, 0);
      return create(DrainResponseSchema, {
        ok: true,
        streamsRemaining: node.store?.streams.size ?? 0,
      });
    },

    async getStatus() {
      const s = node.status();
      const nz = (v: number | null) => (v === null ? 0 : v);
      return create(GetStatusResponseSchema, {
        nodeId: s.nodeId,
        mode: s.mode === "origin" ? NodeMode.ORIGIN : NodeMode.EDGE,
        draining: s.draining,
        streams: s.streams.map((st) => {
          const a = assignments.get(st.id);
          let lastMsn = 0;
          for (const r of node.store?.streams.get(st.id)?.renditions.values() ?? []) {
            lastMsn = Math.max(lastMsn, r.timeline.lastClosedMsn() ?? 0);
          }
          return create(AssignedStreamSchema, {
            streamId: st.id,
            renditionIds: st.renditions.map((r) => r.id),
            role: a?.role ?? AssignmentRole.PRIMARY,
            epoch: BigInt(st.epoch),
            lastMsn: BigInt(lastMsn),
            lastIngestUnixMs: BigInt(Math.max(0, ...st.renditions.map((r) => r.lastIngestUnixMs))),
          });
        }),
        ingestLatencyP50Ms: nz(s.ingest.processingMs.p50),
        ingestLatencyP99Ms: nz(s.ingest.processingMs.p99),
        requestsPerSecond: s.http.requestsPerSecond,
        errorRatio: s.http.errorRatio,
        cacheBytes: BigInt(s.cache.bytes),
        cacheEntries: s.cache.entries,
        cacheHitRatio: s.cache.hitRatio,
        cacheCapacityBytes: BigInt(s.cache.capacityBytes),
        coordinatorTerm: BigInt(node.fence.highestTerm()),
      });
    },
  };
}

/** Serves PackagerService on `config.control` (gRPC, gRPC-Web and Connect) via common/rpc-server.ts. */
export async function startPackagerControl(
  node: PackagerNode,
  opts: PackagerServiceOptions = {},
): Promise<{ address: string; close(): Promise<void> }> {
  const listen = node.config.control;
  if (!listen) throw new Error("control address not configured");
  const server = await startRpcServer({
    listen,
    services: [serve(PackagerService, createPackagerServiceImpl(node, opts))],
    interceptors: controlAuthInterceptors(node.config, node.logger, opts.clock),
  });
  return { address: server.address, close: () => server.close() };
}
