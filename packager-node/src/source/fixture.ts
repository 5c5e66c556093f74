/**
 * The committed CMAF fixture ladder (packager-node/fixtures/cmaf-ladder):
 * describing it (manifest.json is generated from the media by
 * fixtures/pack-fixture.ts) and loading it with a check that the manifest
 * still matches the bytes. The source loops this fixture forever, so the
 * loader insists on the properties looping needs: every track starts at
 * decode time 0, parts are contiguous, all parts have the same duration, and
 * every track's total duration equals the loop duration exactly (otherwise
 * audio and video would drift apart by a little on every loop).
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseFragment, parseInit, splitFragments } from "../media/index.ts";

export class FixtureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FixtureError";
  }
}

export interface FixtureTrackManifest {
  readonly trackId: number;
  readonly kind: "video" | "audio";
  readonly codec: string;
  readonly timescale: number;
  /** Sum of all sample durations in one loop, in `timescale` ticks. */
  readonly loopDurationTicks: number;
  readonly sampleRate?: number;
  readonly channelCount?: number;
}

export interface FixturePartTrackManifest {
  readonly trackId: number;
  readonly baseMediaDecodeTime: number;
  readonly durationTicks: number;
  readonly sampleCount: number;
}

export interface FixturePartManifest {
  readonly index: number;
  /** Byte offset and size of this part (moof+mdat) inside the rendition's media file. */
  readonly offset: number;
  readonly size: number;
  /** Duration of the primary (video, else first) track, in ms. */
  readonly durationMs: number;
  /** Every track starts with a sync sample (true for the first part of each segment). */
  readonly independent: boolean;
  readonly sha256: string;
  readonly tracks: readonly FixturePartTrackManifest[];
}

export interface FixtureRenditionManifest {
  readonly id: string;
  readonly width: number;
  readonly height: number;
  readonly frameRate: number;
  /** HLS CODECS / DASH @codecs, video first. */
  readonly codecs: string;
  /** Peak bits per second over the segments (HLS BANDWIDTH). */
  readonly bandwidth: number;
  /** Mean bits per second over the loop (HLS AVERAGE-BANDWIDTH). */
  readonly averageBandwidth: number;
  /** Paths relative to the fixture directory. */
  readonly init: string;
  readonly media: string;
  readonly initSha256: string;
  readonly tracks: readonly FixtureTrackManifest[];
  readonly parts: readonly FixturePartManifest[];
}

export interface FixtureManifest {
  readonly version: 1;
  readonly description: string;
  readonly partDurationMs: number;
  readonly segmentDurationMs: number;
  readonly partsPerSegment: number;
  readonly loopDurationMs: number;
  readonly renditions: readonly FixtureRenditionManifest[];
}

export interface FixturePart extends FixturePartManifest {
  readonly bytes: Uint8Array;
}

export interface FixtureRendition extends Omit<FixtureRenditionManifest, "parts"> {
  readonly contentType: "video/mp4" | "audio/mp4";
  readonly initBytes: Uint8Array;
  readonly parts: readonly FixturePart[];
}

export interface Fixture {
  readonly dir: string;
  readonly manifest: FixtureManifest;
  readonly partDurationMs: number;
  readonly segmentDurationMs: number;
  readonly partsPerSegment: number;
  readonly partsPerLoop: number;
  readonly loopDurationMs: number;
  readonly renditions: readonly FixtureRendition[];
}

/** The committed ladder: packager-node/fixtures/cmaf-ladder. */
export const defaultFixtureDir = resolve(
  fileURLToPath(new URL(".", import.meta.url)),
  "../../fixtures/cmaf-ladder",
);

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface RenditionInput {
  readonly id: string;
  readonly init: Uint8Array;
  readonly media: Uint8Array;
}

