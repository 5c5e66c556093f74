import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type CommandRunner,
  createDirectiveExecutor,
  createServiceControl,
  type ServiceEntry,
} from "../../agent/src/index.ts";
import { systemClock } from "../../common/clock.ts";
import { createLogger, silentLogger } from "../../common/log.ts";
import { DirectiveKind, DirectiveSchema } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";

/** Records systemctl invocations (no systemd as PID 1 here) and answers like systemctl would. */
function recordingRunner(fail?: (args: readonly string[]) => string | undefined) {
  const calls: { file: string; args: readonly string[] }[] = [];
  const runner: CommandRunner = {
    async run(file, args) {
      calls.push({ file, args: [...args] });
      const err = fail?.(args);
      return err ? { code: 5, stdout: "", stderr: err } : { code: 0, stdout: "", stderr: "" };
    },
  };
  return { runner, calls };
}

const directive = (d: MessageInitShape<typeof DirectiveSchema>) => create(DirectiveSchema, d);
const from = { term: 3n, clockOffsetMs: 0 };

function setup(
  services: Record<string, ServiceEntry>,
  opts: {
    fail?: (args: readonly string[]) => string | undefined;
    drain?: () => Promise<string>;
  } = {},
) {
  const rec = recordingRunner(opts.fail);
  const logs: string[] = [];
  const logger = createLogger({}, { write: (l) => logs.push(l), level: "info" });
  const intervals: number[] = [];
  const exec = createDirectiveExecutor({
    services,
    control: createServiceControl({ runner: rec.runner, clock: systemClock, logger: silentLogger }),
    hooks: {
      setSamplingIntervalMs: (ms) => intervals.push(ms),
      drain:
        opts.drain ??
        (async () => {
          throw new Error("no drain action configured on this agent (drainUrl)");
        }),
    },
    intervalMsMin: 200,
    intervalMsMax: 60_000,
    clock: systemClock,
    logger,
  });
  exec.observeTerm(3n);
  return { exec, calls: rec.calls, logs, intervals };
}

