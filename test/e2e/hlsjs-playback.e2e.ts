/**
 * Acceptance ("Live data plane"): a real hls.js in headless Chromium plays a
 * stream served by a real packager-node process fed by a real looping
 * `understudy source` process. Run with `npm run test:browser`; see
 * test/e2e/README.md. Needs /usr/bin/chromium (Debian package `chromium`).
 *
 * Always proven: hls.js parsed our multivariant and LL-HLS media playlists
 * (MANIFEST_PARSED with both levels) and fetched media in timeline order
 * with no hole (FRAG_LOADED for segments and parts, contiguous MSN/part).
 * When the browser can decode H.264 + AAC (MediaSource.isTypeSupported), it
 * must also play: currentTime advances ≥ 4 s over ~6 s of wall time with no
 * stall, one buffered range, and no parsing or append error. A browser build
 * without those codecs cannot decode the fixture: the test then says so in
 * its output rather than pretending playback was checked.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { launchChromium, type TestBrowser } from "../support/browser.ts";
import { span } from "./live-playlists.ts";
import {
  closedSegments,
  createRun,
  type E2ERun,
  freePorts,
  getText,
  loopMs,
  type PackagerProc,
  sleep,
  startStaticPackager,
  startStaticSource,
  timelineOriginMs,
  waitUntil,
} from "./support.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
const hlsJsPath = fileURLToPath(
  new URL("../../node_modules/hls.js/dist/hls.min.js", import.meta.url),
);

interface Load {
  sn: number;
  part: number | null;
  level: number;
  url: string;
  atMs: number;
}
interface Observations {
  hlsVersion: string;
  mseSupported: boolean;
  codecsSupported: boolean;
  levels: { width: number; height: number; bitrate: number; codecs: string; url: string }[] | null;
  loads: Load[];
  errors: { type: string; details: string; fatal: boolean; reason: string; atMs: number }[];
  waiting: number;
  playing: number;
  playError: string | null;
}

/** Serves the player page and hls.js from this process (a different origin from the packager, as in production). */
async function startPageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const page = readFileSync(join(here, "player.html"));
  const hlsJs = readFileSync(hlsJsPath);
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/" || path === "/player.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page);
    } else if (path === "/hls.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(hlsJs);
    } else if (path === "/favicon.ico") {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Position of a load on the timeline in parts (a whole segment covers partsPerSegment). */
const spanOf = (l: Load) => span({ msn: l.sn, part: l.part, gap: false });

/**
 * The few browser globals the page functions below touch. The project
 * type-checks against Node's lib only (no DOM), so they are declared here
 * and reached through globalThis inside page.evaluate.
 */
interface PageGlobals {
  __obs: Observations;
  __hls: { playingDate: Date | null };
  document: {
    getElementById(id: string): {
      currentTime: number;
      paused: boolean;
      readyState: number;
      buffered: { length: number; start(i: number): number; end(i: number): number };
    };
  };
  MediaSource: { isTypeSupported(type: string): boolean };
}

const observe = (page: Page) => page.evaluate(() => (globalThis as unknown as PageGlobals).__obs);
const videoState = (page: Page) =>
  page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals;
    const v = g.document.getElementById("video");
    const ranges: [number, number][] = [];
    for (let i = 0; i < v.buffered.length; i++)
      ranges.push([v.buffered.start(i), v.buffered.end(i)]);
    return {
      currentTime: v.currentTime,
      paused: v.paused,
      readyState: v.readyState,
      ranges,
      /** Wall time of the sample at the playhead (EXT-X-PROGRAM-DATE-TIME), or null. */
      playingDateMs: g.__hls.playingDate?.getTime() ?? null,
    };
  });

