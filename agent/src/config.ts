/**
 * `understudy agent --config FILE`: the agent's YAML config. Every field is
 * validated at start; an error names the dotted field path (exit code 2), and
 * unknown fields are errors, so a typo never falls back to a default.
 *
 * Security contract: the only services the agent can ever start or stop are
 * the ones listed under `services` here. A coordinator directive names a
 * service; it never carries a unit name or a command line.
 */
import { hostname } from "node:os";
import { isAbsolute } from "node:path";
import {
  ConfigError,
  type Infer,
  loadConfigFile,
  parseConfig,
  type Schema,
  s,
} from "../../common/config.ts";

const idPattern = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** Directive.service vocabulary (proto): a plain name or a unit name. */
const serviceNamePattern = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,255}$/;
const labelValuePattern = /^[a-z0-9-]{0,64}$/;
const labelKeyPattern = /^[a-z0-9_./-]{1,63}$/;
/** systemd unit names: a name plus a unit type suffix; no path separators, no leading dash. */
const unitPattern =
  /^[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,239}\.(service|socket|target|timer|path|scope)$/;

export const agentRoles = ["encoder", "packager", "origin", "edge", "ingest"] as const;
export type AgentRole = (typeof agentRoles)[number];

/** Bounds of SET_SAMPLING_INTERVAL and of `sampling.intervalMs`. */
export const samplingIntervalMsMin = 100;
export const samplingIntervalMsMax = 60_000;

/**
 * Default buffer: a typical report (about 45 samples with units and labels) is
 * ~1.6 KB encoded, so 4 MiB holds ~40 minutes at 1 Hz, comfortably over the
 * 10 minutes a leader change or coordinator restart could take.
 */
export const defaultBufferBytesMax = 4 * 1024 * 1024;

/** A mapping that may be left out entirely: absent parses as {} (every field then takes its default). */
function section<T>(inner: Schema<T>): Schema<T> {
  return {
    expected: inner.expected,
    optional: true,
    parse: (v, path) => inner.parse(v ?? {}, path),
  };
}

const labelsSchema = s.object({
  region: s.default(s.string({ pattern: labelValuePattern, hint: "0–64 chars of [a-z0-9-]" }), ""),
  zone: s.default(s.string({ pattern: labelValuePattern, hint: "0–64 chars of [a-z0-9-]" }), ""),
  rack: s.default(s.string({ pattern: labelValuePattern, hint: "0–64 chars of [a-z0-9-]" }), ""),
  extra: s.default(s.record(s.string({ pattern: /^.{0,256}$/s, hint: "0–256 chars" })), {}),
});

const capacitySchema = s.object({
  cpuCores: s.default(s.number({ min: 0, max: 4096 }), 0),
  memoryBytes: s.default(s.number({ min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }), 0),
  egressBps: s.default(s.number({ min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }), 0),
  maxStreams: s.default(s.number({ min: 0, max: 100_000, integer: true }), 0),
  maxSessions: s.default(s.number({ min: 0, max: 100_000_000, integer: true }), 0),
});

