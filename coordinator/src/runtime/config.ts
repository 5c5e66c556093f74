/**
 * `understudy coordinator --config FILE`: the node's YAML config, validated at
 * start; a bad field exits non-zero naming it. Defaults give a 50 ms
 * heartbeat and an election timeout randomized in 300–600 ms.
 */
import { ConfigError, type Infer, loadConfigFile, s } from "../../../common/config.ts";
import { loadTokensFile, tokenEntriesSchema, tokenFilePathHint } from "../../../common/rpc-auth.ts";
import { defaultGranularityOptions, validateGranularityOptions } from "../plan/index.ts";
import { DEFAULT_MODEL_FILE, ModelFileError, readModelFile } from "../predict/index.ts";

const idPattern = /^[a-z0-9][a-z0-9-]{0,63}$/;

/**
 * Roles a coordinator token may carry (the per-method table is in auth.ts and
 * coordinator/README.md): admin may call everything; reader the reads;
 * agent AgentService.Connect; encoder what sources call; peer the Raft port.
 */
export const coordinatorRoles = ["admin", "reader", "agent", "encoder", "peer"] as const;
const tokenFile = () => s.string({ minLength: 1, hint: tokenFilePathHint });
const nodeId = () => s.string({ pattern: idPattern, hint: "a node id (1–64 chars of [a-z0-9-])" });

