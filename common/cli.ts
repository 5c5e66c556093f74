/**
 * `understudy <command>`: one executable for every role. Each command lives in
 * its component and is loaded lazily, so `understudy agent` never loads the
 * coordinator. Only commands that work are listed here.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "./config.ts";

interface Command {
  summary: string;
  /** Module exporting `main(argv): Promise<number>`, relative to this file. */
  module: string;
}

const commands: Record<string, Command> = {
  coordinator: {
    summary: "Run a coordinator node (Raft-replicated control plane)",
    module: "../coordinator/src/runtime/main.ts",
  },
  agent: {
    summary: "Run the host agent (metrics, probes, allowlisted directives)",
    module: "../agent/src/main.ts",
  },
  packager: {
    summary: "Run a packager-node (LL-HLS/HLS/DASH origin or caching edge)",
    module: "../packager-node/src/main.ts",
  },
  demo: {
    summary: "Run the local demo cluster: predictive vs reactive failover, side by side",
    module: "../deploy/local-cluster/demo.ts",
  },
  viewers: {
    summary: "Run N headless SDK player sessions against a stream and report stalls",
    module: "../client-sdk/src/viewers-cli.ts",
  },
  predict: {
    summary:
      "Train (train) or evaluate (eval) the failure predictor, or score exported history (score)",
    module: "../coordinator/src/predict/main.ts",
  },
  source: {
    summary: "Run a live source of the encoder pool (loops a CMAF ladder, pushes shards)",
    module: "../packager-node/src/source/main.ts",
  },
  token: {
    summary: "Make a bearer token (0600 file) and the config entry with its SHA-256 digest",
    module: "./token-cli.ts",
  },
};

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(8, ...Object.keys(commands).map((n) => n.length));
  const lines = [
    "understudy: keeps live video streams on air when the machines behind them fail.",
    "",
    "Usage: understudy <command> [options]",
    "",
    "Commands:",
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    `  ${"version".padEnd(width)}  Print the version`,
    `  ${"help".padEnd(width)}  Show this help`,
    "",
    "Run `understudy <command> --help` for a command's options.",
  ];
  return lines.join("\n");
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version" || name === "-v") {
    process.stdout.write(`understudy ${packageVersion()}\n`);
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`understudy: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  const mod = (await import(new URL(cmd.module, import.meta.url).href)) as {
    main(argv: string[]): Promise<number>;
  };
  try {
    return await mod.main(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`understudy ${name}: config error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
