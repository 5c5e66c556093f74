import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "./helpers.ts";

const MAIN = new URL("../../packager-node/src/main.ts", import.meta.url).pathname;

/** Runs `understudy packager <args>` as its own process (main.ts through tsx). */
function runPackager(args: string[]): ChildProcess {
  return spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "-e",
      `import(${JSON.stringify(MAIN)}).then(async (m) => { process.exitCode = await m.main(${JSON.stringify(args)}); })`,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, UNDERSTUDY_LOG_LEVEL: "error" } },
  );
}

function exitOf(
  child: ChildProcess,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => {
    stdout += d;
  });
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`packager did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("understudy packager (process)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "understudy-pkg-cli-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("exits 2 naming the file and the dotted field of a bad config", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(
      file,
      "nodeId: pkg-1\nmode: origin\nlisten: 127.0.0.1:0\nstreams:\n  - id: s1\n    renditions:\n      - id: 720p\n        bandwidth: fast\n        codecs: avc1.64001f\n",
    );
    const r = await exitOf(runPackager(["--config", file]), 20_000);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /bad\.yaml: streams\[0\]\.renditions\[0\]\.bandwidth: expected an integer/,
    );
    const missing = await exitOf(runPackager([]), 20_000);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config FILE is required/);
  });

  it("serves until SIGTERM, then exits 0", async () => {
    const file = join(dir, "good.yaml");
    await writeFile(
      file,
      [
        "nodeId: pkg-1",
        "mode: origin",
        "listen: 127.0.0.1:0",
        "streams:",
        "  - id: s1",
        "    renditions:",
        "      - { id: 720p, bandwidth: 3000000, codecs: avc1.64001f, resolution: 1280x720 }",
        "",
      ].join("\n"),
    );
    const child = runPackager(["--config", file]);
    const exited = exitOf(child, 30_000);
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/[0-9.]+:\d+)/.exec(out);
        if (m) {
          child.stdout!.off("data", onData);
          resolve(m[1]!);
        }
      };
      child.stdout!.on("data", onData);
      child.once("exit", () => reject(new Error(`exited early: ${out}`)));
    });
    assert.equal((await request(`${url}/healthz`)).status, 200);
    assert.equal((await request(`${url}/live/s1/master.m3u8`)).status, 200);
    child.kill("SIGTERM");
    const r = await exited;
    assert.equal(r.code, 0, r.stderr);
  });
});
