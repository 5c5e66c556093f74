/**
 * StreamSpec validation, the contract written on the fields of
 * proto/understudy/common/v1/stream.proto. Each violation is an
 * INVALID_ARGUMENT whose message starts with the dotted field path, and the
 * request changes nothing.
 */
import type { ConnectError } from "@connectrpc/connect";
import { invalidArgument } from "../../../common/errors.ts";
import { LatencyMode, type StreamSpec } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";

export const idPattern = /^[a-z0-9][a-z0-9-]{0,63}$/;
const renditionIdPattern = /^[a-z0-9_-]{1,32}$/;
const printable = /^[\x20-\x7e]{1,256}$/;
const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);

/** Returns the first violation, or undefined when the spec is valid. */
export function validateStreamSpec(
  spec: StreamSpec | undefined,
  path = "spec",
): ConnectError | undefined {
  if (!spec) return invalidArgument(path, "required");
  const f = (name: string) => `${path}.${name}`;
  if (!idPattern.test(spec.id)) {
    return invalidArgument(
      f("id"),
      `must be 1–64 chars of [a-z0-9-] starting with a letter or digit, got "${spec.id}"`,
    );
  }
  if (spec.displayName.length > 256) return invalidArgument(f("display_name"), "at most 256 chars");
  if (spec.renditions.length < 1 || spec.renditions.length > 16) {
    return invalidArgument(f("renditions"), `needs 1–16 renditions, got ${spec.renditions.length}`);
  }
  const ids = new Set<string>();
  for (const [i, r] of spec.renditions.entries()) {
    const rf = (name: string) => `${path}.renditions[${i}].${name}`;
    if (!renditionIdPattern.test(r.id))
      return invalidArgument(rf("id"), `must be 1–32 chars of [a-z0-9_-], got "${r.id}"`);
    if (ids.has(r.id)) return invalidArgument(rf("id"), `duplicate rendition id "${r.id}"`);
    ids.add(r.id);
    if (r.bandwidthBps < 1n || r.bandwidthBps > maxSafe)
      return invalidArgument(rf("bandwidth_bps"), "must be 1..2^53-1");
    if (r.audioOnly) {
      if (r.width !== 0 || r.height !== 0 || r.frameRate !== 0) {
        return invalidArgument(
          rf("audio_only"),
          "an audio-only rendition has width, height and frame_rate 0",
        );
      }
    } else {
      if (r.width < 16 || r.width > 7680)
        return invalidArgument(rf("width"), `must be 16–7680, got ${r.width}`);
      if (r.height < 16 || r.height > 4320)
        return invalidArgument(rf("height"), `must be 16–4320, got ${r.height}`);
      if (!(r.frameRate > 0 && r.frameRate <= 240))
        return invalidArgument(rf("frame_rate"), `must be in (0, 240], got ${r.frameRate}`);
    }
    if (!printable.test(r.codecs))
      return invalidArgument(rf("codecs"), "required: 1–256 printable ASCII chars (RFC 6381)");
  }
  if (spec.renditions.every((r) => r.audioOnly)) {
    return invalidArgument(f("renditions"), "at least one rendition must carry video");
  }
  const shard = spec.shardDurationMs;
  if (shard < 200 || shard > 500)
    return invalidArgument(f("shard_duration_ms"), `must be 200–500, got ${shard}`);
  const p = spec.segmentPolicy;
  if (!p) return invalidArgument(f("segment_policy"), "required");
  const pf = (name: string) => `${path}.segment_policy.${name}`;
  const target = p.segmentDurationTargetMs;
  if (target < 1000 || target > 10000 || target % shard !== 0) {
    return invalidArgument(
      pf("segment_duration_target_ms"),
      `must be 1000–10000 and a multiple of shard_duration_ms (${shard}), got ${target}`,
    );
  }
  if (p.segmentDurationMinMs < shard || p.segmentDurationMinMs > target) {
    return invalidArgument(
      pf("segment_duration_min_ms"),
      `must be in shard_duration_ms..target (${shard}..${target}), got ${p.segmentDurationMinMs}`,
    );
  }
  if (p.segmentDurationMaxMs < target || p.segmentDurationMaxMs > 15000) {
    return invalidArgument(
      pf("segment_duration_max_ms"),
      `must be in target..15000 (${target}..15000), got ${p.segmentDurationMaxMs}`,
    );
  }
  if (spec.latencyMode === LatencyMode.UNSPECIFIED || !(spec.latencyMode in LatencyMode)) {
    return invalidArgument(
      f("latency_mode"),
      "required: LATENCY_MODE_LOW_LATENCY or LATENCY_MODE_STANDARD",
    );
  }
  if (spec.latencyMode === LatencyMode.STANDARD && p.partDurationMs !== 0) {
    return invalidArgument(pf("part_duration_ms"), "must be 0 for STANDARD latency mode");
  }
  if (spec.latencyMode === LatencyMode.LOW_LATENCY) {
    const part = p.partDurationMs;
    if (part < 200 || part > 2000 || part % shard !== 0 || target % part !== 0) {
      return invalidArgument(
        pf("part_duration_ms"),
        `for LOW_LATENCY must be 200–2000, a multiple of shard_duration_ms (${shard}) and divide the target (${target}), got ${part}`,
      );
    }
  }
  const unit = spec.latencyMode === LatencyMode.LOW_LATENCY ? p.partDurationMs : shard;
  const k = p.keyframeIntervalMs;
  if (k !== 0 && (k % unit !== 0 || target % k !== 0)) {
    return invalidArgument(
      pf("keyframe_interval_ms"),
      `must be 0 (the target) or a multiple of the ${spec.latencyMode === LatencyMode.LOW_LATENCY ? "part" : "shard"} duration (${unit}) that divides the target (${target}), got ${k}`,
    );
  }
  if (spec.replicationFactor < 1 || spec.replicationFactor > 5) {
    return invalidArgument(f("replication_factor"), `must be 1–5, got ${spec.replicationFactor}`);
  }
  if (spec.timelineOriginUnixMs < 0n) {
    return invalidArgument(
      f("timeline_origin_unix_ms"),
      "must be 0 (use the creation time) or a unix ms time",
    );
  }
  const pl = spec.placement;
  if (pl) {
    for (const [name, list, max] of [
      ["allowed_regions", pl.allowedRegions, 32],
      ["allowed_zones", pl.allowedZones, 64],
    ] as const) {
      if (list.length > max)
        return invalidArgument(`${path}.placement.${name}`, `at most ${max} entries`);
      if (new Set(list).size !== list.length)
        return invalidArgument(`${path}.placement.${name}`, "entries must be unique");
      const badIdx = list.findIndex((x) => !idPattern.test(x));
      if (badIdx >= 0)
        return invalidArgument(
          `${path}.placement.${name}[${badIdx}]`,
          `must be 1–64 chars of [a-z0-9-], got "${list[badIdx]}"`,
        );
    }
  }
  return undefined;
}