describe("agent directives", () => {
  it("starts and stops an allowlisted unit with exactly `systemctl start|stop -- UNIT`", async () => {
    const { exec, calls } = setup({ standby: { unit: "understudy-packager@std-1.service" } });
    const r1 = await exec.execute(
      directive({ directiveId: "d1", kind: DirectiveKind.START_SERVICE, service: "standby" }),
      from,
    );
    const r2 = await exec.execute(
      directive({ directiveId: "d2", kind: DirectiveKind.STOP_SERVICE, service: "standby" }),
      from,
    );
    assert.equal(r1.ok, true, r1.message);
    assert.equal(r1.directiveId, "d1");
    assert.ok(r1.finishedUnixMs > 0n);
    assert.equal(r2.ok, true, r2.message);
    assert.deepEqual(calls, [
      { file: "systemctl", args: ["start", "--", "understudy-packager@std-1.service"] },
      { file: "systemctl", args: ["stop", "--", "understudy-packager@std-1.service"] },
    ]);
  });

  it("accepts the unit name of an allowlisted entry as the service", async () => {
    const { exec, calls } = setup({ standby: { unit: "understudy-packager@std-1.service" } });
    const r = await exec.execute(
      directive({
        directiveId: "d1",
        kind: DirectiveKind.START_SERVICE,
        service: "understudy-packager@std-1.service",
      }),
      from,
    );
    assert.equal(r.ok, true, r.message);
    assert.equal(calls.length, 1);
  });

  it("refuses, logs and reports anything not in the allowlist, running nothing", async () => {
    const { exec, calls, logs } = setup({ standby: { unit: "understudy-packager@std-1.service" } });
    const attempts = [
      "sshd.service",
      "standby; rm -rf /",
      "../standby",
      "understudy-packager@std-2.service",
      "/bin/sh",
      "",
    ];
    for (const [i, service] of attempts.entries()) {
      const r = await exec.execute(
        directive({ directiveId: `x${i}`, kind: DirectiveKind.START_SERVICE, service }),
        from,
      );
      assert.equal(r.ok, false, service);
      assert.match(r.message, /not in this agent's allowlist/);
    }
    const stop = await exec.execute(
      directive({ directiveId: "y", kind: DirectiveKind.STOP_SERVICE, service: "sshd.service" }),
      from,
    );
    assert.equal(stop.ok, false);
    assert.deepEqual(calls, [], "no command may run for a refused directive");
    assert.equal(logs.filter((l) => l.includes("directive refused")).length, attempts.length + 1);
  });

  it("is idempotent per (directive_id, epoch): a repeat returns the recorded result without re-running", async () => {
    let n = 0;
    const { exec, calls } = setup(
      { standby: { unit: "a.service" } },
      { fail: () => (++n === 2 ? "boom" : undefined) },
    );
    const d = directive({
      directiveId: "same",
      epoch: 4n,
      streamId: "s1",
      kind: DirectiveKind.START_SERVICE,
      service: "standby",
    });
    const [a, b] = await Promise.all([exec.execute(d, from), exec.execute(d, from)]);
    const c = await exec.execute(d, from);
    assert.equal(calls.length, 1);
    assert.equal(a, b);
    assert.equal(a, c);
    assert.equal(a.ok, true);
    // A different epoch is a different directive.
    const e = await exec.execute(directive({ ...d, epoch: 5n }), from);
    assert.equal(calls.length, 2);
    assert.equal(e.ok, false);
    assert.match(e.message, /systemctl start a.service failed: boom/);
  });

  it("refuses epochs older than the highest executed for the stream", async () => {
    const { exec, calls } = setup({ standby: { unit: "a.service" } });
    const ok = await exec.execute(
      directive({
        directiveId: "e7",
        epoch: 7n,
        streamId: "s1",
        kind: DirectiveKind.START_SERVICE,
        service: "standby",
      }),
      from,
    );
    assert.equal(ok.ok, true);
    const old = await exec.execute(
      directive({
        directiveId: "e6",
        epoch: 6n,
        streamId: "s1",
        kind: DirectiveKind.STOP_SERVICE,
        service: "standby",
      }),
      from,
    );
    assert.equal(old.ok, false);
    assert.match(old.message, /stale epoch 6 for stream s1 \(highest executed 7\)/);
    const other = await exec.execute(
      directive({
        directiveId: "e1",
        epoch: 1n,
        streamId: "s2",
        kind: DirectiveKind.STOP_SERVICE,
        service: "standby",
      }),
      from,
    );
    assert.equal(other.ok, true, "epochs are per stream");
    assert.equal(calls.length, 2);
  });

  it("refuses directives from an older leader term without recording them", async () => {
    const { exec, calls } = setup({ standby: { unit: "a.service" } });
    exec.observeTerm(5n);
    const d = directive({
      directiveId: "t1",
      kind: DirectiveKind.START_SERVICE,
      service: "standby",
    });
    const stale = await exec.execute(d, { term: 4n, clockOffsetMs: 0 });
    assert.equal(stale.ok, false);
    assert.match(stale.message, /stale leader term 4/);
    const fresh = await exec.execute(d, { term: 5n, clockOffsetMs: 0 });
    assert.equal(fresh.ok, true, "the current leader re-sending the same id must still run it");
    assert.equal(calls.length, 1);
  });

  it("bounds SET_SAMPLING_INTERVAL", async () => {
    const { exec, intervals } = setup({});
    const ok = await exec.execute(
      directive({ directiveId: "i1", kind: DirectiveKind.SET_SAMPLING_INTERVAL, intervalMs: 500 }),
      from,
    );
    const low = await exec.execute(
      directive({ directiveId: "i2", kind: DirectiveKind.SET_SAMPLING_INTERVAL, intervalMs: 100 }),
      from,
    );
    const high = await exec.execute(
      directive({
        directiveId: "i3",
        kind: DirectiveKind.SET_SAMPLING_INTERVAL,
        intervalMs: 600_000,
      }),
      from,
    );
    assert.equal(ok.ok, true);
    assert.equal(low.ok, false);
    assert.match(low.message, /outside the allowed 200\.\.60000/);
    assert.equal(high.ok, false);
    assert.deepEqual(intervals, [500]);
  });

  it("refuses past deadlines, unknown kinds and malformed ids; DRAIN without drainUrl answers ok=false", async () => {
    const { exec, calls } = setup({ standby: { unit: "a.service" } });
    const late = await exec.execute(
      directive({
        directiveId: "late",
        kind: DirectiveKind.START_SERVICE,
        service: "standby",
        deadlineUnixMs: BigInt(Date.now() - 1000),
      }),
      from,
    );
    assert.equal(late.ok, false);
    assert.match(late.message, /deadline/);
    // The same deadline read with the coordinator's clock 5 s behind ours is still ahead.
    const skewed = await exec.execute(
      directive({
        directiveId: "skew",
        kind: DirectiveKind.START_SERVICE,
        service: "standby",
        deadlineUnixMs: BigInt(Date.now() - 1000),
      }),
      { term: 3n, clockOffsetMs: 5000 },
    );
    assert.equal(skewed.ok, true, skewed.message);
    const unknown = await exec.execute(
      directive({ directiveId: "u", kind: DirectiveKind.UNSPECIFIED }),
      from,
    );
    assert.equal(unknown.ok, false);
    const badId = await exec.execute(
      directive({ directiveId: "bad id!", kind: DirectiveKind.START_SERVICE, service: "standby" }),
      from,
    );
    assert.equal(badId.ok, false);
    const drain = await exec.execute(
      directive({ directiveId: "dr", kind: DirectiveKind.DRAIN }),
      from,
    );
    assert.equal(drain.ok, false);
    assert.match(drain.message, /no drain action configured/);
    assert.equal(calls.length, 1);
  });

  describe("argv services (real processes)", () => {
    let dir: string;
    const pids: number[] = [];
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "understudy-agent-svc-"));
    });
    afterEach(() => {
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it("spawns the exact configured argv detached, treats a repeat start as running, and stops it", async () => {
      const marker = join(dir, "started");
      const script = `require("fs").writeFileSync(${JSON.stringify(marker)}, process.argv.slice(1).join(" ")); setInterval(() => {}, 1000);`;
      const { exec } = setup({
        worker: { argv: [process.execPath, "-e", script, "a b", "$HOME"] },
      });
      const r = await exec.execute(
        directive({ directiveId: "s1", kind: DirectiveKind.START_SERVICE, service: "worker" }),
        from,
      );
      assert.equal(r.ok, true, r.message);
      const pid = Number(/pid (\d+)/.exec(r.message)?.[1]);
      pids.push(pid);
      for (let i = 0; i < 100 && !existsSync(marker); i++)
        await new Promise((res) => setTimeout(res, 20));
      // No shell: arguments arrive verbatim, nothing is expanded.
      assert.equal(readFileSync(marker, "utf8"), "a b $HOME");
      const again = await exec.execute(
        directive({ directiveId: "s2", kind: DirectiveKind.START_SERVICE, service: "worker" }),
        from,
      );
      assert.equal(again.ok, true);
      assert.match(again.message, new RegExp(`already running \\(pid ${pid}\\)`));
      const stop = await exec.execute(
        directive({ directiveId: "s3", kind: DirectiveKind.STOP_SERVICE, service: "worker" }),
        from,
      );
      assert.equal(stop.ok, true, stop.message);
      // Stopped means no longer running; the kernel entry goes once Node reaps the child.
      const gone = () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      };
      for (let i = 0; i < 50 && !gone(); i++) await new Promise((res) => setTimeout(res, 20));
      assert.ok(gone(), "process must be gone");
      const stopAgain = await exec.execute(
        directive({ directiveId: "s4", kind: DirectiveKind.STOP_SERVICE, service: "worker" }),
        from,
      );
      assert.equal(stopAgain.ok, true);
      assert.match(stopAgain.message, /not running/);
    });

    it("reports a service that cannot start or exits at once as failed", async () => {
      const { exec } = setup({
        missing: { argv: [join(dir, "no-such-binary")] },
        // /bin/false exits within a millisecond, well inside the start settle window.
        crashing: { argv: ["/bin/false"] },
      });
      const a = await exec.execute(
        directive({ directiveId: "m", kind: DirectiveKind.START_SERVICE, service: "missing" }),
        from,
      );
      assert.equal(a.ok, false);
      assert.match(a.message, /ENOENT|could not start/);
      const b = await exec.execute(
        directive({ directiveId: "c", kind: DirectiveKind.START_SERVICE, service: "crashing" }),
        from,
      );
      assert.equal(b.ok, false);
      assert.match(b.message, /exited at once \(code 1\)/);
    });

    it("stops a process found through its pidfile (started before this agent)", async () => {
      const { spawn } = await import("node:child_process");
      const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
        detached: true,
        stdio: "ignore",
      });
      child.unref();
      pids.push(child.pid!);
      const pidfile = join(dir, "w.pid");
      writeFileSync(pidfile, `${child.pid}\n`);
      await new Promise((r) => setTimeout(r, 100));
      const { exec } = setup({ worker: { argv: [process.execPath, "-e", ""], pidfile } });
      const stop = await exec.execute(
        directive({ directiveId: "p", kind: DirectiveKind.STOP_SERVICE, service: "worker" }),
        from,
      );
      assert.equal(stop.ok, true, stop.message);
      assert.match(stop.message, new RegExp(`stopped worker \\(pid ${child.pid}\\)`));
    });
  });
});
