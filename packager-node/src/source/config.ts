/**
 * `understudy source --config FILE`: YAML config, validated before anything
 * starts. Example (static pool of 2, this is encoder 0):
 *
 *   streamId: demo
 *   encoderId: enc-0
 *   timelineOriginMs: 1767225600000   # same value on every encoder and restart
 *   pool: { index: 0, size: 2, unit: segment }
 *   targets: [http://127.0.0.1:8081, http://127.0.0.1:8082]
 *   status: { listen: 127.0.0.1:9100 }
 *
 * or, instead of pool/targets, a coordinator shard map:
 *
 *   shardMap:
 *     epoch: 3
 *     ranges:
 *       - { firstShard: 0, lastShard: 999, encoderId: enc-0, replicaTargets: [http://127.0.0.1:8081] }
 *       - { firstShard: 1000, encoderId: enc-1, replicaTargets: [http://127.0.0.1:8082] }
 */
import { dirname, resolve } from "node:path";
import { ConfigError, type Infer, loadConfigFile, s } from "../../../common/config.ts";
import { tokenFilePathHint } from "../../../common/rpc-auth.ts";
import { defaultPushLimits } from "./pusher.ts";
import {
  type Assignment,
  checkShardMap,
  replicaTargetsMax,
  shardMapSchema,
  staticPoolSchema,
  targetUrlSchema,
} from "./shard-map.ts";

const idPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const idHint = "an id of 1-64 letters, digits, '_', '.', '-'";
const ms = (min: number, max: number) => s.number({ integer: true, min, max });

const pushSchema = s.object({
  requestTimeoutMs: s.default(ms(50, 60_000), defaultPushLimits.requestTimeoutMs),
  queueItemsMax: s.default(ms(1, 10_000), defaultPushLimits.queueItemsMax),
  queueBytesMax: s.default(ms(1024, 1024 ** 3), defaultPushLimits.queueBytesMax),
  attemptsMax: s.default(ms(1, 100), defaultPushLimits.attemptsMax),
  backoffBaseMs: s.default(ms(1, 60_000), defaultPushLimits.backoffBaseMs),
  backoffMaxMs: s.default(ms(1, 300_000), defaultPushLimits.backoffMaxMs),
  maxAgeMs: s.default(ms(100, 600_000), defaultPushLimits.maxAgeMs),
});

export const sourceConfigSchema = s.object({
  streamId: s.string({ pattern: idPattern, hint: idHint }),
  encoderId: s.string({ pattern: idPattern, hint: idHint }),
  /** Fixture directory (manifest.json + renditions); relative to the config file. Default: the committed ladder. */
  fixtureDir: s.optional(s.string({ minLength: 1 })),
  /** Subset of the fixture's rendition ids to produce (default: all). */
  renditions: s.optional(s.array(s.string({ pattern: idPattern, hint: idHint }), { minItems: 1 })),
  /** Wall-clock ms of media time 0 (shard 0). Every encoder of the pool and every restart must agree. */
  /** Required unless `coordinator` is set (then the stream's replicated origin is used). */
  timelineOriginMs: s.optional(s.number({ integer: true, min: 0, max: 8.64e15 })),
  /**
   * Follow the coordinator: timeline origin and shard map come from the
   * stream's chain graph (ChainService.WatchChain); pool/targets/shardMap are
   * then not allowed.
   */
  coordinator: s.optional(
    s.object({
      addresses: s.array(s.hostPort(), { minItems: 1, maxItems: 16 }),
      /** Bearer token for the coordinators (role encoder), one token in a 0600 file. */
      tokenFile: s.optional(s.string({ minLength: 1, hint: tokenFilePathHint })),
    }),
  ),
  pool: s.optional(staticPoolSchema),
  targets: s.optional(s.array(targetUrlSchema, { minItems: 1, maxItems: replicaTargetsMax })),
  /** X-Understudy-Epoch sent with a static pool (shard maps carry their own). */
  epoch: s.default(s.number({ integer: true, min: 1, max: Number.MAX_SAFE_INTEGER }), 1),
  shardMap: s.optional(shardMapSchema),
  segmentPush: s.default(s.literal("last-shard-owner", "never"), "last-shard-owner"),
  authToken: s.optional(s.string({ minLength: 1 })),
  push: s.default(pushSchema, pushSchema.parse({}, "push")),
  catchUpShardsMax: s.default(s.number({ integer: true, min: 0, max: 1000 }), 4),
  /**
   * How many shards before the one in progress a new shard map may hand this
   * encoder to produce at once (taking over from a lost encoder; see
   * source.ts). 0 = never produce past shards.
   */
  takeoverShardsMax: s.default(s.number({ integer: true, min: 0, max: 1000 }), 16),
  status: s.optional(s.object({ listen: s.hostPort({ allowZeroPort: true }) })),
  logLevel: s.optional(s.literal("debug", "info", "warn", "error")),
});

export type SourceFileConfig = Infer<typeof sourceConfigSchema>;

export interface SourceConfig
  extends Omit<SourceFileConfig, "pool" | "targets" | "shardMap" | "epoch"> {
  /** Undefined when following the coordinator (it comes from the chain graph). */
  readonly assignment: Assignment | undefined;
  /** Absolute, or undefined for the committed ladder. */
  readonly fixtureDir: string | undefined;
}

/** Cross-field checks and normalisation; throws ConfigError naming the field. */
export function resolveSourceConfig(raw: SourceFileConfig, file?: string): SourceConfig {
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(field, problem, file);
  };
  let assignment: Assignment | undefined;
  if (raw.coordinator) {
    for (const f of ["pool", "targets", "shardMap"] as const) {
      if (raw[f] !== undefined)
        fail(f, "not allowed with coordinator (the coordinator's shard map decides)");
    }
    assignment = undefined;
  } else if (raw.shardMap) {
    if (raw.pool)
      fail("pool", "not allowed together with shardMap (choose one way to assign shards)");
    if (raw.targets)
      fail("targets", "not allowed with shardMap (ranges carry their replicaTargets)");
    try {
      assignment = { kind: "map", map: checkShardMap(raw.shardMap, "shardMap") };
    } catch (err) {
      if (err instanceof ConfigError) fail(err.field, err.problem);
      throw err;
    }
  } else {
    const pool =
      raw.pool ?? fail("pool", "is required unless shardMap is given ({index, size, unit})");
    const targets = raw.targets ?? fail("targets", "is required with pool (packager base URLs)");
    if (pool.index >= pool.size)
      fail("pool.index", `must be < pool.size (${pool.size}), got ${pool.index}`);
    assignment = {
      kind: "static",
      epoch: raw.epoch,
      pool,
      targets: targets.map((t) => t.replace(/\/+$/, "")),
    };
  }
  if (!raw.coordinator && raw.timelineOriginMs === undefined) {
    fail("timelineOriginMs", "is required unless coordinator is set");
  }
  if (raw.push.backoffMaxMs < raw.push.backoffBaseMs) {
    fail("push.backoffMaxMs", `must be >= push.backoffBaseMs (${raw.push.backoffBaseMs})`);
  }
  const { pool: _p, targets: _t, shardMap: _m, epoch: _e, ...rest } = raw;
  return {
    ...rest,
    assignment,
    fixtureDir:
      raw.fixtureDir === undefined
        ? undefined
        : resolve(file ? dirname(file) : ".", raw.fixtureDir),
  };
}

export function loadSourceConfig(file: string): SourceConfig {
  return resolveSourceConfig(loadConfigFile(sourceConfigSchema, file), file);
}
