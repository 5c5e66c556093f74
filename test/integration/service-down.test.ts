/**
 * Real processes: a coordinator node, a real `understudy agent` watching a
 * real service process by pid. Killing the service (the agent lives on) gets
 * the component committed DOWN with a "service:" reason; the failure
 * detector does not flip it back while the agent keeps heartbeating.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("a watched service dies while its agent lives (real processes)", function () {
  this.timeout(40_000);
  it("the component is committed DOWN within ~2 s and stays DOWN", async () => {
    const node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
    });
    const service = spawn("sleep", ["120"], { stdio: "ignore" });
    const dir = mkdtempSync(join(tmpdir(), "understudy-agent-"));
    const cfg = join(dir, "agent.yaml");
    writeFileSync(
      cfg,
      stringify({
        component: { id: "pkg-1", role: "packager" },
        coordinator: { addresses: [node.apiServer.address] },
        sampling: { intervalMs: 500, heartbeatIntervalMs: 250 },
        watch: { pid: service.pid },
        logLevel: "warn",
      }),
    );
    const agent = spawn(process.execPath, [understudyBin, "agent", "--config", cfg], {
      stdio: "ignore",
    });
    try {
      await waitFor(
        () => node.cluster.fsm.component("pkg-1")?.status === ComponentStatus.HEALTHY,
        "registration",
        20_000,
      );
      const t0 = Date.now();
      service.kill("SIGKILL");
      await waitFor(
        () => node.cluster.fsm.component("pkg-1")?.status === ComponentStatus.DOWN,
        "DOWN",
        5000,
      );
      const tookMs = Date.now() - t0;
      assert.match(node.cluster.fsm.component("pkg-1")!.statusReason, /^service: /);
      assert.ok(tookMs < 2500, `took ${tookMs} ms`);
      // The agent keeps heartbeating: the liveness detector must not undo it.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(node.cluster.fsm.component("pkg-1")?.status, ComponentStatus.DOWN);
    } finally {
      agent.kill("SIGKILL");
      service.kill("SIGKILL");
      await node.cleanup();
    }
  });
});