/** Builds the manifest entry of one rendition from its init and media bytes. */
export function describeRendition(
  input: RenditionInput,
): FixtureRenditionManifest & { readonly loopDurationMs: number; partsPerSegment: number } {
  const { id } = input;
  const init = parseInit(input.init);
  const tracks: FixtureTrackManifest[] = [];
  for (const t of init.tracks) {
    if ((t.kind !== "video" && t.kind !== "audio") || !t.codec) {
      throw new FixtureError(`${id}: track ${t.trackId} (${t.handlerType}) is not audio/video`);
    }
    tracks.push({
      trackId: t.trackId,
      kind: t.kind,
      codec: t.codec,
      timescale: t.timescale,
      loopDurationTicks: 0,
      ...(t.kind === "audio" ? { sampleRate: t.sampleRate, channelCount: t.channelCount } : {}),
    });
  }
  const primary = tracks.find((t) => t.kind === "video") ?? tracks[0]!;
  const video = init.tracks.find((t) => t.kind === "video");
  const frags = splitFragments(input.media);
  if (frags.length === 0) throw new FixtureError(`${id}: media has no fragments`);
  const next = new Map<number, number>(); // expected next decode time per track
  const parts: FixturePartManifest[] = frags.map((f, index) => {
    const info = parseFragment(f.bytes, init.defaults);
    const partTracks = tracks.map((t) => {
      const tf = info.tracks.find((x) => x.trackId === t.trackId);
      if (!tf || tf.baseMediaDecodeTime === undefined) {
        throw new FixtureError(`${id}: part ${index} lacks track ${t.trackId} or its tfdt`);
      }
      const at = Number(tf.baseMediaDecodeTime);
      const expected = next.get(t.trackId) ?? 0;
      if (at !== expected) {
        throw new FixtureError(
          `${id}: part ${index} track ${t.trackId} starts at ${at}, expected ${expected} (parts must be contiguous from 0)`,
        );
      }
      next.set(t.trackId, at + tf.durationTicks);
      return {
        trackId: t.trackId,
        baseMediaDecodeTime: at,
        durationTicks: tf.durationTicks,
        sampleCount: tf.samples.length,
      };
    });
    const p = partTracks.find((x) => x.trackId === primary.trackId)!;
    return {
      index,
      offset: f.start,
      size: f.end - f.start,
      durationMs: (p.durationTicks * 1000) / primary.timescale,
      independent: info.independent,
      sha256: sha256Hex(f.bytes),
      tracks: partTracks,
    };
  });
  const partMs = parts[0]!.durationMs;
  for (const p of parts) {
    if (p.durationMs !== partMs || !Number.isInteger(partMs)) {
      throw new FixtureError(
        `${id}: part ${p.index} lasts ${p.durationMs} ms; all parts must last the same whole number of ms (${partMs})`,
      );
    }
  }
  const loopDurationMs = partMs * parts.length;
  const finalTracks = tracks.map((t) => {
    const ticks = next.get(t.trackId)!;
    if (ticks * 1000 !== loopDurationMs * t.timescale) {
      throw new FixtureError(
        `${id}: track ${t.trackId} lasts ${ticks}/${t.timescale} s but the loop is ${loopDurationMs} ms; looping would drift`,
      );
    }
    return { ...t, loopDurationTicks: ticks };
  });
  const independentAt = parts.filter((p) => p.independent).map((p) => p.index);
  const partsPerSegment = independentAt[1] ?? parts.length;
  if (
    independentAt[0] !== 0 ||
    parts.length % partsPerSegment !== 0 ||
    parts.some((p) => p.independent !== (p.index % partsPerSegment === 0))
  ) {
    throw new FixtureError(
      `${id}: independent parts at ${independentAt.join(",")}; need every segment (same number of parts) to start with one`,
    );
  }
  let peakBits = 0;
  let totalBytes = 0;
  for (let s = 0; s < parts.length; s += partsPerSegment) {
    let bytes = 0;
    for (const p of parts.slice(s, s + partsPerSegment)) bytes += p.size;
    totalBytes += bytes;
    peakBits = Math.max(peakBits, (bytes * 8 * 1000) / (partMs * partsPerSegment));
  }
  const videoSamples = parts[0]!.tracks.find((x) => x.trackId === video?.trackId);
  const frameRate =
    video && videoSamples
      ? Math.round(
          (videoSamples.sampleCount * video.timescale * 100) / videoSamples.durationTicks,
        ) / 100
      : 0;
  return {
    id,
    width: video?.width ?? 0,
    height: video?.height ?? 0,
    frameRate,
    codecs: init.codecs,
    bandwidth: Math.ceil(peakBits),
    averageBandwidth: Math.ceil((totalBytes * 8 * 1000) / loopDurationMs),
    init: `${id}/init.mp4`,
    media: `${id}/media.m4s`,
    initSha256: sha256Hex(input.init),
    tracks: finalTracks,
    parts,
    loopDurationMs,
    partsPerSegment,
  };
}

