/**
 * `understudy coordinator --config FILE`: runs one coordinator node until
 * SIGTERM/SIGINT, then stops gracefully (listeners closed, WAL flushed).
 * `--check` validates the config and exits; `--check-data` inspects the data
 * directory read-only and exits.
 */
import { parseArgs } from "node:util";
import { packageVersion } from "../../../common/cli.ts";
import { ConfigError } from "../../../common/config.ts";
import { createLogger } from "../../../common/log.ts";
import { TokenFileError } from "../../../common/rpc-auth.ts";
import { formatInspection, inspectDurableLog, StorageCorruptionError } from "../storage/index.ts";
import { loadCoordinatorConfig } from "./config.ts";
import { startCoordinatorNode } from "./coordinator-node.ts";

const usage = `Usage: understudy coordinator --config FILE [--check | --check-data]

Runs one node of the Raft-replicated coordinator cluster.

Options:
  --config FILE   YAML config (see deploy/examples/coordinator-*.yaml)
  --check         validate the config and exit (0 = valid, 2 = invalid, naming the field)
  --check-data    inspect the data directory (WAL segments, snapshots) and exit:
                  0 if the node can start (a torn tail is truncated at start), 1 if it
                  would refuse (corruption)
  -h, --help      show this help
`;

export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs<{ options: typeof options }>>;
  const options = {
    config: { type: "string" },
    check: { type: "boolean" },
    "check-data": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  } as const;
  try {
    args = parseArgs({ args: argv, options, strict: true });
  } catch (err) {
    process.stderr.write(`understudy coordinator: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (!args.values.config) {
    process.stderr.write(`understudy coordinator: --config FILE is required\n\n${usage}`);
    return 2;
  }
  const cfg = loadCoordinatorConfig(args.values.config);
  if (args.values.check) {
    process.stdout.write(`${args.values.config}: valid\n`);
    return 0;
  }
  const log = createLogger({ component: "coordinator" }, { level: cfg.log.level });

  if (args.values["check-data"]) {
    try {
      const inspection = await inspectDurableLog(cfg.dataDir);
      process.stdout.write(`${formatInspection(inspection)}\n`);
      // Scripts and supervisors test the exit code: 1 when the node would refuse to start.
      return inspection.ok ? 0 : 1;
    } catch (err) {
      process.stderr.write(`understudy coordinator: ${(err as Error).message}\n`);
      return 1;
    }
  }

  let node: Awaited<ReturnType<typeof startCoordinatorNode>>;
  try {
    node = await startCoordinatorNode(cfg, { log, softwareVersion: packageVersion() });
  } catch (err) {
    if (err instanceof StorageCorruptionError) {
      process.stderr.write(`understudy coordinator: refusing to start: ${err.message}\n`);
      return 1;
    }
    // A token file a restart cannot fix: 2, like a config error (no restart loop).
    if (err instanceof TokenFileError || err instanceof ConfigError) {
      process.stderr.write(`understudy coordinator: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`understudy coordinator: ${(err as Error).message}\n`);
    return 1;
  }
  // Tell a supervising process (tests, the demo, systemd notify wrappers) where we listen.
  process.stdout.write(
    `${JSON.stringify({ event: "listening", nodeId: cfg.nodeId, api: node.apiServer.address, peer: node.peerServer.address })}\n`,
  );
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
  log.info("stopping");
  await node.stop();
  return 0;
}
