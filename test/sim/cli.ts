/**
 * npm run sim -- --seeds A..B [--json] [--nodes 3|5] [--ticks N] [--liveness N]
 *                [--no-membership] [--workers N] [--verbose] [--testing-bug NAME]
 *
 * --testing-bug (TEST-ONLY) runs the cores with a deliberately broken rule
 * (countStaleVotes, commitPreviousTermEntries, skipVoteLogCheck) to show the
 * checkers catch it.
 *
 * Runs the deterministic cluster simulation for every seed in A..B and prints
 * a summary (or JSON). Exits 1 if any seed violates a checker, naming the
 * first failing seed and the command that replays it with a full trace.
 */
import type { TestingBugs } from "../../coordinator/src/raft/index.ts";
import { type RunOptions, runSeeds, type Summary } from "./run.ts";
import { runSimulation } from "./sim.ts";

const testingBugNames: readonly (keyof TestingBugs)[] = [
  "countStaleVotes",
  "commitPreviousTermEntries",
  "skipVoteLogCheck",
];

interface Args {
  from: number;
  to: number;
  json: boolean;
  verbose: boolean;
  workers: number | undefined;
  opts: RunOptions;
  /** The options as typed, for the replay command. */
  replayFlags: string[];
}

const usage =
  "usage: npm run sim -- --seeds A..B [--json] [--nodes 3|5] [--ticks N] [--liveness N] [--no-membership] [--workers N] [--verbose] [--testing-bug NAME]";

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    from: 0,
    to: 99,
    json: false,
    verbose: false,
    workers: undefined,
    opts: {},
    replayFlags: [],
  };
  const opts: { -readonly [K in keyof RunOptions]: RunOptions[K] } = {};
  const intValue = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) {
      throw new Error(`${flag} needs an integer >= ${min}, got ${v ?? "nothing"}`);
    }
    return n;
  };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    switch (flag) {
      case "--seeds": {
        const v = argv[++k];
        const m = /^(\d+)(?:\.\.(\d+))?$/.exec(v ?? "");
        if (!m) throw new Error(`--seeds needs A..B or a single seed, got ${v ?? "nothing"}`);
        args.from = Number(m[1]);
        args.to = Number(m[2] ?? m[1]);
        if (args.to < args.from) throw new Error(`--seeds ${v}: the range is empty`);
        break;
      }
      case "--nodes": {
        const n = intValue(flag, argv[++k], 3);
        if (n !== 3 && n !== 5) throw new Error(`--nodes must be 3 or 5, got ${n}`);
        opts.nodes = n;
        args.replayFlags.push(flag, String(n));
        break;
      }
      case "--ticks":
        opts.ticks = intValue(flag, argv[++k], 1);
        args.replayFlags.push(flag, String(opts.ticks));
        break;
      case "--liveness":
        opts.livenessTicks = intValue(flag, argv[++k], 1);
        args.replayFlags.push(flag, String(opts.livenessTicks));
        break;
      case "--no-membership":
        opts.membership = false;
        args.replayFlags.push(flag);
        break;
      case "--testing-bug": {
        const name = argv[++k] as keyof TestingBugs;
        if (!testingBugNames.includes(name)) {
          throw new Error(
            `--testing-bug must be one of ${testingBugNames.join(", ")}, got ${name}`,
          );
        }
        opts.testingBugs = { ...opts.testingBugs, [name]: true };
        args.replayFlags.push(flag, name);
        break;
      }
      case "--workers":
        args.workers = intValue(flag, argv[++k], 1);
        break;
      case "--json":
        args.json = true;
        break;
      case "--verbose":
        args.verbose = true;
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  args.opts = opts;
  return args;
}

function replayCommand(seed: number, flags: readonly string[]): string {
  return ["npm run sim -- --seeds", `${seed}..${seed}`, ...flags, "--verbose"].join(" ");
}

function printSummary(s: Summary, args: Args, write: (text: string) => void): void {
  const t = s.totals;
  const lines = [
    `sim: seeds ${s.from}..${s.to} (${s.seeds} seeds)`,
    `  ok ${s.seeds - s.failures.length}, violations ${s.failures.length}`,
    `  time ${s.seconds.toFixed(1)} s (${s.seedsPerSecond.toFixed(1)} seeds/s)`,
    `  totals: ${t.ticks} ticks, ${t.elections} elections, ${t.committed} entries committed, ${t.acked} writes acknowledged, ${t.reads} reads`,
    `          ${t.faults} faults, ${t.crashes} crashes, ${t.tornRecords} torn records, ${t.confChanges} membership changes, ${t.snapshotsInstalled} snapshots installed`,
    `          ${t.messages} messages (${t.dropped} dropped)`,
    `  recovery after healing: median ${s.recoveryTicks.median}, p99 ${s.recoveryTicks.p99}, max ${s.recoveryTicks.max} ticks`,
  ];
  for (const f of s.failures.slice(0, 20)) {
    lines.push(`  FAIL seed ${f.seed}: ${f.kind} at tick ${f.tick}: ${f.message.split("\n")[0]}`);
  }
  if (s.failures.length > 20) lines.push(`  ... and ${s.failures.length - 20} more`);
  const first = s.failures[0];
  if (first) {
    lines.push(`  first failing seed: ${first.seed}`);
    lines.push(`  replay: ${replayCommand(first.seed, args.replayFlags)}`);
  }
  write(`${lines.join("\n")}\n`);
}

export async function main(
  argv: readonly string[],
  write: (text: string) => void = (text) => process.stdout.write(text),
  writeError: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    writeError(`${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (args.verbose) {
    // Verbose replays run in this thread so the trace streams as it happens.
    let failed = 0;
    for (let seed = args.from; seed <= args.to; seed++) {
      const r = runSimulation({ ...args.opts, seed, trace: (l) => write(`${l}\n`) });
      write(`seed ${seed}: ${r.violation ? "VIOLATION" : "ok"} ${JSON.stringify(r.stats)}\n`);
      if (r.violation) failed++;
    }
    return failed > 0 ? 1 : 0;
  }
  const summary = await runSeeds(args.from, args.to, args.opts, args.workers);
  if (args.json) {
    const first = summary.failures[0];
    write(
      `${JSON.stringify(
        { ...summary, replay: first ? replayCommand(first.seed, args.replayFlags) : null },
        null,
        2,
      )}\n`,
    );
  } else {
    printSummary(summary, args, write);
  }
  return summary.failures.length > 0 ? 1 : 0;
}

if (
  import.meta.url === `file://${process.argv[1]}` ||
  process.argv[1]?.endsWith("test/sim/cli.ts")
) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
