/**
 * `understudy source --config FILE` as a real process in real time (one short
 * run), plus config validation.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sinon from "sinon";
import { ConfigError } from "../../common/config.ts";
import { loadSourceConfig, main } from "../../packager-node/src/source/index.ts";
import { ingestPath, type Receiver, startReceiver } from "./receiver.ts";

const mainPath = fileURLToPath(new URL("../../packager-node/src/source/main.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

function spawnSource(configFile: string): ChildProcess {
  const code = `import(${JSON.stringify(mainPath)}).then(async (m) => process.exit(await m.main(process.argv.slice(1))))`;
  return spawn(process.execPath, ["--import", "tsx", "-e", code, "--", "--config", configFile], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, UNDERSTUDY_LOG_LEVEL: "warn" },
  });
}

function exitOf(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`process did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function firstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(
      () => reject(new Error(`no stdout line within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
  });
}

describe("understudy source (process)", function () {
  this.timeout(20_000);
  let tmp: string;
  let receiver: Receiver | undefined;
  let child: ChildProcess | undefined;

  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), "understudy-source-"));
  });
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    child = undefined;
    await receiver?.close();
    receiver = undefined;
    rmSync(tmp, { recursive: true, force: true });
  });

  it("pushes parts in real time when their media end is reached, serves /status, stops on SIGTERM", async () => {
    receiver = await startReceiver();
    const file = join(tmp, "source.yaml");
    // The origin is an arbitrary past instant: numbering comes from it alone.
    const originMs = Date.now() - 123_456;
    writeFileSync(
      file,
      [
        "streamId: rt",
        "encoderId: enc-rt",
        `timelineOriginMs: ${originMs}`,
        "pool: { index: 0, size: 1 }",
        `targets: [${receiver.url}]`,
        "renditions: [180p]",
        "status: { listen: '127.0.0.1:0' }",
      ].join("\n"),
    );
    child = spawnSource(file);
    const line = await firstLine(child, 10_000);
    const statusUrl = /^status (http:\/\/\S+)$/.exec(line)?.[1];
    assert.ok(statusUrl, line);
    const startedMs = Date.now();
    await new Promise((r) => setTimeout(r, 2_200));
    const status = (await (await fetch(statusUrl)).json()) as {
      encoderId: string;
      nextMsn: number;
      targets: { pushed: { part: number }; latencyMs: { samples: number }; errors: number }[];
    };
    assert.equal(status.encoderId, "enc-rt");
    assert.equal(status.nextMsn, Math.floor((Date.now() - originMs) / 2000));
    assert.ok(status.targets[0]!.pushed.part >= 3, JSON.stringify(status));
    assert.ok(status.targets[0]!.latencyMs.samples >= 4);
    assert.equal(status.targets[0]!.errors, 0);
    assert.equal((await fetch(statusUrl.replace("/status", "/healthz"))).status, 200);

    child.kill("SIGTERM");
    assert.equal(await exitOf(child, 5_000), 0);

    const parts = receiver.requests.filter((r) => /^\d+\.\d+\.m4s$/.test(ingestPath(r.path).name));
    assert.equal(ingestPath(receiver.requests[0]!.path).name, "init.mp4");
    let prev: number | undefined;
    for (const p of parts) {
      const [msn, part] = ingestPath(p.path).name.split(".").map(Number);
      const shard = msn! * 4 + part!;
      if (prev !== undefined) assert.equal(shard, prev + 1, "contiguous");
      prev = shard;
      const readyAtMs = originMs + (shard + 1) * 500;
      assert.ok(p.atMs >= readyAtMs - 5, `shard ${shard} arrived ${readyAtMs - p.atMs} ms early`);
      assert.ok(p.atMs <= readyAtMs + 750, `shard ${shard} arrived ${p.atMs - readyAtMs} ms late`);
      assert.ok(readyAtMs >= startedMs - 1_500, "starts from now, not from the origin");
    }
  });

  it("exits 2 naming the field for a bad config", async () => {
    const file = join(tmp, "bad.yaml");
    writeFileSync(
      file,
      "streamId: s\nencoderId: e\ntimelineOriginMs: 0\npool: { index: 2, size: 2 }\ntargets: [http://127.0.0.1:1]\n",
    );
    child = spawnSource(file);
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    assert.equal(await exitOf(child, 10_000), 2);
    assert.match(stderr, /bad\.yaml: pool\.index: must be < pool\.size \(2\), got 2/);
  });
});

describe("understudy source (config)", () => {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), "understudy-source-config-"));
  });
  afterEach(() => {
    sinon.restore();
    rmSync(tmp, { recursive: true, force: true });
  });

  const base = "streamId: s\nencoderId: e\ntimelineOriginMs: 1000\n";
  const problem = (yaml: string): string => {
    const file = join(tmp, "c.yaml");
    writeFileSync(file, yaml);
    try {
      loadSourceConfig(file);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return `${err.field}: ${err.problem}`;
    }
    return "accepted";
  };

  it("names the field of every kind of mistake", () => {
    assert.match(problem(base), /^pool: is required unless shardMap is given/);
    assert.match(
      problem(`${base}pool: { index: 0, size: 1 }\n`),
      /^targets: is required with pool/,
    );
    assert.match(
      problem(`${base}pool: { index: 0, size: 1 }\ntargets: [127.0.0.1:80]\n`),
      /^targets\[0\]: expected an http\(s\) base URL/,
    );
    assert.match(
      problem(
        `${base}pool: { index: 0, size: 1 }\nshardMap: { epoch: 1, ranges: [{ firstShard: 0, encoderId: e, replicaTargets: [http://a:1] }] }\n`,
      ),
      /^pool: not allowed together with shardMap/,
    );
    assert.match(
      problem(
        `${base}shardMap: { epoch: 1, ranges: [{ firstShard: 0, encoderId: e, replicaTargets: [http://a:1] }, { firstShard: 5, encoderId: f, replicaTargets: [http://a:1] }] }\n`,
      ),
      /^shardMap\.ranges\[0\]\.lastShard: only the last range may be open-ended/,
    );
    assert.match(
      problem(`${base}pool: { index: 0, size: 1, unit: frame }\ntargets: [http://a:1]\n`),
      /^pool\.unit: expected one of "segment", "shard"/,
    );
    assert.match(
      problem(
        `${base}pool: { index: 0, size: 1 }\ntargets: [http://a:1]\npush: { backoffBaseMs: 500, backoffMaxMs: 100 }\n`,
      ),
      /^push\.backoffMaxMs: must be >= push\.backoffBaseMs \(500\)/,
    );
    assert.match(
      problem(`${base}pool: { index: 0, size: 1 }\ntargets: [http://a:1]\npush: { retries: 3 }\n`),
      /^push\.retries: unknown field/,
    );
    assert.match(
      problem(`${base}pool: { index: 0, size: 1 }\ntargets: [http://a:1]\ntakeoverShardsMax: -1\n`),
      /^takeoverShardsMax: /,
    );
    assert.match(problem("streamId: 'a b'\n"), /^streamId: expected an id/);
  });

  it("accepts a full static config with defaults filled and a shard map config", () => {
    const file = join(tmp, "ok.yaml");
    writeFileSync(
      file,
      `${base}pool: { index: 1, size: 3 }\ntargets: [http://127.0.0.1:8080/]\nfixtureDir: fx\n`,
    );
    const c = loadSourceConfig(file);
    assert.deepEqual(c.assignment, {
      kind: "static",
      epoch: 1,
      pool: { index: 1, size: 3, unit: "segment" },
      targets: ["http://127.0.0.1:8080"],
    });
    assert.equal(c.fixtureDir, join(tmp, "fx"), "relative to the config file");
    assert.equal(c.push.maxAgeMs, 6000);
    assert.equal(c.segmentPush, "last-shard-owner");
    assert.equal(c.takeoverShardsMax, 16);
    assert.equal(
      problem(
        `${base}shardMap: { epoch: 4, ranges: [{ firstShard: 0, lastShard: 9, encoderId: e, replicaTargets: [http://a:1] }, { firstShard: 10, encoderId: f, replicaTargets: [http://a:1, http://b:2] }] }\n`,
      ),
      "accepted",
    );
  });

  it("main returns 2 for bad usage and a fixture that does not load", async () => {
    const err = sinon.stub(process.stderr, "write").returns(true);
    assert.equal(await main([]), 2);
    assert.equal(await main(["--config", "x.yaml", "--verbose"]), 2);
    assert.match(String(err.lastCall.args[0]), /unknown argument "--verbose"/);
    const file = join(tmp, "c.yaml");
    writeFileSync(
      file,
      `${base}pool: { index: 0, size: 1 }\ntargets: [http://a:1]\nfixtureDir: nowhere\n`,
    );
    assert.equal(await main([`--config=${file}`]), 2);
    assert.match(String(err.lastCall.args[0]), /c\.yaml: fixtureDir: cannot read .*nowhere/);
    writeFileSync(
      file,
      `${base}pool: { index: 0, size: 1 }\ntargets: [http://a:1]\nrenditions: [4k]\n`,
    );
    assert.equal(await main([`--config=${file}`]), 2);
    assert.match(String(err.lastCall.args[0]), /renditions: unknown rendition "4k"/);
  });
});
