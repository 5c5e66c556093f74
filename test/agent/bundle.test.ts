/**
 * The shipped agent: common/bin/build-agent.mjs bundles it into one file,
 * which then runs as a real process with plain node (no tsx, NODE_OPTIONS
 * cleared) from a temp dir with no node_modules or package.json anywhere
 * above it, as on a host, against a real gRPC receiver (coordinator-stub.ts).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { SourceMap, type SourceMapPayload } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProbeKind } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { type CoordinatorStub, startCoordinatorStub } from "./coordinator-stub.ts";

const repo = join(import.meta.dirname, "../..");
const version = (
  JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { version: string }
).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs to completion; bounded by timeoutMs (then SIGKILL and a failure). */
function runToEnd(args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env: cleanEnv() });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} did not finish within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The environment without anything that would load tsx into the child. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

describe("agent bundle (common/bin/build-agent.mjs)", function () {
  this.timeout(30_000);
  let dir: string;
  let bundle: string;
  const children: ChildProcess[] = [];
  const stubs: CoordinatorStub[] = [];
  const servers: Server[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-agent-bundle-"));
    const build = await runToEnd(
      [join(repo, "common/bin/build-agent.mjs"), "--outdir", join(dir, "opt")],
      repo,
      25_000,
    );
    assert.equal(build.code, 0, build.stderr);
    bundle = join(dir, "opt", "understudy-agent.mjs");
  });

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
    for (const s of stubs.splice(0)) await s.close();
    for (const s of servers.splice(0)) s.close();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes the bundle, a source map into the repository's files, and the bundled licenses", () => {
    for (const f of ["understudy-agent.mjs.map", "understudy-agent.licenses.txt"]) {
      assert.ok(existsSync(join(dir, "opt", f)), `missing ${f}`);
    }
    const code = readFileSync(bundle, "utf8");
    assert.match(code, /sourceMappingURL=understudy-agent\.mjs\.map/);
    // The map resolves bundle positions to repository files and lines (read
    // next to the bundle: /opt/understudy/agent/src/main.ts on a host).
    const anchor = "--config FILE is required";
    const at = code.indexOf(anchor);
    assert.ok(at >= 0, `"${anchor}" not in the bundle`);
    const before = code.slice(0, at);
    const payload = JSON.parse(
      readFileSync(join(dir, "opt", "understudy-agent.mjs.map"), "utf8"),
    ) as SourceMapPayload;
    // Only our own files: node expands every mapping in memory on the first
    // mapped stack, which for the whole bundle cost ~24 MB (build-agent.mjs).
    assert.deepEqual(
      payload.sources.filter((f) => !/^(agent|common|proto\/gen)\//.test(f)),
      [],
    );
    const map = new SourceMap(payload);
    const entry = map.findEntry(before.split("\n").length - 1, at - before.lastIndexOf("\n") - 1);
    assert.ok("originalSource" in entry, "no mapping at the anchor");
    assert.equal(entry.originalSource, "agent/src/main.ts");
    const mainLines = readFileSync(join(repo, "agent/src/main.ts"), "utf8").split("\n");
    assert.ok(mainLines[entry.originalLine]!.includes(anchor), `line ${entry.originalLine + 1}`);

    const licenses = readFileSync(join(dir, "opt", "understudy-agent.licenses.txt"), "utf8");
    for (const p of ["@grpc/grpc-js", "systeminformation", "yaml", "@bufbuild/protobuf"]) {
      assert.match(licenses, new RegExp(`^${p} \\d`, "m"), `no license entry for ${p}`);
    }
  });

  it("says Hello with the build's version, streams host and probe reports, reconnects; SIGTERM exits 0", async () => {
    const stub = await startCoordinatorStub();
    stubs.push(stub);
    const http = createServer((_req, res) => res.writeHead(200).end("ok"));
    servers.push(http);
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const config = join(dir, "agent.yaml");
    writeFileSync(
      config,
      [
        "component: { id: pkg-bundle-1, role: origin }",
        `coordinator: { addresses: ["${stub.address}"] }`,
        "sampling: { intervalMs: 200, heartbeatIntervalMs: 100, source: procfs }",
        `probes: { http: [{ name: origin, url: "http://127.0.0.1:${(http.address() as AddressInfo).port}/healthz" }] }`,
        `watch: { pid: ${process.pid} }`,
        `dataDir: ${join(dir, "data")}`,
        "logLevel: warn",
      ].join("\n"),
    );
    // As the systemd unit runs it: from its own directory, with source maps.
    const child = spawn(process.execPath, ["--enable-source-maps", bundle, "--config", config], {
      cwd: join(dir, "opt"),
      env: cleanEnv(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(child);
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once("exit", r));
    const alive = () => {
      // A bundle that cannot start fails here with its own message, not a timeout.
      if (child.exitCode !== null) assert.fail(`the bundle exited ${child.exitCode}:\n${stderr}`);
    };

    await stub.waitFor(
      "Hello from the bundled agent",
      () => {
        alive();
        return stub.state.hellos.length > 0;
      },
      15_000,
    );
    const hello = stub.state.hellos[0]!;
    assert.equal(hello.componentId, "pkg-bundle-1");
    assert.equal(hello.softwareVersion, `understudy-agent ${version}`);
    const reports = () =>
      (stub.state.received.get(hello.agentInstanceId) ?? []).filter((r) => !r.heartbeatOnly);
    await stub.waitFor(
      "3 reports with samples",
      () => {
        alive();
        return reports().length >= 3;
      },
      10_000,
    );
    const last = reports().at(-1)!.report;
    const names = new Set(last.samples.map((m) => m.name));
    for (const n of ["cpu.load", "mem.available_bytes", "proc.rss_bytes"]) {
      assert.ok(names.has(n), `missing ${n} in [${[...names].join(", ")}]`);
    }
    assert.ok(
      reports().some((r) => r.report.probes.some((p) => p.kind === ProbeKind.HTTP && p.ok)),
      "no successful HTTP probe result",
    );

    // A leader change ends the stream: the bundled grpc-js error path (and,
    // with source maps on, the first mapped stack) runs, the agent says Hello
    // again and resumes with no gap.
    stub.endStreams();
    const resumedAfter = reports().length;
    await stub.waitFor(
      "a second Hello and reports after it",
      () => {
        alive();
        return stub.state.hellos.length >= 2 && reports().length >= resumedAfter + 2;
      },
      10_000,
    );
    assert.equal(stub.state.gaps, 0);
    assert.equal(stub.state.duplicates, 0);

    child.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    assert.doesNotMatch(stderr, /"level":"error"/);
  });

  it("--check: a valid config exits 0; a bad field exits 2 naming it", async () => {
    const good = await runToEnd(
      [bundle, "--config", join(repo, "deploy/examples/agent.yaml"), "--check"],
      dir,
      10_000,
    );
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /agent\.yaml: valid/);

    const badFile = join(dir, "bad.yaml");
    writeFileSync(
      badFile,
      "component: { id: x-1, role: origin }\ncoordinator: { addresses: [a:1] }\nsampling: { intervalMs: fast }\n",
    );
    const bad = await runToEnd([bundle, "--config", badFile, "--check"], dir, 10_000);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /sampling\.intervalMs/);
  });
});