export const coordinatorConfigSchema = s.object({
  /** This node's id; stable for its life, never reused. */
  nodeId: nodeId(),
  /** Where the Raft log, hard state and snapshots live (created if missing). */
  dataDir: s.string({ minLength: 1, hint: "a directory path" }),
  /** RaftService listener for peers (gRPC over HTTP/2). */
  peerListen: s.hostPort({ allowZeroPort: true }),
  /** Client/API listener: integrator API, AgentService, health, reflection, /metrics. */
  apiListen: s.hostPort({ allowZeroPort: true }),
  /** Address peers should use to reach this node's peer listener (default: peerListen). */
  peerAdvertise: s.optional(s.hostPort()),
  /** Address clients should be redirected to (default: apiListen). */
  apiAdvertise: s.optional(s.hostPort()),
  /**
   * Initial members of a NEW cluster (including this node). Used only when the
   * data directory holds no state; ignored afterwards. Omit it on a node that
   * joins an existing cluster (see `join`).
   */
  bootstrap: s.optional(
    s.array(s.object({ id: nodeId(), peerAddress: s.hostPort(), apiAddress: s.hostPort() }), {
      minItems: 1,
      maxItems: 7,
    }),
  ),
  /**
   * Start with empty state and wait for an existing cluster to add this node
   * (ClusterService.AddMember on the leader). Mutually exclusive with bootstrap.
   */
  join: s.default(s.boolean(), false),
  /** Peers to contact before membership is known (address book hints). */
  peers: s.default(
    s.array(s.object({ id: nodeId(), peerAddress: s.hostPort(), apiAddress: s.hostPort() })),
    [],
  ),
  raft: s.default(
    s.object({
      /** One logical tick. Heartbeats every heartbeatTicks, elections after electionTicks..2×electionTicks. */
      tickMs: s.default(s.number({ min: 5, max: 1000, integer: true }), 50),
      heartbeatTicks: s.default(s.number({ min: 1, max: 100, integer: true }), 1),
      electionTicks: s.default(s.number({ min: 3, max: 1000, integer: true }), 6),
      preVote: s.default(s.boolean(), true),
      checkQuorum: s.default(s.boolean(), true),
      maxSizePerMsgBytes: s.default(
        s.number({ min: 1024, max: 64 * 1024 * 1024, integer: true }),
        1024 * 1024,
      ),
      maxInflightMsgs: s.default(s.number({ min: 1, max: 4096, integer: true }), 256),
      maxUncommittedEntriesBytes: s.default(
        s.number({ min: 1024, max: 1024 * 1024 * 1024, integer: true }),
        64 * 1024 * 1024,
      ),
      /** Take a snapshot and compact the log after this many applied entries. */
      snapshotEntries: s.default(s.number({ min: 10, max: 10_000_000, integer: true }), 10_000),
      /** Peer RPC deadline. */
      rpcTimeoutMs: s.default(s.number({ min: 10, max: 60_000, integer: true }), 1000),
      /**
       * The cluster's peer token (one token, file mode 0600): sent on every
       * Raft RPC to the other members and required on this node's peer port
       * (tokens in auth with role peer are accepted too, for rotation).
       */
      peerTokenFile: s.optional(tokenFile()),
    }),
    {
      tickMs: 50,
      heartbeatTicks: 1,
      electionTicks: 6,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsgBytes: 1024 * 1024,
      maxInflightMsgs: 256,
      maxUncommittedEntriesBytes: 64 * 1024 * 1024,
      snapshotEntries: 10_000,
      rpcTimeoutMs: 1000,
    },
  ),
  api: s.default(
    s.object({
      /** Largest accepted request message. */
      readMaxBytes: s.default(
        s.number({ min: 1024, max: 64 * 1024 * 1024, integer: true }),
        4 * 1024 * 1024,
      ),
      /** Default deadline for a write to commit. */
      proposeTimeoutMs: s.default(s.number({ min: 10, max: 60_000, integer: true }), 5000),
    }),
    { readMaxBytes: 4 * 1024 * 1024, proposeTimeoutMs: 5000 },
  ),
  /**
   * Bearer tokens accepted on the API port, as SHA-256 digests with a name and
   * roles. Absent: the API is unauthenticated (a warning at start).
   */
  auth: s.optional(
    s.object({
      tokens: s.default(tokenEntriesSchema(coordinatorRoles), []),
      /** More tokens in a YAML file (`tokens: [...]`), re-read when it changes. */
      tokensFile: s.optional(s.string({ minLength: 1, hint: "a tokens file path" })),
    }),
  ),
  /** The token this node sends to the packagers' control ports (PackagerService). */
  packagerControl: s.optional(s.object({ tokenFile: tokenFile() })),
  /**
   * NATS for handover notices (understudy.v1.handover.<stream>). Optional: without
   * it clients still get notices from HandoverService (Watch / GetLatestNotice).
   */
  nats: s.optional(
    s.object({
      servers: s.array(
        s.string({ pattern: /^(nats|tls):\/\/[^\s]+$/, hint: 'a URL "nats://host:port"' }),
        { minItems: 1 },
      ),
      user: s.optional(s.string()),
      pass: s.optional(s.string()),
      token: s.optional(s.string()),
      /** NATS decentralized-auth credentials file. */
      credsFile: s.optional(s.string({ minLength: 1 })),
    }),
  ),
  predict: s.default(
    s.object({
      /** Predict failures and hand over before they happen (off = reactive only). */
      enabled: s.default(s.boolean(), true),
      /** Horizon H of "fails within H". */
      horizonMs: s.default(s.number({ min: 5000, max: 600_000, integer: true }), 30_000),
      /** Scoring period. */
      intervalMs: s.default(s.number({ min: 100, max: 60_000, integer: true }), 1000),
      /**
       * Model to start from: a file written by `understudy predict train`
       * (default: the model shipped with this build; a relative path is from
       * the working directory, like dataDir). A model committed through Raft
       * later replaces it.
       */
      modelFile: s.optional(
        s.string({ minLength: 1, hint: "a model file written by `understudy predict train`" }),
      ),
    }),
    { enabled: true, horizonMs: 30_000, intervalMs: 1000 },
  ),
  placement: s.default(
    s.object({
      /** Plan and commit assignments and shard maps, and push them to packagers. */
      automatic: s.default(s.boolean(), true),
      /** Period of a planning round. */
      intervalMs: s.default(s.number({ min: 50, max: 60_000, integer: true }), 1000),
      /**
       * Segment granularity (coordinator/README.md, "Segment granularity"):
       * viewer-session thresholds with hysteresis, the dwell between two
       * changes of a stream, and how far ahead a change is committed.
       */
      granularity: s.default(
        s.object({
          /** A LOW_LATENCY stream at or below this many sessions takes the shortest duration. */
          lowSessionsEnter: s.default(
            s.number({ min: 0, integer: true }),
            defaultGranularityOptions.lowSessionsEnter,
          ),
          /** ...and leaves it above this many (>= lowSessionsEnter). */
          lowSessionsExit: s.default(
            s.number({ min: 0, integer: true }),
            defaultGranularityOptions.lowSessionsExit,
          ),
          /** A stream at the longest duration leaves it below this many (> lowSessionsExit). */
          highSessionsExit: s.default(
            s.number({ min: 1, integer: true }),
            defaultGranularityOptions.highSessionsExit,
          ),
          /** At or above this many sessions the longest duration (>= highSessionsExit). */
          highSessionsEnter: s.default(
            s.number({ min: 1, integer: true }),
            defaultGranularityOptions.highSessionsEnter,
          ),
          /** Segments that must pass after a change before the next one. */
          minSegmentsBetweenChanges: s.default(
            s.number({ min: 0, max: 1_000_000, integer: true }),
            defaultGranularityOptions.minSegmentsBetweenChanges,
          ),
          /** A change lands at the first segment boundary at least this far ahead. */
          changeLeadMs: s.default(
            s.number({ min: 0, max: 60_000, integer: true }),
            defaultGranularityOptions.changeLeadMs,
          ),
        }),
        { ...defaultGranularityOptions },
      ),
    }),
    {
      automatic: true,
      intervalMs: 1000,
      granularity: { ...defaultGranularityOptions },
    },
  ),
  handover: s.default(
    s.object({
      /** Deadline of each handover step (prepare, pre-stitch, notify, switch). */
      stepDeadlineMs: s.default(s.number({ min: 100, max: 600_000, integer: true }), 10_000),
      /** Deadline of a whole handover; past it the handover aborts. */
      handoverDeadlineMs: s.default(s.number({ min: 1000, max: 3_600_000, integer: true }), 60_000),
      /** Segments copied to the standby (with SHA-256 verification) before the switch. */
      replicateLastN: s.default(s.number({ min: 1, max: 100, integer: true }), 3),
      /** How many segments past the live edge clients switch (time for the notice to spread). */
      switchAheadSegments: s.default(s.number({ min: 1, max: 20, integer: true }), 2),
      /** Service name agents allowlist for starting a standby packager. */
      standbyServiceName: s.default(s.string({ minLength: 1 }), "packager"),
      /** Drive handovers automatically (predictions, failures, drains, operator requests). */
      automatic: s.default(s.boolean(), true),
    }),
    {
      automatic: true,
      stepDeadlineMs: 10_000,
      handoverDeadlineMs: 60_000,
      replicateLastN: 3,
      switchAheadSegments: 2,
      standbyServiceName: "packager",
    },
  ),
  log: s.default(
    s.object({ level: s.default(s.literal("debug", "info", "warn", "error"), "info") }),
    { level: "info" as const },
  ),
  /** Seed for election-timeout randomness (default: from the OS). Tests set it. */
  seed: s.optional(s.number({ integer: true })),
});