describe("hls.js in headless Chromium plays a packager-node stream fed by `understudy source`", function () {
  this.timeout(120_000);
  const streamId = "demo";
  let run: E2ERun;
  let packager: PackagerProc;
  let pageServer: Awaited<ReturnType<typeof startPageServer>>;
  let browser: TestBrowser;
  let originMs: number;

  before(async () => {
    run = createRun("hlsjs");
    const [port] = await freePorts(1);
    originMs = timelineOriginMs();
    packager = await startStaticPackager(run, "pkg-1", port!, streamId);
    await startStaticSource(run, {
      encoderId: "enc-0",
      streamId,
      originMs,
      index: 0,
      size: 1,
      unit: "segment",
      targets: [packager.url],
    });
    // Start the player once the live window holds a few segments, as a viewer joining a running stream would.
    await waitUntil("3 closed segments in the 360p playlist", 30_000, async () => {
      const r = await getText(`${packager.url}/live/${streamId}/360p/index.m3u8`);
      return r.status === 200 && closedSegments(r.text) >= 3 ? true : undefined;
    });
    pageServer = await startPageServer();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await pageServer?.close();
    await run?.cleanup();
  });

  it("parses our playlists, fetches media in order and (with H.264/AAC) plays without a stall", async () => {
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    const failedResponses: string[] = [];
    page.on("response", (r) => {
      if (r.status() >= 400) failedResponses.push(`${r.status()} ${r.url()}`);
    });
    if (process.env.UNDERSTUDY_E2E_ASSUME_NO_H264 === "1") {
      // Rehearses the path of a Chromium build without proprietary codecs on a machine that has them.
      await page.addInitScript(() => {
        const ms = (globalThis as unknown as PageGlobals).MediaSource;
        const real = ms.isTypeSupported.bind(ms);
        ms.isTypeSupported = (t: string) => !/avc1|mp4a/.test(t) && real(t);
      });
    }
    const src = `${packager.url}/live/${streamId}/master.m3u8`;
    await page.goto(`${pageServer.url}/?src=${encodeURIComponent(src)}`);

    // 1. hls.js parsed the multivariant playlist: both renditions, with our attributes.
    const parsed = await waitUntil("hls.js MANIFEST_PARSED", 15_000, async () => {
      const o = await observe(page);
      return o.levels ? o : undefined;
    });
    assert.ok(parsed.mseSupported, "this Chromium has no MediaSource at all");
    // hls.js orders levels by bitrate.
    assert.deepEqual(
      parsed.levels?.map((l) => [
        l.width,
        l.height,
        l.bitrate,
        l.codecs,
        l.url.replace(/^.*\/live\//, ""),
      ]),
      [
        [320, 180, 292064, "avc1.42c01e,mp4a.40.2", `${streamId}/180p/index.m3u8`],
        [640, 360, 709684, "avc1.42c01e,mp4a.40.2", `${streamId}/360p/index.m3u8`],
      ],
    );

    // 2. Media arrives: wait for the first playing (or, without codecs, for loads), then watch ~6 s.
    const decodable = parsed.codecsSupported;
    if (decodable) {
      await waitUntil("the video to start playing", 20_000, async () => {
        const o = await observe(page);
        const fatal = o.errors.find((e) => e.fatal);
        if (fatal) throw new Error(`hls.js fatal error: ${JSON.stringify(fatal)}`);
        const v = await videoState(page);
        return o.playing > 0 && !v.paused && v.currentTime > 0 ? true : undefined;
      });
      // Begin watching 3–7 s into an 8 s fixture loop, so the ~6 s window
      // always crosses a loop boundary (timestamps jump forward by one loop there).
      await waitUntil("the playhead 3–7 s into a fixture loop", 10_000, async () => {
        const v = await videoState(page);
        if (v.playingDateMs === null) return undefined;
        const phaseMs = (v.playingDateMs - originMs) % loopMs;
        return phaseMs >= 3000 && phaseMs < 7000 ? true : undefined;
      });
    } else {
      await waitUntil("hls.js to load 4 fragments or parts", 20_000, async () =>
        (await observe(page)).loads.length >= 4 ? true : undefined,
      );
    }
    const start = await videoState(page);
    const startObs = await observe(page);
    const t0 = Date.now();
    await sleep(6000);
    const wallS = (Date.now() - t0) / 1000;
    const end = await videoState(page);
    const o = await observe(page);
    // Outside the run directory so it survives cleanup: look at it after a run.
    const screenshot = join(tmpdir(), "understudy-hlsjs-playback.png");
    await page.screenshot({ path: screenshot });

    // 3. Loads are in timeline order with no hole: each one starts where an
    // earlier one ended (a level switch may refetch an overlapping span, never skip).
    assert.ok(o.loads.length >= 4, `only ${o.loads.length} loads: ${JSON.stringify(o.loads)}`);
    const parts = o.loads.filter((l) => l.part !== null).length;
    assert.ok(parts > 0, `hls.js loaded no LL-HLS parts: ${JSON.stringify(o.loads)}`);
    let reach = spanOf(o.loads[0]!).to;
    for (const l of o.loads.slice(1)) {
      const s = spanOf(l);
      assert.ok(
        s.from <= reach,
        `hole before ${l.url}: covered up to part ${reach}, this starts at ${s.from}\n${JSON.stringify(o.loads)}`,
      );
      reach = Math.max(reach, s.to);
    }
    const snFirst = o.loads[0]!.sn;
    const snLast = o.loads[o.loads.length - 1]!.sn;
    const loadErrors = o.errors.filter(
      (e) => e.type === "networkError" || e.details === "fragParsingError",
    );
    assert.deepEqual(loadErrors, [], "hls.js saw network or parsing errors");

    const advancedS = end.currentTime - start.currentTime;
    const summary =
      `hls.js ${o.hlsVersion}: ${o.levels?.length} levels, ${o.loads.length} loads ` +
      `(${parts} parts, MSN ${snFirst}..${snLast}), ` +
      (decodable
        ? `currentTime ${start.currentTime.toFixed(2)} → ${end.currentTime.toFixed(2)} (+${advancedS.toFixed(2)} s in ${wallS.toFixed(2)} s wall), buffered ${JSON.stringify(end.ranges.map((r) => r.map((x) => +x.toFixed(2))))}`
        : "H.264/AAC NOT decodable by this Chromium build: playback itself was not checked") +
      `; screenshot ${screenshot}`;
    process.stdout.write(`      ${summary}\n`);

    if (!decodable) return;
    // 4. Real playback: time advances, no stall, one buffered range (no hole across the 8 s loop boundary).
    assert.deepEqual(
      o.errors.filter((e) => e.fatal || /bufferAppend|fragParsing|bufferStalled/.test(e.details)),
      [],
      "hls.js reported append, parsing or stall errors",
    );
    assert.ok(
      advancedS >= 4,
      `currentTime advanced only ${advancedS.toFixed(2)} s in ${wallS.toFixed(2)} s`,
    );
    assert.equal(
      o.waiting,
      startObs.waiting,
      `the video stalled (waiting events) ${o.waiting - startObs.waiting} time(s) while watched`,
    );
    assert.equal(end.paused, false, "the video paused");
    assert.equal(end.ranges.length, 1, `buffered has holes: ${JSON.stringify(end.ranges)}`);
    // hls.js maps EXT-X-PROGRAM-DATE-TIME (the source's wall time of each
    // sample) to the playhead: its distance to now is the viewer's latency,
    // which LL-HLS keeps near PART-HOLD-BACK (1.5 s) plus a part or two.
    assert.ok(
      start.playingDateMs !== null && end.playingDateMs !== null,
      "hls.js has no playingDate (EXT-X-PROGRAM-DATE-TIME not parsed)",
    );
    const latencyS = (Date.now() - end.playingDateMs) / 1000;
    const loopsCrossed =
      Math.floor((end.playingDateMs - originMs) / loopMs) -
      Math.floor((start.playingDateMs - originMs) / loopMs);
    process.stdout.write(
      `      latency behind the live edge (wall clock − PROGRAM-DATE-TIME at the playhead): ${latencyS.toFixed(2)} s; fixture loop boundaries crossed while watched: ${loopsCrossed}\n`,
    );
    assert.ok(latencyS > 0 && latencyS < 6, `latency ${latencyS.toFixed(2)} s`);
    assert.ok(loopsCrossed >= 1, "the watched window did not cross a fixture loop boundary");
    assert.deepEqual(failedResponses, [], "requests that failed");
    assert.deepEqual(consoleErrors, [], "the page logged errors");
  });
});
