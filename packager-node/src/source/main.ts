/**
 * `understudy source --config FILE`: runs one encoder of the pool until
 * SIGINT/SIGTERM. Exit codes: 0 after a clean stop, 2 for bad usage or config
 * (the message names the file and field), 1 when the status listener cannot
 * bind.
 */
import { ConfigError } from "../../../common/config.ts";
import { ConnectError } from "../../../common/errors.ts";
import { createLogger } from "../../../common/log.ts";
import { createTokenFileSource, type TokenSource } from "../../../common/rpc-auth.ts";
import { loadSourceConfig, type SourceConfig } from "./config.ts";
import { type Fixture, FixtureError, loadFixture } from "./fixture.ts";
import { fetchStreamPlan, followChain } from "./follow.ts";
import { createSource } from "./source.ts";
import { type StatusServer, startStatusServer } from "./status-server.ts";
import type { ScheduleEntry } from "./timeline.ts";

function sameSchedule(a: readonly ScheduleEntry[], b: readonly ScheduleEntry[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (e, i) =>
        e.sinceShard === b[i]?.sinceShard &&
        e.sinceMsn === b[i]?.sinceMsn &&
        e.segmentDurationMs === b[i]?.segmentDurationMs,
    )
  );
}

const usage = `Usage: understudy source --config FILE [--check]

Loops the committed CMAF fixture in real time on a continuous timeline and
pushes the shards this encoder owns to its packager targets (ingest protocol v1).

Options:
  --config FILE   YAML config (see deploy/examples/source.yaml)
  --check         validate the config and the fixture, then exit (0 = valid, 2 = invalid)
  -h, --help      show this help
`;

function configPath(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--config") return argv[i + 1];
    if (a.startsWith("--config=")) return a.slice("--config=".length);
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  const check = argv.includes("--check");
  const unknown = argv.filter(
    (a, i) => a !== "--check" && !a.startsWith("--config") && argv[i - 1] !== "--config",
  );
  const file = configPath(argv);
  if (!file || unknown.length > 0) {
    const why =
      unknown.length > 0 ? `unknown argument "${unknown[0]}"` : "--config FILE is required";
    process.stderr.write(`understudy source: ${why}\n\n${usage}`);
    return 2;
  }
  let config: SourceConfig;
  let fixture: Fixture;
  try {
    config = loadSourceConfig(file);
    fixture = await loadFixture(config.fixtureDir);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    if (err instanceof FixtureError) {
      process.stderr.write(`${file}: fixtureDir: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (check) {
    process.stdout.write(`${file}: valid\n`);
    return 0;
  }
  const logger = createLogger(
    { component: "source" },
    config.logLevel === undefined ? {} : { level: config.logLevel },
  );
  // The coordinators' token (role encoder); its file is re-read when it changes.
  let token: TokenSource | undefined;
  try {
    token = config.coordinator?.tokenFile
      ? createTokenFileSource(config.coordinator.tokenFile, { log: logger })
      : undefined;
  } catch (err) {
    process.stderr.write(`${file}: coordinator.tokenFile: ${(err as Error).message}\n`);
    return 2;
  }
  const auth = token ? { bearerToken: (token as TokenSource).token } : {};
  // Following the coordinator: wait for the stream, take its replicated
  // timeline origin and current shard map, then keep watching the chain.
  const stopping = new AbortController();
  const onEarlySignal = () => stopping.abort(new Error("stopped"));
  process.once("SIGINT", onEarlySignal);
  process.once("SIGTERM", onEarlySignal);
  let timelineOriginMs = config.timelineOriginMs;
  let assignment = config.assignment;
  let segmentSchedule: readonly ScheduleEntry[] | undefined;
  const coordinators = config.coordinator?.addresses;
  /** The coordinator's schedule counts shards of the stream's shard duration; ours are fixture parts. */
  let followsSchedule = false;
  if (coordinators) {
    try {
      const plan = await fetchStreamPlan(
        coordinators,
        config.streamId,
        logger,
        stopping.signal,
        auth,
      );
      timelineOriginMs ??= plan.timelineOriginMs;
      followsSchedule = plan.shardDurationMs === fixture.partDurationMs;
      if (!followsSchedule) {
        logger.error(
          "the stream's shard duration is not the fixture's part duration: its segment schedule cannot be followed; cutting the fixture's segments",
          { shardDurationMs: plan.shardDurationMs, fixturePartMs: fixture.partDurationMs },
        );
      } else segmentSchedule = plan.schedule;
      const gopMs = fixture.partsPerSegment * fixture.partDurationMs;
      if (plan.keyframeIntervalMs % gopMs !== 0) {
        logger.warn(
          "the stream lets segments start between the fixture's keyframes: such segments will not start with one",
          { keyframeIntervalMs: plan.keyframeIntervalMs, fixtureKeyframeEveryMs: gopMs },
        );
      }
      // Until the coordinator assigns shards this encoder produces nothing.
      assignment = plan.map
        ? { kind: "map", map: plan.map }
        : { kind: "map", map: { epoch: 0, ranges: [] } };
    } catch {
      return 0; // stopped while waiting
    }
  }
  process.off("SIGINT", onEarlySignal);
  process.off("SIGTERM", onEarlySignal);
  let source: ReturnType<typeof createSource>;
  // Set once the follower exists (it needs the source); a stale-epoch refusal
  // before that has nothing to refresh.
  let follower: ReturnType<typeof followChain> | undefined;
  try {
    source = createSource({
      onStaleEpoch: () => follower?.refresh(),
      streamId: config.streamId,
      encoderId: config.encoderId,
      fixture,
      timelineOriginMs: timelineOriginMs ?? 0,
      ...(segmentSchedule ? { segmentSchedule } : {}),
      assignment: assignment ?? { kind: "map", map: { epoch: 0, ranges: [] } },
      segmentPush: config.segmentPush,
      limits: config.push,
      catchUpShardsMax: config.catchUpShardsMax,
      takeoverShardsMax: config.takeoverShardsMax,
      logger,
      ...(config.renditions === undefined ? {} : { renditions: config.renditions }),
      ...(config.authToken === undefined ? {} : { authToken: config.authToken }),
    });
  } catch (err) {
    if (err instanceof ConnectError) {
      process.stderr.write(`${file}: ${err.rawMessage}\n`);
      return 2;
    }
    throw err;
  }
  follower = coordinators
    ? followChain(
        coordinators,
        config.streamId,
        (map) => {
          if (map.epoch <= source.status().epoch) return;
          try {
            const r = source.setShardMap(map);
            logger.info("following the coordinator's shard map", r);
          } catch (err) {
            logger.warn("shard map from the coordinator refused", { err });
          }
        },
        logger,
        followsSchedule
          ? (schedule) => {
              if (sameSchedule(schedule, source.timeline.schedule)) return;
              try {
                source.setSegmentSchedule(schedule);
              } catch (err) {
                logger.error("segment schedule from the coordinator refused", { err });
              }
            }
          : undefined,
        auth,
      )
    : undefined;
  let statusServer: StatusServer | undefined;
  if (config.status) {
    try {
      statusServer = await startStatusServer(config.status.listen, () => source.status());
    } catch (err) {
      process.stderr.write(
        `${file}: status.listen: cannot listen on ${config.status.listen}: ${(err as Error).message}\n`,
      );
      return 1;
    }
    process.stdout.write(`status http://${statusServer.address}/status\n`);
  }
  source.start();
  const signal = await new Promise<string>((resolve) => {
    const on = (sig: string) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
  logger.info("stopping", { signal });
  follower?.stop();
  await source.stop();
  await statusServer?.close();
  return 0;
}