export type CoordinatorConfig = Infer<typeof coordinatorConfigSchema>;

export function loadCoordinatorConfig(file: string): CoordinatorConfig {
  const cfg = loadConfigFile(coordinatorConfigSchema, file);
  validateCoordinatorConfig(cfg, file);
  return cfg;
}

/** Cross-field rules the schema cannot express. */
export function validateCoordinatorConfig(cfg: CoordinatorConfig, file?: string): void {
  if (cfg.bootstrap && cfg.join) {
    throw new ConfigError("join", "cannot be true together with bootstrap (pick one)", file);
  }
  if (cfg.bootstrap && !cfg.bootstrap.some((m) => m.id === cfg.nodeId)) {
    throw new ConfigError("bootstrap", `must include this node ("${cfg.nodeId}")`, file);
  }
  const ids = new Set<string>();
  for (const [i, m] of (cfg.bootstrap ?? []).entries()) {
    if (ids.has(m.id))
      throw new ConfigError(`bootstrap[${i}].id`, `duplicate member id "${m.id}"`, file);
    ids.add(m.id);
  }
  if (cfg.predict.enabled) validatePredictModel(cfg, file);
  validateAuthFiles(cfg, file);
  try {
    validateGranularityOptions(cfg.placement.granularity);
  } catch (err) {
    // "highSessionsExit: must be an integer in 51..." names the field.
    const [field, ...rest] = (err as Error).message.split(": ");
    throw new ConfigError(`placement.granularity.${field}`, rest.join(": "), file);
  }
}

/**
 * Accepted tokens are complete and the tokens file parses, so `--check`
 * catches them. The token files this node sends from are secrets read at
 * start (exit 2 naming the file when one is unusable): under systemd they
 * come from LoadCredential=, which `--check` outside the unit cannot see.
 */
function validateAuthFiles(cfg: CoordinatorConfig, file?: string): void {
  if (!cfg.auth) return;
  if (cfg.auth.tokens.length === 0 && !cfg.auth.tokensFile) {
    throw new ConfigError(
      "auth",
      "lists no tokens: set auth.tokens or auth.tokensFile (or remove auth to run without authentication)",
      file,
    );
  }
  if (cfg.auth.tokensFile) {
    try {
      loadTokensFile(cfg.auth.tokensFile, coordinatorRoles);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError("auth.tokensFile", err.message, file);
      throw err;
    }
  }
}

/** The start-up model must load and predict over the configured horizon. */
function validatePredictModel(cfg: CoordinatorConfig, file?: string): void {
  const path = cfg.predict.modelFile ?? DEFAULT_MODEL_FILE;
  let horizonMs: number;
  try {
    horizonMs = readModelFile(path).horizonMs;
  } catch (e) {
    if (e instanceof ModelFileError) throw new ConfigError("predict.modelFile", e.message, file);
    throw e;
  }
  if (horizonMs !== cfg.predict.horizonMs) {
    throw new ConfigError(
      "predict.horizonMs",
      `is ${cfg.predict.horizonMs} but the model (${path}) predicts failures within ${horizonMs} ms; ` +
        "set horizonMs to that or train a model for this horizon",
      file,
    );
  }
}
