/**
 * The browser entry end to end: nats.ws over a real nats-server websocket
 * listener, in a child Node process with a WebSocket global (Node 22+ has
 * one; Node 20 needs --experimental-websocket).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "nats";
import { handoverSubject } from "../../client-sdk/src/index.ts";
import { startNatsServer } from "../../common/nats-server.ts";
import { noticeBytes } from "./support.ts";

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("client-sdk: browser entry (nats.ws)", function () {
  this.timeout(30_000);

  it("receives a notice over NATS-over-WebSocket and probes browser globals", async () => {
    const dir = await mkdtemp(join(tmpdir(), "understudy-sdk-ws-"));
    const wsPort = await freePort();
    const conf = join(dir, "nats.conf");
    await writeFile(conf, `websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }\n`);
    const nats = await startNatsServer({ args: ["-c", conf] });
    const pub = await connect({ servers: nats.url });
    const child = spawn(
      process.execPath,
      [
        ...(typeof (globalThis as { WebSocket?: unknown }).WebSocket === "undefined"
          ? ["--experimental-websocket"]
          : []),
        "--import",
        "tsx",
        fileURLToPath(new URL("./browser-child.ts", import.meta.url)),
        `ws://127.0.0.1:${wsPort}`,
        "live-5",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: unknown[] = [];
    let stderr = "";
    let buf = "";
    child.stderr.on("data", (d) => {
      if (stderr.length < 8192) stderr += d;
    });
    const waitLine = (pred: (v: Record<string, unknown>) => boolean) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => pred(l as Record<string, unknown>));
          if (hit) resolve(hit as Record<string, unknown>);
        };
        child.stdout.on("data", (d: Buffer) => {
          buf += d.toString();
          let i = buf.indexOf("\n");
          while (i >= 0) {
            lines.push(JSON.parse(buf.slice(0, i)));
            buf = buf.slice(i + 1);
            i = buf.indexOf("\n");
          }
          check();
        });
        child.once("exit", (code) => {
          check();
          reject(
            new Error(`child exited ${code}; lines ${JSON.stringify(lines)}; stderr ${stderr}`),
          );
        });
        check();
      });
    try {
      await waitLine((l) => l.ready === true);
      pub.publish(
        handoverSubject("live-5"),
        noticeBytes({ streamId: "live-5", epoch: 3n, toOrigin: { baseUrl: "http://b:1" } }),
      );
      await pub.flush();
      const ev = await waitLine((l) => l.epoch !== undefined);
      assert.deepEqual(ev, { epoch: "3", via: "nats", to: "http://b:1" });
      const probe = await waitLine((l) => l.screenWidth !== undefined);
      assert.deepEqual(probe, {
        memoryUsedBytes: 12345,
        screenWidth: 2560,
        screenHeight: 1440,
        decodableCodecs: ["avc1.42e01e", "mp4a.40.2"],
      });
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await pub.close();
      await nats.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