/** Builds the whole manifest; all renditions must share part duration, segmentation and loop. */
export function describeFixture(
  renditions: readonly RenditionInput[],
  description: string,
): FixtureManifest {
  if (renditions.length === 0) throw new FixtureError("a fixture needs at least one rendition");
  const described = renditions.map(describeRendition);
  const first = described[0]!;
  const partDurationMs = first.parts[0]!.durationMs;
  for (const r of described) {
    if (
      r.parts[0]!.durationMs !== partDurationMs ||
      r.partsPerSegment !== first.partsPerSegment ||
      r.loopDurationMs !== first.loopDurationMs
    ) {
      throw new FixtureError(`${r.id}: part/segment/loop durations differ from ${first.id}`);
    }
  }
  return {
    version: 1,
    description,
    partDurationMs,
    segmentDurationMs: partDurationMs * first.partsPerSegment,
    partsPerSegment: first.partsPerSegment,
    loopDurationMs: first.loopDurationMs,
    renditions: described.map(({ loopDurationMs: _l, partsPerSegment: _p, ...r }) => r),
  };
}

/** First differing path between two JSON-like values, or undefined when equal. */
function firstDifference(a: unknown, b: unknown, path = ""): string | undefined {
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return Object.is(a, b) ? undefined : `${path || "(root)"}: ${String(a)} != ${String(b)}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      path ? `${path}.${k}` : k,
    );
    if (d) return d;
  }
  return undefined;
}

/**
 * Loads a fixture directory (manifest.json + files) and checks the manifest
 * against the media bytes; throws FixtureError naming the first mismatch.
 */
export async function loadFixture(dir: string = defaultFixtureDir): Promise<Fixture> {
  let manifest: FixtureManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as FixtureManifest;
  } catch (err) {
    throw new FixtureError(`cannot read ${join(dir, "manifest.json")}: ${(err as Error).message}`);
  }
  if (manifest.version !== 1 || !Array.isArray(manifest.renditions)) {
    throw new FixtureError(`${dir}/manifest.json: not a version 1 fixture manifest`);
  }
  const inputs: RenditionInput[] = [];
  for (const r of manifest.renditions) {
    try {
      inputs.push({
        id: r.id,
        init: new Uint8Array(await readFile(join(dir, r.init))),
        media: new Uint8Array(await readFile(join(dir, r.media))),
      });
    } catch (err) {
      throw new FixtureError(`fixture rendition ${r.id}: ${(err as Error).message}`);
    }
  }
  const derived = describeFixture(inputs, manifest.description);
  const diff = firstDifference(manifest, derived);
  if (diff) throw new FixtureError(`${dir}/manifest.json does not match the media: ${diff}`);
  const renditions = derived.renditions.map((r, i): FixtureRendition => {
    const input = inputs[i]!;
    return {
      ...r,
      contentType: r.tracks.some((t) => t.kind === "video")
        ? ("video/mp4" as const)
        : ("audio/mp4" as const),
      initBytes: input.init,
      parts: r.parts.map((p) => ({
        ...p,
        bytes: input.media.subarray(p.offset, p.offset + p.size),
      })),
    };
  });
  return {
    dir,
    manifest: derived,
    partDurationMs: derived.partDurationMs,
    segmentDurationMs: derived.segmentDurationMs,
    partsPerSegment: derived.partsPerSegment,
    partsPerLoop: renditions[0]!.parts.length,
    loopDurationMs: derived.loopDurationMs,
    renditions,
  };
}
