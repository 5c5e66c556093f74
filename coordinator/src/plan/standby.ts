/**
 * Standby choice for a handover: the origin health score. Pure. Higher is
 * better; a candidate must be a healthy packager/origin other than the one
 * being replaced. The score weighs, in order of importance:
 *  - already holding the stream (a replica is a prepared understudy: it has
 *    the timeline and segments, so the switch needs no pre-stitching);
 *  - proximity to where the viewers are (same region, then same zone);
 *  - zone diversity from the failing component (a zone-wide fault would
 *    take a same-zone standby with it);
 *  - history (fewer recent failures), load and capacity headroom.
 * Ties break by id so every leader picks the same standby.
 */
import {
  type Component,
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";

export interface StandbyInput {
  readonly from: Component;
  readonly candidates: readonly Component[];
  /** Components already serving this stream (assignment primaries/replicas). */
  readonly holdingStream: ReadonlySet<string>;
  /** Streams currently assigned per component (load). */
  readonly streamsAssigned: ReadonlyMap<string, number>;
  /** Recent failures per component (DOWN transitions in the history window). */
  readonly recentFailures: ReadonlyMap<string, number>;
  /** Region/zone where most viewers of the stream are ("" = unknown). */
  readonly viewerRegion: string;
  readonly viewerZone: string;
}

export interface ScoredStandby {
  readonly component: Component;
  readonly score: number;
  readonly reasons: readonly string[];
}

export function scoreStandbys(input: StandbyInput): ScoredStandby[] {
  const out: ScoredStandby[] = [];
  for (const c of input.candidates) {
    if (c.id === input.from.id) continue;
    if (c.role !== ComponentRole.PACKAGER && c.role !== ComponentRole.ORIGIN) continue;
    if (c.status !== ComponentStatus.HEALTHY) continue;
    const reasons: string[] = [];
    let score = 0;
    if (input.holdingStream.has(c.id)) {
      score += 100;
      reasons.push("already replicates the stream");
    }
    const region = c.labels?.region ?? "";
    const zone = c.labels?.zone ?? "";
    if (input.viewerRegion && region === input.viewerRegion) {
      score += 30;
      reasons.push(`in viewers' region ${region}`);
      if (input.viewerZone && zone === input.viewerZone) {
        score += 10;
        reasons.push(`in viewers' zone ${zone}`);
      }
    }
    if (zone && zone !== (input.from.labels?.zone ?? "")) {
      score += 15;
      reasons.push("different zone from the failing component");
    }
    const failures = input.recentFailures.get(c.id) ?? 0;
    score -= 20 * Math.min(failures, 3);
    if (failures > 0) reasons.push(`${failures} recent failure(s)`);
    const load = input.streamsAssigned.get(c.id) ?? 0;
    const maxStreams = c.capacity?.maxStreams ?? 0;
    if (maxStreams > 0) {
      if (load >= maxStreams) continue; // full: never a standby
      score += 20 * (1 - load / maxStreams);
    } else {
      score -= Math.min(load, 20);
    }
    out.push({ component: c, score, reasons });
  }
  return out.sort((a, b) => b.score - a.score || (a.component.id < b.component.id ? -1 : 1));
}
