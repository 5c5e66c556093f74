/**
 * packager-node configuration (YAML, validated at start; a bad field exits 2
 * naming its dotted path). See deploy/ examples and the field comments below.
 */
import { ConfigError, type Infer, loadConfigFile, parseConfig, s } from "../../common/config.ts";
import { loadTokensFile, tokenEntriesSchema } from "../../common/rpc-auth.ts";

/** Roles of a control-port token: coordinator (every PackagerService call), reader (Inventory, GetStatus). */
export const packagerControlRoles = ["coordinator", "reader"] as const;

/** Stream ids as in understudy.common.v1.StreamSpec: 1–64 chars of [a-z0-9-]. */
export const STREAM_ID_PATTERN = /^[a-z0-9-]{1,64}$/;
/** Rendition ids as in understudy.common.v1.Rendition: 1–32 chars of [a-z0-9_-]. */
export const RENDITION_ID_PATTERN = /^[a-z0-9_-]{1,32}$/;

const renditionSchema = s.object({
  id: s.string({
    pattern: RENDITION_ID_PATTERN,
    hint: "a rendition id (1–32 chars of [a-z0-9_-])",
  }),
  kind: s.default(s.literal("video", "audio"), "video" as const),
  /** Peak bits per second (HLS BANDWIDTH, DASH @bandwidth). */
  bandwidth: s.number({ integer: true, min: 1 }),
  averageBandwidth: s.optional(s.number({ integer: true, min: 1 })),
  /** RFC 6381 codecs, e.g. "avc1.64001f" or "mp4a.40.2". */
  codecs: s.string({ pattern: /^[\x21-\x7e]{1,256}$/, hint: "an RFC 6381 codecs string" }),
  /** "WIDTHxHEIGHT" for video. */
  resolution: s.optional(
    s.string({ pattern: /^[1-9]\d{0,4}x[1-9]\d{0,4}$/, hint: '"WIDTHxHEIGHT"' }),
  ),
  frameRate: s.optional(s.number({ min: 0.001, max: 240 })),
  name: s.optional(s.string({ pattern: /^[^"\r\n]{1,64}$/, hint: "1–64 chars without quotes" })),
  language: s.optional(
    s.string({ pattern: /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/, hint: "a BCP 47 tag" }),
  ),
});

const streamSchema = s.object({
  id: s.string({ pattern: STREAM_ID_PATTERN, hint: "a stream id (1–64 chars of [a-z0-9-])" }),
  /** low: LL-HLS (parts, blocking reload); standard: classic HLS. */
  latency: s.default(s.literal("low", "standard"), "low" as const),
  targetSegmentDurationMs: s.default(s.number({ integer: true, min: 1000, max: 10000 }), 2000),
  targetPartDurationMs: s.default(s.number({ integer: true, min: 100, max: 2000 }), 500),
  /** Closed segments listed in media playlists (plus the parts of the one in progress). */
  windowSegments: s.optional(s.number({ integer: true, min: 3, max: 1000 })),
  /** Advertise CAN-SKIP-UNTIL and answer `_HLS_skip` with delta updates. */
  deltaUpdates: s.default(s.boolean(), false),
  /**
   * When a segment pushed as parts closes: "duration" once its parts reach
   * targetSegmentDurationMs (fixed-length sources such as understudy source),
   * "next-segment" when the next segment starts (variable-length encoders).
   */
  segmentClose: s.default(s.literal("duration", "next-segment"), "duration" as const),
  renditions: s.array(renditionSchema, { minItems: 1, maxItems: 16 }),
});

export const packagerConfigSchema = s.object({
  /** Component id; sent in CMSD `n` and reported in /status. */
  nodeId: s.string({
    pattern: /^[A-Za-z0-9._-]{1,64}$/,
    hint: "a node id (1–64 chars of [A-Za-z0-9._-])",
  }),
  mode: s.literal("origin", "edge"),
  /** HTTP listener for ingest (origin), playback, /status, /metrics, /healthz. */
  listen: s.hostPort({ allowZeroPort: true }),
  /** gRPC listener for PackagerService (optional; absent = no control plane). */
  control: s.optional(s.hostPort({ allowZeroPort: true })),
  /**
   * Bearer tokens accepted on `control`, as SHA-256 digests (the coordinators
   * send theirs from packagerControl.tokenFile). Absent: the control port is
   * unauthenticated (a warning at start).
   */
  controlAuth: s.optional(
    s.object({
      tokens: s.default(tokenEntriesSchema(packagerControlRoles), []),
      /** More tokens in a YAML file (`tokens: [...]`), re-read when it changes. */
      tokensFile: s.optional(s.string({ minLength: 1, hint: "a tokens file path" })),
    }),
  ),
  storage: s.default(
    s.object({
      /** Bytes held for segments that left the live window (the window itself is always held). */
      cacheBytesMax: s.default(s.number({ integer: true, min: 1 << 20 }), 256 * 1024 * 1024),
      /** Persist closed segments here (temp file + rename) and reload the window on start. */
      diskDir: s.optional(s.string({ minLength: 1 })),
      /** Closed segments kept on disk per rendition. */
      diskRetainSegments: s.default(s.number({ integer: true, min: 1, max: 100_000 }), 300),
      /** Disk writes waiting at once; more are dropped (counted in /metrics). */
      diskQueueMax: s.default(s.number({ integer: true, min: 1, max: 10_000 }), 256),
    }),
    {
      cacheBytesMax: 256 * 1024 * 1024,
      diskRetainSegments: 300,
      diskQueueMax: 256,
    },
  ),
  ingest: s.default(
    s.object({
      partBytesMax: s.default(s.number({ integer: true, min: 1024 }), 2 * 1024 * 1024),
      segmentBytesMax: s.default(s.number({ integer: true, min: 1024 }), 16 * 1024 * 1024),
      playlistBytesMax: s.default(s.number({ integer: true, min: 1024 }), 256 * 1024),
      /** Bearer tokens accepted on /ingest; absent = no authentication. */
      tokens: s.optional(
        s.array(s.string({ minLength: 16, hint: "a token of 16+ chars" }), { minItems: 1 }),
      ),
      /** A request body must arrive within this time. */
      requestTimeoutMs: s.default(s.number({ integer: true, min: 100, max: 600_000 }), 30_000),
      /** Segments pushed under names other than {msn}.m4s (ffmpeg) wait for the pushed playlist; at most this many per rendition. */
      pendingObjectsMax: s.default(s.number({ integer: true, min: 1, max: 1000 }), 16),
    }),
    {
      partBytesMax: 2 * 1024 * 1024,
      segmentBytesMax: 16 * 1024 * 1024,
      playlistBytesMax: 256 * 1024,
      requestTimeoutMs: 30_000,
      pendingObjectsMax: 16,
    },
  ),
  playback: s.default(
    s.object({
      windowSegments: s.default(s.number({ integer: true, min: 3, max: 1000 }), 6),
      /** Blocking playlist reloads and held part requests waiting at once; more get 503. */
      blockingRequestsMax: s.default(s.number({ integer: true, min: 1, max: 1_000_000 }), 10_000),
      /** CMCD sessions remembered (LRU). */
      sessionsMax: s.default(s.number({ integer: true, min: 1, max: 10_000_000 }), 100_000),
      /** A session not heard from for this long no longer counts as demand. */
      sessionIdleMs: s.default(s.number({ integer: true, min: 1000 }), 30_000),
    }),
    { windowSegments: 6, blockingRequestsMax: 10_000, sessionsMax: 100_000, sessionIdleMs: 30_000 },
  ),
  /** Statically configured streams (standalone use); the coordinator adds more with Assign. */
  streams: s.default(s.array(streamSchema, { maxItems: 1000 }), []),
  edge: s.optional(
    s.object({
      /** Origin base URLs in priority order, e.g. "http://10.0.0.5:8080". */
      origins: s.array(
        s.string({
          pattern: /^https?:\/\/[^/\s]+\/?$/,
          hint: "an origin base URL http(s)://host:port",
        }),
        {
          minItems: 1,
          maxItems: 16,
        },
      ),
      /** After serving a media playlist, prefetch this many of its newest parts/segments (0 = off). */
      prefetchDepth: s.default(s.number({ integer: true, min: 0, max: 32 }), 3),
      prefetchConcurrencyMax: s.default(s.number({ integer: true, min: 1, max: 256 }), 8),
      /** Upstream timeout for ordinary requests. */
      upstreamTimeoutMs: s.default(s.number({ integer: true, min: 50, max: 120_000 }), 3000),
      /** Upstream timeout for blocking playlist reloads (must exceed the origin's hold, 3 × target duration). */
      blockingTimeoutMs: s.default(s.number({ integer: true, min: 100, max: 120_000 }), 35_000),
      /** Fresh time of a non-blocking playlist; after it, the stale copy is served while one refetch runs. */
      playlistTtlMs: s.default(s.number({ integer: true, min: 0, max: 60_000 }), 250),
      /** Fresh time of segments, parts and init segments. */
      mediaTtlMs: s.default(s.number({ integer: true, min: 1000 }), 300_000),
      /** First backoff of a failing origin; doubles per consecutive failure up to the max. */
      originBackoffMs: s.default(s.number({ integer: true, min: 10, max: 600_000 }), 500),
      originBackoffMaxMs: s.default(s.number({ integer: true, min: 10, max: 600_000 }), 10_000),
    }),
  ),
  /** Log level; absent = UNDERSTUDY_LOG_LEVEL, else info. */
  log: s.default(s.object({ level: s.optional(s.literal("debug", "info", "warn", "error")) }), {}),
});

export type PackagerConfig = Infer<typeof packagerConfigSchema>;
export type StreamConfig = PackagerConfig["streams"][number];
export type RenditionConfig = StreamConfig["renditions"][number];
export type EdgeConfig = NonNullable<PackagerConfig["edge"]>;

/** Cross-field rules the schema cannot express; throws ConfigError naming the field. */
function checkConfig(c: PackagerConfig): PackagerConfig {
  if (c.mode === "edge" && !c.edge) {
    throw new ConfigError(
      "edge",
      "is required in edge mode (edge.origins lists the origins to proxy)",
    );
  }
  if (c.mode === "origin" && c.edge) {
    throw new ConfigError("edge", 'is only allowed with mode: "edge"');
  }
  if (c.controlAuth) {
    if (!c.control) throw new ConfigError("controlAuth", "needs control (the port it protects)");
    if (c.controlAuth.tokens.length === 0 && !c.controlAuth.tokensFile) {
      throw new ConfigError(
        "controlAuth",
        "lists no tokens: set controlAuth.tokens or controlAuth.tokensFile (or remove controlAuth)",
      );
    }
    if (c.controlAuth.tokensFile) {
      try {
        loadTokensFile(c.controlAuth.tokensFile, packagerControlRoles);
      } catch (err) {
        if (err instanceof ConfigError)
          throw new ConfigError("controlAuth.tokensFile", err.message);
        throw err;
      }
    }
  }
  if (c.ingest.partBytesMax > c.ingest.segmentBytesMax) {
    throw new ConfigError("ingest.partBytesMax", "must not exceed ingest.segmentBytesMax");
  }
  const ids = new Set<string>();
  c.streams.forEach((st, i) => {
    if (ids.has(st.id)) throw new ConfigError(`streams[${i}].id`, `duplicate stream id "${st.id}"`);
    ids.add(st.id);
    checkStream(st, `streams[${i}]`);
  });
  if (c.edge && c.edge.originBackoffMs > c.edge.originBackoffMaxMs) {
    throw new ConfigError("edge.originBackoffMs", "must not exceed edge.originBackoffMaxMs");
  }
  return c;
}

export function checkStream(st: StreamConfig, path: string): void {
  if (st.latency === "low" && st.targetPartDurationMs * 2 > st.targetSegmentDurationMs) {
    throw new ConfigError(
      `${path}.targetPartDurationMs`,
      `must be at most half of targetSegmentDurationMs (${st.targetSegmentDurationMs})`,
    );
  }
  const rids = new Set<string>();
  st.renditions.forEach((r, j) => {
    if (rids.has(r.id))
      throw new ConfigError(`${path}.renditions[${j}].id`, `duplicate rendition id "${r.id}"`);
    rids.add(r.id);
  });
}

export function parsePackagerConfig(value: unknown, file?: string): PackagerConfig {
  const c = parseConfig(packagerConfigSchema, value, file);
  try {
    return checkConfig(c);
  } catch (err) {
    if (err instanceof ConfigError && file) throw new ConfigError(err.field, err.problem, file);
    throw err;
  }
}

export function loadPackagerConfig(file: string): PackagerConfig {
  const c = loadConfigFile(packagerConfigSchema, file);
  try {
    return checkConfig(c);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.field, err.problem, file);
    throw err;
  }
}
