/**
 * `understudy agent --config FILE`: runs the host agent until SIGTERM/SIGINT
 * (systemd stop), then flushes the buffer to the data dir and exits 0.
 * A bad config prints the error naming the field and returns 2.
 */
import { packageVersion } from "../../common/cli.ts";
import { systemClock } from "../../common/clock.ts";
import { ConfigError } from "../../common/config.ts";
import { errorMessage } from "../../common/errors.ts";
import { createLogger } from "../../common/log.ts";
import { createRng } from "../../common/rng.ts";
import { createTokenFileSource, type TokenSource } from "../../common/rpc-auth.ts";
import { type Agent, createAgent } from "./agent.ts";
import { createCgroupReader } from "./cgroup.ts";
import { execFileRunner } from "./command-runner.ts";
import { type AgentConfig, loadAgentConfig } from "./config.ts";
import { createProcfsSampler, createSystemInformationSampler } from "./host-sampler.ts";
import { createProbeSet } from "./probes.ts";
import { createProcessWatcher } from "./process-watch.ts";
import { createGrpcAgentTransport } from "./transport.ts";

const usage = `Usage: understudy agent --config FILE [--check]

Runs the host agent: samples this host and its service, streams reports to
the coordinator leader and executes allowlisted directives.

Options:
  --config FILE   Agent config (YAML); see deploy/examples/agent.yaml
  --check         Validate the config and exit (0 = valid, 2 = invalid)
  --help          Show this help
`;

function parseArgs(argv: string[]): {
  config?: string;
  check: boolean;
  help: boolean;
  error?: string;
} {
  const out: { config?: string; check: boolean; help: boolean; error?: string } = {
    check: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--help" || a === "-h") out.help = true;
    else if (a === "--check") out.check = true;
    else if (a === "--config") {
      const v = argv[++i];
      if (v === undefined) out.error = "--config needs a file";
      else out.config = v;
    } else if (a.startsWith("--config=")) out.config = a.slice("--config=".length);
    else out.error = `unknown argument "${a}"`;
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (args.error || !args.config) {
    process.stderr.write(
      `understudy agent: ${args.error ?? "--config FILE is required"}\n\n${usage}`,
    );
    return 2;
  }
  let config: AgentConfig;
  try {
    config = loadAgentConfig(args.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`understudy agent: config error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (args.check) {
    process.stdout.write(`${args.config}: valid\n`);
    return 0;
  }
  return run(config);
}

async function run(config: AgentConfig): Promise<number> {
  const clock = systemClock;
  const logger = createLogger(
    { component: "agent", componentId: config.component.id },
    { level: config.logLevel },
  );
  const watcher = config.watch
    ? createProcessWatcher({ watch: config.watch, runner: execFileRunner, clock })
    : undefined;
  // The watched service's limits while it runs (none while it is down), else the agent's own.
  const cgroup = createCgroupReader(() => (watcher ? watcher.currentPid() : "self"));
  const samplerOpts = {
    filesystems: config.sampling.filesystems,
    interfaces: config.sampling.interfaces,
    clock,
    cgroup,
  };
  const sampler =
    config.sampling.source === "procfs"
      ? createProcfsSampler(samplerOpts)
      : createSystemInformationSampler(samplerOpts);
  const p = config.probes;
  const probes =
    p.packagerStatusUrl || p.encoderProgressFile || p.http.length > 0
      ? createProbeSet({
          ...(p.packagerStatusUrl ? { packagerStatusUrl: p.packagerStatusUrl } : {}),
          ...(p.encoderProgressFile ? { encoderProgressFile: p.encoderProgressFile } : {}),
          packagerStatusTimeoutMs: p.packagerStatusTimeoutMs,
          encoderProgressStaleMs: p.encoderProgressStaleMs,
          http: p.http,
          clock,
        })
      : undefined;
  const c = config.coordinator;
  let token: TokenSource | undefined;
  try {
    token = c.tokenFile ? createTokenFileSource(c.tokenFile, { log: logger }) : undefined;
  } catch (err) {
    process.stderr.write(`understudy agent: coordinator.tokenFile: ${errorMessage(err)}\n`);
    return 2;
  }
  let agent: Agent;
  try {
    agent = await createAgent({
      config,
      clock,
      rng: createRng(Date.now() ^ (process.pid << 16)),
      logger,
      sampler,
      transport: createGrpcAgentTransport({
        keepaliveIntervalMs: c.keepaliveIntervalMs,
        keepaliveTimeoutMs: c.keepaliveTimeoutMs,
        backoffInitialMs: c.backoffInitialMs,
        backoffMaxMs: c.backoffMaxMs,
        ...(token ? { token: () => (token as TokenSource).token() } : {}),
      }),
      runner: execFileRunner,
      ...(watcher ? { processWatcher: watcher } : {}),
      ...(probes ? { probes } : {}),
      softwareVersion: `understudy-agent ${packageVersion()}`,
    });
  } catch (err) {
    // Typically an unwritable or unreadable dataDir; say which and stop.
    logger.error("agent could not start", { err, dataDir: config.dataDir });
    return 1;
  }
  agent.start();

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  logger.info("stopping", { signal });
  // A stop that hangs (stuck disk) must not keep systemd waiting forever.
  const forced = setTimeout(() => {
    logger.error("stop took longer than 10 s; exiting");
    process.exit(1);
  }, 10_000);
  forced.unref();
  await agent.stop();
  clearTimeout(forced);
  const s = agent.stats();
  logger.info("stopped", {
    lastSeq: s.buffer.lastSeq,
    ackedSeq: s.buffer.ackedSeq,
    droppedUnacked: s.buffer.droppedUnacked,
  });
  return 0;
}
