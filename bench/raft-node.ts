/**
 * A coordinator node for bench/raft.ts: the same node as `understudy
 * coordinator --config FILE` (same config, same "listening" line, same
 * shutdown), plus one benchmark-only HTTP route on the API listener:
 *
 *   POST /bench/propose {"count": N, "inFlight": K, "tag": "x"}
 *
 * On the leader it proposes N CreateStream commands straight into the local
 * ClusterHandle, K at a time, and answers with commits/s and latency. That is
 * the Raft pipeline (propose, WAL fsync, AppendEntries to the followers and
 * their fsync, commit, FSM apply) without the client's per-write gRPC call,
 * so the bench can show how the cost splits between the two. Never part of
 * the product: `understudy coordinator` has no such route.
 *
 *   node --import tsx bench/raft-node.ts --config FILE
 */
import { parseArgs } from "node:util";
import { createLogger } from "../common/log.ts";
import type { HttpFallback } from "../common/rpc-server.ts";
import type { ClusterHandle } from "../coordinator/src/api/cluster-handle.ts";
import { loadCoordinatorConfig } from "../coordinator/src/runtime/config.ts";
import { startCoordinatorNode } from "../coordinator/src/runtime/coordinator-node.ts";
import { streamSpec } from "../test/support/cluster.ts";

/** Bounds on one /bench/propose run. */
const countMax = 1_000_000;
const inFlightMax = 4096;
const bodyBytesMax = 4096;

type Res = Parameters<HttpFallback>[1];

function send(res: Res, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body)}\n`);
}

async function readJson(req: AsyncIterable<Buffer | string>): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > bodyBytesMax) throw new Error(`body larger than ${bodyBytesMax} bytes`);
  }
  return JSON.parse(text || "{}") as Record<string, unknown>;
}

async function proposeRun(cluster: ClusterHandle, count: number, inFlight: number, tag: string) {
  const lat: number[] = [];
  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const i = next++;
        const id = `${tag}-${i}`;
        const t0 = performance.now();
        try {
          const r = await cluster.propose(
            { op: { case: "createStream", value: { spec: streamSpec(id) } } },
            { requestId: id },
          );
          if (r.ok) lat.push(performance.now() - t0);
          else failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  lat.sort((a, b) => a - b);
  const at = (p: number) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)] ?? 0;
  return {
    count,
    inFlight,
    committed: lat.length,
    failed,
    seconds,
    perSec: lat.length / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { config: { type: "string" } } });
  if (!values.config) {
    process.stderr.write("bench/raft-node.ts: --config FILE is required\n");
    return 2;
  }
  const cfg = loadCoordinatorConfig(values.config);
  const log = createLogger({ component: "coordinator" }, { level: cfg.log.level });
  const node = await startCoordinatorNode(cfg, {
    log,
    softwareVersion: "bench",
    httpFallback: (cluster) => (req, res) => {
      if (req.method !== "POST" || req.url !== "/bench/propose") {
        send(res, 404, { error: `no route for ${req.method} ${req.url}` });
        return;
      }
      void (async () => {
        try {
          const body = await readJson(req);
          const count = Number(body.count ?? 10_000);
          const inFlight = Number(body.inFlight ?? 256);
          const tag = String(body.tag ?? "bp");
          if (!Number.isInteger(count) || count < 1 || count > countMax) {
            return send(res, 400, { error: `count: 1..${countMax}` });
          }
          if (!Number.isInteger(inFlight) || inFlight < 1 || inFlight > inFlightMax) {
            return send(res, 400, { error: `inFlight: 1..${inFlightMax}` });
          }
          if (!/^[a-z0-9-]{1,20}$/.test(tag))
            return send(res, 400, { error: "tag: [a-z0-9-]{1,20}" });
          const l = cluster.leadership();
          if (!l.isLeader) return send(res, 503, { error: "not the leader", leader: l.leaderId });
          send(res, 200, await proposeRun(cluster, count, inFlight, tag));
        } catch (err) {
          send(res, 400, { error: (err as Error).message });
        }
      })();
    },
  });
  process.stdout.write(
    `${JSON.stringify({ event: "listening", nodeId: cfg.nodeId, api: node.apiServer.address, peer: node.peerServer.address })}\n`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  await node.stop();
  return 0;
}

process.exitCode = await main();
