/**
 * Node-level routes shared by origin and edge: /status (JSON for the agent
 * probe), /metrics (Prometheus text), /healthz (liveness), /readyz (503 while
 * draining), /utc (DASH UTCTiming source), and the origin's /replica
 * inventory used by peers to replicate with checksums.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MediaStore } from "../store/media-store.ts";
import {
  describePart,
  describeSegment,
  type PartMeta,
  type SegmentMeta,
} from "../store/segment-meta.ts";
import { sendBody, sendJson, sendText } from "./respond.ts";

/** What a peer needs to copy a rendition and verify every byte (GET /replica/{s}/{r}/inventory?last=N). */
export interface ReplicaInventory {
  streamId: string;
  renditionId: string;
  init: { sha256: string; size: number } | null;
  /** Closed segments, ascending by msn. */
  segments: SegmentMeta[];
  /** The segment in progress, when there is one. */
  open: { msn: number; pdtMs?: number; timelineMs?: number; parts: PartMeta[] } | null;
}

export const REPLICA_INVENTORY_SEGMENTS_MAX = 100;

export function replicaInventory(
  store: MediaStore,
  streamId: string,
  renditionId: string,
  last: number,
): ReplicaInventory | undefined {
  const r = store.rendition(streamId, renditionId);
  if (!r) return undefined;
  const t = r.timeline;
  const closed = t.closed.slice(Math.max(0, t.closed.length - last));
  const open = t.open;
  return {
    streamId,
    renditionId,
    init: t.init ? { sha256: t.init.sha256, size: t.init.bytes.length } : null,
    segments: closed.map(describeSegment),
    open: open
      ? {
          msn: open.msn,
          ...(open.pdtMs !== undefined ? { pdtMs: open.pdtMs } : {}),
          ...(open.timelineMs !== undefined ? { timelineMs: open.timelineMs } : {}),
          parts: open.parts.map(describePart),
        }
      : null,
  };
}

export function handleReplica(
  store: MediaStore | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  segments: readonly string[],
  query: string | undefined,
): number {
  if (!store) {
    sendText(res, 404, "edge nodes hold no replica inventory");
    return 404;
  }
  if (segments.length !== 3 || segments[2] !== "inventory") {
    sendText(res, 404, "expected /replica/{streamId}/{renditionId}/inventory?last=N");
    return 404;
  }
  const lastText = new URLSearchParams(query ?? "").get("last") ?? "6";
  const last = Number(lastText);
  if (!/^\d{1,4}$/.test(lastText) || last < 1 || last > REPLICA_INVENTORY_SEGMENTS_MAX) {
    sendText(
      res,
      400,
      `last must be an integer 1..${REPLICA_INVENTORY_SEGMENTS_MAX}, got "${lastText}"`,
    );
    return 400;
  }
  const inv = replicaInventory(store, segments[0]!, segments[1]!, last);
  if (!inv) {
    sendText(res, 404, `rendition ${segments[0]}/${segments[1]} is not served here`);
    return 404;
  }
  if (req.method === "HEAD") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end();
    return 200;
  }
  sendJson(res, 200, inv);
  return 200;
}

export function handleUtc(req: IncomingMessage, res: ServerResponse, nowMs: number): number {
  sendBody(req, res, 200, new Date(nowMs).toISOString(), {
    "content-type": "text/plain",
    "cache-control": "no-store",
  });
  return 200;
}
