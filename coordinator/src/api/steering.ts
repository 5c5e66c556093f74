/**
 * HLS Content Steering (draft-pantos-hls-rfc8216bis §4.4.6.6 and the Content
 * Steering specification): `GET /steering/<streamId>` returns the Steering
 * Manifest an unmodified player (hls.js, AVPlayer, dash.js) reloads every TTL
 * seconds. Pathways are origin component ids; PATHWAY-PRIORITY orders them by
 * the origin health score: a standby of a notified handover first, then the
 * primary, then replicas; DOWN/DRAINING origins last. Served by every
 * coordinator from its replicated state (no leader round trip: a slightly
 * stale answer is fine, the player reloads).
 */
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { HandoverState } from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import { type FsmView, isHandoverOpen } from "../fsm/fsm.ts";
import { idPattern } from "./validate-stream.ts";

export interface PathwayClone {
  readonly "BASE-ID": string;
  readonly ID: string;
  readonly "URI-REPLACEMENT": { readonly HOST: string };
}

export interface SteeringManifest {
  readonly VERSION: 1;
  readonly TTL: number;
  readonly "RELOAD-URI": string;
  readonly "PATHWAY-PRIORITY": string[];
  /**
   * A player knows only the pathway of the multivariant playlist it loaded
   * (`_HLS_pathway`); the other origins reach it as clones of that pathway
   * with their host swapped in. Origins share paths (/live/...), so a host
   * replacement is all a clone needs; origins must also share scheme and port.
   */
  readonly "PATHWAY-CLONES"?: PathwayClone[];
}

/** Reload interval while nothing happens, and while a handover is under way. */
export const steeringTtlSecondsIdle = 30;
export const steeringTtlSecondsActive = 2;

export function buildSteeringManifest(
  fsm: FsmView,
  streamId: string,
  currentPathway = "",
): SteeringManifest | undefined {
  const stream = fsm.stream(streamId);
  if (!stream) return undefined;
  const order: string[] = [];
  const push = (id: string) => {
    if (id && !order.includes(id)) order.push(id);
  };
  const open = fsm.handovers().filter((h) => h.streamId === streamId && isHandoverOpen(h));
  // Once clients are told to move (NOTIFIED), the standby leads; earlier it is
  // still being prepared and must not receive viewers yet.
  for (const h of open) if (h.state >= HandoverState.NOTIFIED) push(h.toComponentId);
  const assignments = fsm.assignments(streamId)?.assignments ?? [];
  for (const a of assignments) push(a.primaryPackagerId);
  for (const a of assignments) for (const r of a.replicaPackagerIds) push(r);
  const healthy = (id: string) => {
    const s = fsm.component(id)?.status;
    return s === ComponentStatus.HEALTHY || s === ComponentStatus.SUSPECT;
  };
  const leaving = new Set(
    open.filter((h) => h.state >= HandoverState.NOTIFIED).map((h) => h.fromComponentId),
  );
  const ranked = [
    ...order.filter((id) => healthy(id) && !leaving.has(id)),
    ...order.filter((id) => !healthy(id) || leaving.has(id)),
  ];
  if (ranked.length === 0) return undefined;
  const hostOf = (id: string) => {
    try {
      return new URL(fsm.component(id)?.baseUrl ?? "").hostname;
    } catch {
      return "";
    }
  };
  const clones: PathwayClone[] =
    currentPathway && ranked.includes(currentPathway)
      ? ranked
          .filter((id) => id !== currentPathway && hostOf(id) !== "")
          .map((id) => ({
            "BASE-ID": currentPathway,
            ID: id,
            "URI-REPLACEMENT": { HOST: hostOf(id) },
          }))
      : [];
  return {
    VERSION: 1,
    TTL: open.length > 0 ? steeringTtlSecondsActive : steeringTtlSecondsIdle,
    "RELOAD-URI": `/steering/${streamId}`,
    "PATHWAY-PRIORITY": ranked,
    ...(clones.length > 0 ? { "PATHWAY-CLONES": clones } : {}),
  };
}

/** Handles `GET /steering/<id>`; returns false when the path is not ours. */
export function handleSteering(
  fsm: FsmView,
  method: string | undefined,
  url: string | undefined,
  reply: (status: number, headers: Record<string, string>, body: string) => void,
): boolean {
  const u = new URL(url ?? "/", "http://x");
  const m = /^\/steering\/([^/]+)$/.exec(u.pathname);
  if (!m) return false;
  const cors = { "access-control-allow-origin": "*" };
  if (method !== "GET" && method !== "HEAD") {
    reply(405, { ...cors, allow: "GET, HEAD", "content-type": "text/plain" }, "use GET\n");
    return true;
  }
  const id = decodeURIComponent(m[1] as string);
  if (!idPattern.test(id)) {
    reply(
      400,
      { ...cors, "content-type": "text/plain" },
      `"${id}" is not a stream id ([a-z0-9-], 1–64 chars)\n`,
    );
    return true;
  }
  const pathway = u.searchParams.get("_HLS_pathway") ?? "";
  const manifest = buildSteeringManifest(
    fsm,
    id,
    /^[A-Za-z0-9._-]{1,64}$/.test(pathway) ? pathway : "",
  );
  if (!manifest) {
    reply(
      404,
      { ...cors, "content-type": "text/plain" },
      `no stream "${id}" with assigned origins\n`,
    );
    return true;
  }
  reply(
    200,
    {
      ...cors,
      "content-type": "application/json",
      "cache-control": `max-age=${Math.max(1, manifest.TTL - 1)}`,
    },
    JSON.stringify(manifest),
  );
  return true;
}
