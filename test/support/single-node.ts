/**
 * A one-voter coordinator in this process, on loopback ports, with a temp
 * data dir: for tests of services that need real Raft commits but not a
 * whole cluster.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../common/config.ts";
import { createLogger, silentLogger } from "../../common/log.ts";
import { coordinatorConfigSchema } from "../../coordinator/src/runtime/config.ts";
import {
  type CoordinatorNode,
  type CoordinatorNodeDeps,
  startCoordinatorNode,
} from "../../coordinator/src/runtime/coordinator-node.ts";

export async function startSingleNode(
  extra: Record<string, unknown> = {},
  deps: Partial<CoordinatorNodeDeps> = {},
  /** Reuse a data directory (restart); a fresh temp dir otherwise. */
  reuseDir?: string,
): Promise<CoordinatorNode & { dir: string; cleanup(): Promise<void> }> {
  const dir = reuseDir ?? mkdtempSync(join(tmpdir(), "understudy-node-"));
  // A lone voter needs its own peer address before it listens: 0 works
  // because nobody dials it.
  const cfg = parseConfig(coordinatorConfigSchema, {
    nodeId: "c1",
    dataDir: join(dir, "data"),
    peerListen: "127.0.0.1:0",
    apiListen: "127.0.0.1:0",
    bootstrap: [{ id: "c1", peerAddress: "127.0.0.1:1", apiAddress: "127.0.0.1:1" }],
    raft: { tickMs: 10, electionTicks: 3 },
    seed: 1,
    ...extra,
  });
  // UNDERSTUDY_TEST_LOG=1 shows the node's log while debugging a test.
  const log = process.env.UNDERSTUDY_TEST_LOG
    ? createLogger({ test: "single-node" })
    : silentLogger;
  const node = await startCoordinatorNode(cfg, {
    log,
    softwareVersion: "test",
    ...deps,
  });
  const deadline = Date.now() + 5000;
  while (!node.cluster.leadership().isLeader) {
    if (Date.now() > deadline) throw new Error("single node did not become leader within 5 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  return Object.assign(node, {
    dir,
    async cleanup() {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}
