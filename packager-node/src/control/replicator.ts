/**
 * Replication from a peer origin (pre-stitching a standby): read the peer's
 * /replica inventory (checksums and timing), fetch each object from the
 * peer's /live URLs, verify size and SHA-256 against the inventory, and only
 * then place it into the local timeline. A mismatch is reported and nothing
 * of that object is stored.
 */
import type { Clock } from "../../../common/clock.ts";
import { unavailable } from "../../../common/errors.ts";
import type { ReplicaInventory } from "../http/node-routes.ts";
import { type MediaStore, sha256Hex } from "../store/media-store.ts";
import { partFromMeta, segmentFromMeta } from "../store/segment-meta.ts";
import { TimelineRejection } from "../store/timeline.ts";

export type ObjectKind = "init" | "segment" | "part";

export interface CopiedObject {
  kind: ObjectKind;
  msn: number;
  partIndex: number;
  durationMs: number;
  sha256: string;
  sizeBytes: number;
}

export interface Mismatch {
  expected: CopiedObject;
  actualSha256: string;
  detail: string;
}

export interface ReplicateOutcome {
  segmentsCopied: number;
  copiedBytes: number;
  copied: CopiedObject[];
  mismatches: Mismatch[];
  verified: boolean;
}

export interface ReplicateParams {
  store: MediaStore;
  clock: Clock;
  streamId: string;
  renditionId: string;
  peerBaseUrl: string;
  lastNSegments: number;
  includeParts: boolean;
  /** Per HTTP request to the peer. */
  requestTimeoutMs: number;
}

async function getPeer(url: string, timeoutMs: number): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw unavailable(
      `peer request ${url} failed: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) {
    throw unavailable(
      `peer answered ${res.status} for ${url}: ${body.toString("utf8").slice(0, 200).trim()}`,
    );
  }
  return body;
}

export async function replicateFromPeer(p: ReplicateParams): Promise<ReplicateOutcome> {
  const base = p.peerBaseUrl.replace(/\/+$/, "");
  const live = `${base}/live/${p.streamId}/${p.renditionId}`;
  const invBody = await getPeer(
    `${base}/replica/${p.streamId}/${p.renditionId}/inventory?last=${p.lastNSegments}`,
    p.requestTimeoutMs,
  );
  let inv: ReplicaInventory;
  try {
    inv = JSON.parse(invBody.toString("utf8")) as ReplicaInventory;
  } catch {
    throw unavailable(`peer inventory for ${p.streamId}/${p.renditionId} is not JSON`);
  }
  const out: ReplicateOutcome = {
    segmentsCopied: 0,
    copiedBytes: 0,
    copied: [],
    mismatches: [],
    verified: true,
  };
  const rendition = () => {
    const r = p.store.rendition(p.streamId, p.renditionId);
    if (!r)
      throw unavailable(
        `rendition ${p.streamId}/${p.renditionId} was unassigned during replication`,
      );
    return r;
  };
  const mismatch = (expected: CopiedObject, actual: string, detail: string) => {
    out.mismatches.push({ expected, actualSha256: actual, detail });
    out.verified = false;
  };
  const now = () => p.clock.nowMs();

  if (inv.init) {
    const expected: CopiedObject = {
      kind: "init",
      msn: 0,
      partIndex: 0,
      durationMs: 0,
      sha256: inv.init.sha256,
      sizeBytes: inv.init.size,
    };
    const local = rendition().timeline.init;
    if (local?.sha256 === inv.init.sha256) {
      out.copied.push(expected);
    } else {
      const bytes = await getPeer(`${live}/init.mp4`, p.requestTimeoutMs);
      const sha = sha256Hex(bytes);
      if (sha !== inv.init.sha256 || bytes.length !== inv.init.size) {
        mismatch(
          expected,
          sha,
          `init: size ${bytes.length} vs ${inv.init.size}, sha256 ${sha === inv.init.sha256 ? "equal" : "differs"}`,
        );
      } else {
        try {
          rendition().timeline.putInit({ bytes, sha256: sha, meta: {}, arrivalMs: now() });
          out.copied.push(expected);
          out.copiedBytes += bytes.length;
        } catch (err) {
          if (!(err instanceof TimelineRejection)) throw err;
          mismatch(expected, sha, err.message);
        }
      }
    }
  }

  // Newest first: a standby that already holds the live edge (dual ingest)
  // extends its window backwards one segment at a time.
  for (const s of [...inv.segments].reverse()) {
    const expected: CopiedObject = {
      kind: "segment",
      msn: s.msn,
      partIndex: 0,
      durationMs: s.durationMs,
      sha256: s.sha256,
      sizeBytes: s.size,
    };
    const r = rendition();
    const local = r.timeline.findClosed(s.msn);
    if (local && local.sha256 === s.sha256) {
      out.copied.push(expected);
      continue;
    }
    let bytes: Buffer = Buffer.alloc(0);
    let sha = s.sha256;
    if (!s.gap) {
      bytes = await getPeer(`${live}/${s.msn}.m4s`, p.requestTimeoutMs);
      sha = sha256Hex(bytes);
      if (sha !== s.sha256 || bytes.length !== s.size) {
        mismatch(
          expected,
          sha,
          `segment ${s.msn}: size ${bytes.length} vs ${s.size}, sha256 ${sha === s.sha256 ? "equal" : "differs"}`,
        );
        // Older segments could only be placed behind this hole: stop here.
        break;
      }
    }
    const seg = segmentFromMeta(s, bytes, now(), sha256Hex);
    if (!seg) {
      mismatch(
        expected,
        sha,
        `segment ${s.msn}: a part does not match its inventory size or checksum`,
      );
      break;
    }
    try {
      r.timeline.importSegment(seg, now());
      out.copied.push(expected);
      out.copiedBytes += bytes.length;
      out.segmentsCopied++;
    } catch (err) {
      if (!(err instanceof TimelineRejection)) throw err;
      mismatch(expected, sha, err.message);
    }
  }

  if (p.includeParts && inv.open) {
    const open = inv.open;
    const localOpen = rendition().timeline.open;
    // Parts extend the local segment in progress outwards from what it holds.
    const ordered = localOpen?.msn === open.msn ? [...open.parts].reverse() : open.parts;
    for (const ip of ordered) {
      const expected: CopiedObject = {
        kind: "part",
        msn: open.msn,
        partIndex: ip.index,
        durationMs: ip.durationMs,
        sha256: ip.sha256,
        sizeBytes: ip.size,
      };
      const r = rendition();
      if (r.timeline.findPart(open.msn, ip.index)?.sha256 === ip.sha256) {
        out.copied.push(expected);
        continue;
      }
      const bytes = ip.gap
        ? Buffer.alloc(0)
        : await getPeer(`${live}/${open.msn}.${ip.index}.m4s`, p.requestTimeoutMs);
      const sha = sha256Hex(bytes);
      if (!ip.gap && (sha !== ip.sha256 || bytes.length !== ip.size)) {
        mismatch(
          expected,
          sha,
          `part ${open.msn}.${ip.index}: size ${bytes.length} vs ${ip.size}, sha256 ${sha === ip.sha256 ? "equal" : "differs"}`,
        );
        continue;
      }
      try {
        r.timeline.importPart(open.msn, partFromMeta(ip, bytes, now()), now());
        out.copied.push(expected);
        out.copiedBytes += bytes.length;
      } catch (err) {
        if (!(err instanceof TimelineRejection)) throw err;
        mismatch(expected, sha, err.message);
      }
    }
  }
  p.store.changed(p.streamId, p.renditionId);
  return out;
}