const componentSchema = s.object({
  id: s.string({
    pattern: idPattern,
    hint: "an id: 1–64 chars of [a-z0-9-], starting with a letter or digit",
  }),
  role: s.literal(...agentRoles),
  host: s.optional(
    s.string({ pattern: /^[^\s]{1,253}$/, hint: "a host name or IP (1–253 chars)" }),
  ),
  labels: section(labelsSchema),
  capacity: section(capacitySchema),
  baseUrl: s.default(
    s.string({
      pattern: /^https?:\/\/[^\s?#]+[^/\s?#]$/,
      hint: "an absolute http(s) URL without query or trailing slash",
    }),
    "",
  ),
  controlAddress: s.default(s.hostPort(), ""),
});

const coordinatorSchema = s.object({
  /** Every coordinator node; the agent tries them in order and follows redirects to the leader. */
  addresses: s.array(s.hostPort(), { minItems: 1, maxItems: 16 }),
  /**
   * HTTP/2 PING period on the open stream; a leader that hangs or drops off
   * the network (no TCP error ever arrives) is noticed within
   * keepaliveIntervalMs + keepaliveTimeoutMs, and that bounds how soon this
   * agent re-streams to the new leader. The defaults (at most 2.5 s) re-stream
   * well before the new leader's failure detector (3 s of grace after its
   * election, then about 1 s of silence) would mark the component down. A
   * leader whose event loop stalls past the timeout has lost its Raft
   * leadership long before (election timeout 300–600 ms).
   */
  keepaliveIntervalMs: s.default(s.number({ min: 1000, max: 300_000, integer: true }), 1000),
  keepaliveTimeoutMs: s.default(s.number({ min: 500, max: 60_000, integer: true }), 1500),
  backoffInitialMs: s.default(s.number({ min: 10, max: 60_000, integer: true }), 200),
  backoffMaxMs: s.default(s.number({ min: 100, max: 300_000, integer: true }), 10_000),
  /** A report not acknowledged within this long counts as lost for probe.loss_ratio. */
  ackTimeoutMs: s.default(s.number({ min: 100, max: 60_000, integer: true }), 5000),
  /**
   * Bearer token sent on AgentService.Connect (a coordinator token with role
   * agent), one token in a file not readable by group or others.
   */
  tokenFile: s.optional(
    s.string({
      pattern: /^(\/|\$\{?CREDENTIALS_DIRECTORY\}?\/)\S+$/,
      hint: "an absolute path, or $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=)",
    }),
  ),
  /** No Welcome within this long after Hello: the stream is abandoned and retried. */
  helloTimeoutMs: s.default(s.number({ min: 100, max: 60_000, integer: true }), 5000),
  /** At most this many buffered reports are written per replay burst before yielding. */
  replayBatchMax: s.default(s.number({ min: 1, max: 10_000, integer: true }), 256),
});

const samplingSchema = s.object({
  intervalMs: s.default(
    s.number({ min: samplingIntervalMsMin, max: samplingIntervalMsMax, integer: true }),
    1000,
  ),
  /** Heartbeats are reports without samples; must not be longer than intervalMs. */
  heartbeatIntervalMs: s.default(s.number({ min: 50, max: 60_000, integer: true }), 250),
  /** Where host metrics come from: direct procfs reads (Linux, cheapest) or systeminformation calls. */
  source: s.default(s.literal("procfs", "systeminformation"), defaultSource()),
  /** Mount points reported as fs.used_ratio / fs.free_bytes (label `mount`). */
  filesystems: s.default(
    s.array(s.string({ pattern: /^\//, hint: "an absolute mount point" }), {
      minItems: 0,
      maxItems: 16,
    }),
    ["/"],
  ),
  /** Interfaces summed into net.*; empty = every interface except loopback. */
  interfaces: s.default(
    s.array(s.string({ pattern: /^[A-Za-z0-9_.:@-]{1,15}$/, hint: "an interface name" }), {
      maxItems: 64,
    }),
    [],
  ),
});

const httpProbeSchema = s.object({
  name: s.string({ pattern: idPattern, hint: "an id: 1–64 chars of [a-z0-9-]" }),
  url: s.string({ pattern: /^https?:\/\/\S+$/, hint: "an absolute http(s) URL" }),
  expectedStatus: s.default(s.number({ min: 100, max: 599, integer: true }), 200),
  timeoutMs: s.default(s.number({ min: 10, max: 60_000, integer: true }), 2000),
  /** probe.loss_ratio is the failed share of this many latest attempts. */
  lossWindow: s.default(s.number({ min: 1, max: 1000, integer: true }), 20),
});

const probesSchema = s.object({
  /** packager-node `/status` JSON URL (packager, origin and edge roles). */
  packagerStatusUrl: s.optional(
    s.string({ pattern: /^https?:\/\/\S+$/, hint: "an absolute http(s) URL" }),
  ),
  packagerStatusTimeoutMs: s.default(s.number({ min: 10, max: 60_000, integer: true }), 1000),
  /** File ffmpeg writes with `-progress FILE` (key=value blocks ending in progress=continue|end). */
  encoderProgressFile: s.optional(s.string({ pattern: /^\//, hint: "an absolute path" })),
  /** Progress older than this is stale: encoder.* samples are then not reported. */
  encoderProgressStaleMs: s.default(s.number({ min: 100, max: 600_000, integer: true }), 5000),
  http: s.default(s.array(httpProbeSchema, { maxItems: 32 }), []),
});

const watchSchema = s.object({
  pid: s.optional(s.number({ min: 1, max: 2 ** 22, integer: true })),
  pidfile: s.optional(s.string({ pattern: /^\//, hint: "an absolute path" })),
  unit: s.optional(
    s.string({ pattern: unitPattern, hint: 'a systemd unit name like "x.service"' }),
  ),
});

const serviceSchema = s.object({
  /** A systemd unit: started/stopped with `systemctl start|stop UNIT`. */
  unit: s.optional(
    s.string({ pattern: unitPattern, hint: 'a systemd unit name like "x.service"' }),
  ),
  /** An exact command line, spawned detached (argv[0] an absolute path; no shell). */
  argv: s.optional(s.array(s.string({ minLength: 1 }), { minItems: 1, maxItems: 64 })),
  /** For argv services: where the process writes its pid, so a later agent can stop it. */
  pidfile: s.optional(s.string({ pattern: /^\//, hint: "an absolute path" })),
});

const schema = s.object({
  component: componentSchema,
  coordinator: coordinatorSchema,
  sampling: section(samplingSchema),
  probes: section(probesSchema),
  watch: s.optional(watchSchema),
  /** Allowlist: service name (as directives name it) → how to start/stop it. */
  services: s.default(s.record(serviceSchema), {}),
  /**
   * DRAIN directive: POSTed {"deadlineUnixMs": n} (agent clock) so the local
   * component stops taking work. Without it DRAIN is answered ok=false.
   */
  drainUrl: s.optional(s.string({ pattern: /^https?:\/\/\S+$/, hint: "an absolute http(s) URL" })),
  bufferBytesMax: s.default(
    s.number({ min: 64 * 1024, max: 1024 * 1024 * 1024, integer: true }),
    defaultBufferBytesMax,
  ),
  /** Optional: persists the report buffer and sequence numbers so a restart loses nothing. */
  dataDir: s.optional(s.string({ pattern: /^\//, hint: "an absolute path" })),
  /** SET_SAMPLING_INTERVAL outside directiveIntervalMsMin..Max is refused (not clamped). */
  directiveIntervalMsMin: s.default(
    s.number({ min: samplingIntervalMsMin, max: samplingIntervalMsMax, integer: true }),
    200,
  ),
  directiveIntervalMsMax: s.default(
    s.number({ min: samplingIntervalMsMin, max: samplingIntervalMsMax, integer: true }),
    samplingIntervalMsMax,
  ),
  logLevel: s.default(s.literal("debug", "info", "warn", "error"), "info"),
});

type RawAgentConfig = Infer<typeof schema>;

export interface AgentConfig extends Omit<RawAgentConfig, "component"> {
  component: Omit<RawAgentConfig["component"], "host"> & { host: string };
}
export type ServiceEntry = RawAgentConfig["services"][string];
export type HttpProbeConfig = RawAgentConfig["probes"]["http"][number];
export type WatchConfig = NonNullable<RawAgentConfig["watch"]>;

function defaultSource(): "procfs" | "systeminformation" {
  return process.platform === "linux" ? "procfs" : "systeminformation";
}

/** Validates an already-parsed YAML value (tests, embedding). */
export function parseAgentConfig(value: unknown, file?: string): AgentConfig {
  const raw = parseConfig(schema, value, file);
  try {
    return checkCrossFields(raw);
  } catch (err) {
    if (err instanceof ConfigError && file) throw new ConfigError(err.field, err.problem, file);
    throw err;
  }
}

/** Reads and validates the agent's YAML config file; throws ConfigError naming the field. */
export function loadAgentConfig(file: string): AgentConfig {
  const value = loadConfigFile({ expected: "a mapping", parse: (v) => v }, file);
  return parseAgentConfig(value, file);
}

function checkCrossFields(c: RawAgentConfig): AgentConfig {
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(field, problem);
  };
  if (c.sampling.heartbeatIntervalMs > c.sampling.intervalMs) {
    fail(
      "sampling.heartbeatIntervalMs",
      `must not be longer than sampling.intervalMs (${c.sampling.intervalMs}), got ${c.sampling.heartbeatIntervalMs}`,
    );
  }
  if (c.sampling.source === "procfs" && process.platform !== "linux") {
    fail("sampling.source", `"procfs" needs Linux; use "systeminformation" on ${process.platform}`);
  }
  if (c.coordinator.backoffInitialMs > c.coordinator.backoffMaxMs) {
    fail(
      "coordinator.backoffInitialMs",
      `must not exceed coordinator.backoffMaxMs (${c.coordinator.backoffMaxMs})`,
    );
  }
  if (c.directiveIntervalMsMin > c.directiveIntervalMsMax) {
    fail(
      "directiveIntervalMsMin",
      `must not exceed directiveIntervalMsMax (${c.directiveIntervalMsMax})`,
    );
  }
  for (const k of Object.keys(c.component.labels.extra)) {
    if (!labelKeyPattern.test(k))
      fail(`component.labels.extra.${k}`, "key must be 1–63 chars of [a-z0-9_./-]");
    if (k === "region" || k === "zone" || k === "rack") {
      fail(`component.labels.extra.${k}`, `use component.labels.${k} instead`);
    }
  }
  if (Object.keys(c.component.labels.extra).length > 32) {
    fail("component.labels.extra", "allows at most 32 labels");
  }
  if (c.watch) {
    const set = (["pid", "pidfile", "unit"] as const).filter((k) => c.watch?.[k] !== undefined);
    if (set.length !== 1) {
      fail(
        "watch",
        `set exactly one of pid, pidfile, unit (got ${set.length ? set.join(", ") : "none"})`,
      );
    }
  }
  const names = Object.keys(c.services);
  if (names.length > 64) fail("services", "allows at most 64 services");
  for (const name of names) {
    const svc = c.services[name]!;
    const field = `services.${name}`;
    if (!serviceNamePattern.test(name)) {
      fail(
        field,
        "service name must be 1–256 chars of [A-Za-z0-9@._-], starting with a letter or digit",
      );
    }
    if ((svc.unit === undefined) === (svc.argv === undefined)) {
      fail(field, "set exactly one of unit, argv");
    }
    if (svc.argv && !isAbsolute(svc.argv[0]!)) {
      fail(`${field}.argv[0]`, `must be an absolute path to an executable, got "${svc.argv[0]}"`);
    }
    if (svc.pidfile !== undefined && svc.unit !== undefined) {
      fail(`${field}.pidfile`, "only applies to argv services (systemd tracks a unit's pid)");
    }
  }
  const probeNames = new Set<string>();
  c.probes.http.forEach((p, i) => {
    if (probeNames.has(p.name)) fail(`probes.http[${i}].name`, `duplicate probe name "${p.name}"`);
    if (p.name === "coordinator") fail(`probes.http[${i}].name`, '"coordinator" is reserved');
    probeNames.add(p.name);
  });
  return { ...c, component: { ...c.component, host: c.component.host ?? hostname() } };
}
