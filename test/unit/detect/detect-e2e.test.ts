/**
 * Failure detection end to end with real parts: real agent processes
 * streaming heartbeats over gRPC to a real server (ingest → detector →
 * proposals applied to the FSM of a single-node fake cluster), verdicts read
 * back through ComponentService, real timers and the system clock.
 *
 * - SIGKILL (process killed: the kernel closes the connection) and SIGSTOP
 *   (hung or unreachable host: the connection stays open, nothing arrives)
 *   are both DOWN within 1 s.
 * - A 200 ms stall of the coordinator's own event loop does not flag anyone.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { systemClock } from "../../../common/clock.ts";
import { createGrpcClient, type GrpcClient } from "../../../common/grpc-client.ts";
import { silentLogger } from "../../../common/log.ts";
import { type RpcServer, serve, startRpcServer } from "../../../common/rpc-server.ts";
import { createComponentService } from "../../../coordinator/src/api/component-service.ts";
import {
  createFailureDetector,
  type FailureDetector,
} from "../../../coordinator/src/detect/index.ts";
import { type AgentIngest, createAgentIngest } from "../../../coordinator/src/ingest/index.ts";
import { AgentService } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentService } from "../../../proto/gen/understudy/api/v1/component_service_pb.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { createFakeCluster, type FakeCluster } from "../ingest/fake-cluster.ts";

const agentScript = fileURLToPath(new URL("./fixtures/heartbeat-agent.ts", import.meta.url));

function startAgent(address: string, id: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", agentScript, address, id], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`agent ${id} not ready within 15 s`)), 15_000);
    child.stdout!.on("data", (b: Buffer) => {
      if (b.toString().includes("ready")) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`agent ${id} exited early (${code})`));
    });
  });
}

describe("detect: end to end with agent processes (real gRPC, real timers)", function () {
  this.timeout(40_000);
  let cluster: FakeCluster;
  let ingest: AgentIngest;
  let detector: FailureDetector;
  let server: RpcServer;
  let api: GrpcClient<typeof ComponentService>;
  const children: ChildProcess[] = [];

  before(async () => {
    cluster = createFakeCluster(systemClock);
    ingest = createAgentIngest({ cluster, clock: systemClock, log: silentLogger });
    detector = createFailureDetector({
      cluster,
      clock: systemClock,
      log: silentLogger,
      graceMs: 0,
    });
    ingest.onLiveness((id, hb) => detector.observe(id, hb));
    await ingest.start();
    detector.start();
    server = await startRpcServer({
      listen: "127.0.0.1:0",
      services: [
        serve(AgentService, ingest.service),
        serve(ComponentService, createComponentService({ cluster, ingest, clock: systemClock })),
      ],
    });
    api = createGrpcClient(ComponentService, server.address);
    children.push(
      ...(await Promise.all(
        ["edge-kill", "edge-stop", "edge-steady"].map((id) => startAgent(server.address, id)),
      )),
    );
  });

  after(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill("SIGCONT");
        c.kill("SIGKILL");
      }
    }
    api.close();
    detector.close();
    await ingest.close();
    await server.close(200);
  });

  const statusOf = async (id: string) =>
    (await api.getComponent({ componentId: id })).component?.status;

  /** Polls through the API until `id` is DOWN; returns ms from `sinceMs`. */
  const downAfter = async (id: string, sinceMs: number): Promise<number> => {
    for (let i = 0; i < 600; i++) {
      if ((await statusOf(id)) === ComponentStatus.DOWN) return performance.now() - sinceMs;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${id} never DOWN`);
  };

  it("all agents register and are HEALTHY while heartbeating", async () => {
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of ["edge-kill", "edge-stop", "edge-steady"]) {
      assert.equal(await statusOf(id), ComponentStatus.HEALTHY, id);
    }
  });

  it("a 200 ms stall of the coordinator's event loop flags nobody", async () => {
    const before = cluster.proposals.length;
    for (let k = 0; k < 3; k++) {
      const until = performance.now() + 200;
      while (performance.now() < until) {
        // Busy: the event loop (timers, sockets) is blocked like a GC pause.
      }
      await new Promise((r) => setTimeout(r, 700));
    }
    const flagged = cluster.proposals
      .slice(before)
      .filter((p) => p.op?.case === "updateComponentStatus");
    assert.deepEqual(flagged, []);
    assert.ok(
      detector.stats().stallTotalMs >= 500,
      `stall seen: ${detector.stats().stallTotalMs} ms`,
    );
  });

  it("a killed agent process is DOWN within 1 s", async () => {
    const child = children[0]!;
    const t0 = performance.now();
    child.kill("SIGKILL");
    const ms = await downAfter("edge-kill", t0);
    if (process.env.DETECT_E2E_VERBOSE) console.log(`DOWN after ${Math.round(ms)} ms`);
    assert.ok(ms <= 1000, `DOWN after ${Math.round(ms)} ms`);
  });

  it("a hung agent (SIGSTOP: connection open, nothing arrives) is DOWN within 1 s, HEALTHY after SIGCONT", async () => {
    const child = children[1]!;
    const t0 = performance.now();
    child.kill("SIGSTOP");
    const ms = await downAfter("edge-stop", t0);
    if (process.env.DETECT_E2E_VERBOSE) console.log(`DOWN after ${Math.round(ms)} ms`);
    assert.ok(ms <= 1000, `DOWN after ${Math.round(ms)} ms`);
    child.kill("SIGCONT");
    for (let i = 0; i < 400 && (await statusOf("edge-stop")) !== ComponentStatus.HEALTHY; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await statusOf("edge-stop"), ComponentStatus.HEALTHY);
    assert.equal(
      await statusOf("edge-steady"),
      ComponentStatus.HEALTHY,
      "the steady one never flapped",
    );
    const steadyChanges = cluster.proposals.filter(
      (p) => p.op?.case === "updateComponentStatus" && p.op.value.componentId === "edge-steady",
    );
    assert.deepEqual(steadyChanges, []);
  });
});
