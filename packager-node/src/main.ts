/**
 * `understudy packager --config FILE`: runs one packager-node (origin or
 * edge) until SIGINT/SIGTERM. Exit codes: 0 after a clean stop, 2 on a bad
 * config or usage, 1 when the node cannot start (e.g. the port is taken).
 */
import { ConfigError } from "../../common/config.ts";
import { errorMessage } from "../../common/errors.ts";
import { loadPackagerConfig } from "./config.ts";
import { createPackagerNode } from "./node.ts";

const USAGE = `Usage: understudy packager --config FILE [--check]

Runs a packager-node: an LL-HLS/HLS/DASH origin that takes CMAF parts over
HTTP (mode: origin) or a caching proxy in front of origins (mode: edge).
Options:
  --config FILE            YAML config (see deploy/examples/packager-{origin,edge}.yaml)
  --check                  validate the config and exit (0 = valid, 2 = invalid)
  --dev-fault-injection    DEVELOPMENT ONLY: serve /dev/fault to degrade this node on request
  --help                   show this help
`;

export async function main(argv: string[]): Promise<number> {
  let file: string | undefined;
  let devFaultInjection = false;
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--help" || a === "-h") {
      process.stdout.write(USAGE);
      return 0;
    }
    if (a === "--dev-fault-injection") devFaultInjection = true;
    else if (a === "--check") check = true;
    else if (a === "--config") file = argv[++i];
    else if (a.startsWith("--config=")) file = a.slice("--config=".length);
    else {
      process.stderr.write(`understudy packager: unknown argument "${a}"\n\n${USAGE}`);
      return 2;
    }
  }
  if (!file) {
    process.stderr.write(`understudy packager: --config FILE is required\n\n${USAGE}`);
    return 2;
  }
  let config: ReturnType<typeof loadPackagerConfig>;
  try {
    config = loadPackagerConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`understudy packager: config error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (check) {
    process.stdout.write(`${file}: valid\n`);
    return 0;
  }
  if (devFaultInjection) {
    process.stderr.write(
      "understudy packager: DEVELOPMENT fault injection is enabled (/dev/fault)\n",
    );
  }
  const node = createPackagerNode(config, { devFaultInjection });
  try {
    await node.start();
  } catch (err) {
    process.stderr.write(`understudy packager: cannot start: ${errorMessage(err)}\n`);
    await node.stop().catch(() => {});
    return 1;
  }
  process.stdout.write(
    `packager ${config.nodeId} (${config.mode}) listening on ${node.urls.http}${node.urls.control ? `, control ${node.urls.control}` : ""}\n`,
  );
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await node.stop();
  return 0;
}
