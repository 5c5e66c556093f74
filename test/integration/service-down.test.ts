/**
 * Real processes: a coordinator node and a real `understudy agent` watching
 * a real service process through a pidfile. Killing the service (the agent
 * lives on) gets the component committed DOWN with a "service:" reason within
 * 1 s, over repeated trials; a new service process brings it back to HEALTHY;
 * the liveness detector never flips a service DOWN back while the agent
 * keeps heartbeating.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { ComponentStatus } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { understudyBin } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

async function waitFor(pred: () => boolean, what: string, timeoutMs: number) {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("a watched service dies while its agent lives (real processes)", function () {
  this.timeout(90_000);
  it("is committed DOWN within 1 s in every trial, HEALTHY again when it restarts, and stays DOWN meanwhile", async () => {
    const node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
    });
    const dir = mkdtempSync(join(tmpdir(), "understudy-agent-"));
    const pidfile = join(dir, "service.pid");
    let service: ChildProcess = spawn("sleep", ["300"], { stdio: "ignore" });
    writeFileSync(pidfile, `${service.pid}\n`);
    const cfg = join(dir, "agent.yaml");
    writeFileSync(
      cfg,
      stringify({
        component: { id: "pkg-1", role: "packager" },
        coordinator: { addresses: [node.apiServer.address] },
        sampling: { intervalMs: 1000, heartbeatIntervalMs: 250 },
        watch: { pidfile },
        logLevel: "warn",
      }),
    );
    const agent = spawn(process.execPath, [understudyBin, "agent", "--config", cfg], {
      stdio: "ignore",
    });
    const status = () => node.cluster.fsm.component("pkg-1")?.status;
    const took: number[] = [];
    try {
      await waitFor(() => status() === ComponentStatus.HEALTHY, "registration", 20_000);
      await new Promise((r) => setTimeout(r, 1500)); // the agent has sampled the service
      for (let trial = 0; trial < 5; trial++) {
        const t0 = Date.now();
        service.kill("SIGKILL");
        await waitFor(() => status() === ComponentStatus.DOWN, `DOWN (trial ${trial})`, 5000);
        took.push(Date.now() - t0);
        assert.match(node.cluster.fsm.component("pkg-1")!.statusReason, /^service: /);
        // The agent keeps heartbeating: the liveness detector must not undo it.
        await new Promise((r) => setTimeout(r, 600));
        assert.equal(status(), ComponentStatus.DOWN);
        service = spawn("sleep", ["300"], { stdio: "ignore" });
        writeFileSync(pidfile, `${service.pid}\n`);
        await waitFor(
          () => status() === ComponentStatus.HEALTHY,
          `HEALTHY again (trial ${trial})`,
          5000,
        );
        await new Promise((r) => setTimeout(r, 1200));
      }
      took.sort((a, b) => a - b);
      console.log(
        `    service SIGKILL → DOWN over ${took.length} trials: p50 ${took[Math.ceil(took.length / 2) - 1]} ms, max ${took.at(-1)} ms`,
      );
      assert.ok(
        took.at(-1)! < 1000,
        `detection times ${took.join(", ")} ms: the slowest is over 1 s`,
      );
    } finally {
      agent.kill("SIGKILL");
      service.kill("SIGKILL");
      await node.cleanup();
    }
  });
});
