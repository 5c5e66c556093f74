/// <reference types="node" />
/**
 * `understudy viewers`: N headless real-time player sessions with this SDK
 * against a live stream, recording per viewer stalls, switches and notice
 * latency; prints a summary and writes the full JSON report. Node only.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runViewers } from "./node-viewers.ts";

const usage = `Usage: understudy viewers --stream ID --origin URL [options]

  --stream ID          stream id
  --origin URL         origin base URL (http://host:port) or a playlist URL under /live/
  --count N            viewers (default 10, at most 20000)
  --duration-ms N      how long each viewer watches (default 60000)
  --coordinator URL    coordinator API base URL (repeatable): catch-up, fallback, reports
  --nats URL           NATS server (repeatable): handover notices
  --alternate URL      another origin to fail over to (repeatable)
  --json FILE          write the full report as JSON
`;

const options = {
  stream: { type: "string" },
  origin: { type: "string" },
  count: { type: "string" },
  "duration-ms": { type: "string" },
  coordinator: { type: "string", multiple: true },
  nats: { type: "string", multiple: true },
  alternate: { type: "string", multiple: true },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs<{ options: typeof options }>>;
  try {
    args = parseArgs({ args: argv, options, strict: true });
  } catch (err) {
    process.stderr.write(`understudy viewers: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(usage);
    return 0;
  }
  const fail = (msg: string) => {
    process.stderr.write(`understudy viewers: ${msg}\n\n${usage}`);
    return 2;
  };
  if (!v.stream) return fail("--stream is required");
  if (!v.origin || !/^https?:\/\//.test(v.origin)) return fail("--origin must be an http(s) URL");
  const count = v.count === undefined ? 10 : Number(v.count);
  if (!Number.isInteger(count) || count < 1 || count > 20_000)
    return fail(`--count must be an integer in 1..20000, got ${v.count}`);
  const durationMs = v["duration-ms"] === undefined ? 60_000 : Number(v["duration-ms"]);
  if (!Number.isInteger(durationMs) || durationMs < 1000)
    return fail(`--duration-ms must be an integer >= 1000, got ${v["duration-ms"]}`);
  const report = await runViewers({
    streamId: v.stream,
    count,
    originUrl: v.origin,
    durationMs,
    ...(v.coordinator ? { coordinatorUrls: v.coordinator } : {}),
    ...(v.nats ? { natsServers: v.nats } : {}),
    ...(v.alternate ? { alternateOrigins: v.alternate } : {}),
  });
  const s = report.summary;
  process.stdout.write(
    [
      `viewers ${report.count}, ${Math.round(report.durationMs / 1000)} s each`,
      `stalls ${s.stallsTotal} (${s.viewersWithStalls} viewers, ${s.stallMsTotal} ms in all)`,
      `origin switches ${s.switchesTotal} (${s.viewersSwitched} viewers)`,
      `notices ${s.noticesReceived}, latency p50 ${s.noticeLatencyMs.p50.toFixed(1)} ms, p99 ${s.noticeLatencyMs.p99.toFixed(1)} ms`,
      `MSN continuity violations ${s.continuityViolations}, timestamp mismatches ${s.timestampMismatches}`,
      "",
    ].join("\n"),
  );
  if (v.json) writeFileSync(v.json, `${JSON.stringify(report, null, 2)}\n`);
  return 0;
}
