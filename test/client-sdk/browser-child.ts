/**
 * Child process for browser-entry.test.ts: the browser entry (nats.ws over
 * WebSocket) in a Node that has a WebSocket global. Prints one JSON line per
 * step on stdout: {"ready":true}, then the handover event, then the
 * platform probe's sample against stubbed browser globals.
 *
 *   node [--experimental-websocket] --import tsx browser-child.ts <ws-url> <stream-id>
 */
import {
  createBrowserPlatformProbe,
  createUnderstudyClient,
} from "../../client-sdk/src/browser.ts";

const [wsUrl, streamId] = process.argv.slice(2) as [string, string];
const out = (v: unknown) =>
  process.stdout.write(
    `${JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x))}\n`,
  );
const timer = setTimeout(() => {
  out({ error: "timed out" });
  process.exit(3);
}, 15_000);

const client = createUnderstudyClient({ streamId, natsServers: [wsUrl] });
for await (const ev of client.events()) {
  if (ev.type === "connection" && ev.transport === "nats" && ev.status === "connected") {
    out({ ready: true });
  }
  if (ev.type === "handover") {
    out({ epoch: ev.notice.epoch, via: ev.via, to: ev.notice.toOrigin?.baseUrl });
    break;
  }
}
await client.close();

const g = globalThis as Record<string, unknown>;
g.screen = { width: 1280, height: 720 };
g.devicePixelRatio = 2;
g.MediaSource = { isTypeSupported: (t: string) => t.includes("avc1") || t.includes("mp4a") };
Object.defineProperty(performance, "memory", {
  value: { usedJSHeapSize: 12345 },
  configurable: true,
});
out(createBrowserPlatformProbe(["avc1.42e01e", "hvc1.1.6.L93.B0", "mp4a.40.2"]).sample());
clearTimeout(timer);
