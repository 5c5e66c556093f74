/**
 * A small in-test LL-HLS origin over real HTTP: playlists generated from a
 * shared real-time timeline (so two origins started with the same timeline
 * serve identical playlists and objects, like packager replicas), blocking
 * playlist reload with the packager's semantics, and fault switches (500s,
 * missing parts, GAP-marked parts). Every request is logged with its parsed
 * CMCD so tests can check which origin served which MSN.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Timeline {
  /** Wall time of the first part of segment `firstMsn`. */
  readonly t0Ms: number;
  readonly firstMsn: number;
  readonly segmentMs: number;
  readonly partMs: number;
  /** Closed segments kept in the playlist. */
  readonly windowSegments: number;
}

export function createTimeline(opts: Partial<Timeline> = {}): Timeline {
  return {
    // Start with a few segments already produced, so a player can start with a buffer.
    t0Ms: opts.t0Ms ?? Date.now() - 4000,
    firstMsn: opts.firstMsn ?? 100,
    segmentMs: opts.segmentMs ?? 1000,
    partMs: opts.partMs ?? 250,
    windowSegments: opts.windowSegments ?? 6,
  };
}

export const renditions = [
  { id: "lo", bandwidth: 200_000 },
  { id: "hi", bandwidth: 800_000 },
] as const;

export interface RequestLog {
  readonly path: string;
  readonly rendition?: string;
  /** For media: MSN and part (undefined for whole segments). */
  readonly msn?: number;
  readonly part?: number;
  readonly kind: "master" | "playlist" | "init" | "segment" | "part" | "other";
  readonly status: number;
  readonly cmcd?: string;
  readonly query: URLSearchParams;
}

export interface TestOrigin {
  readonly url: string;
  readonly log: RequestLog[];
  /** Every request answers 500 while set. */
  fail500: boolean;
  /** "rendition/msn.part" keys answered 404 although listed. */
  readonly missing: Set<string>;
  /** "rendition/msn.part" keys listed with GAP=YES (and 404 if fetched). */
  readonly gaps: Set<string>;
  close(): Promise<void>;
}

const partsPerSegment = (t: Timeline) => Math.round(t.segmentMs / t.partMs);

/** Parts produced so far (all renditions produce in lockstep). */
function partsProduced(t: Timeline, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - t.t0Ms) / t.partMs));
}

function head(t: Timeline, nowMs: number) {
  const pps = partsPerSegment(t);
  const total = partsProduced(t, nowMs);
  const closed = Math.floor(total / pps);
  return { closedCount: closed, openParts: total % pps, openMsn: t.firstMsn + closed };
}

/** rfc8216bis blocking reload, as the packager implements it. */
function satisfied(t: Timeline, nowMs: number, msn: number, part: number | undefined): boolean {
  const h = head(t, nowMs);
  const lastClosed = h.closedCount > 0 ? h.openMsn - 1 : undefined;
  if (part === undefined) return lastClosed !== undefined && lastClosed >= msn;
  if (lastClosed !== undefined && lastClosed > msn) return true;
  if (lastClosed !== undefined && lastClosed === msn) {
    if (part < partsPerSegment(t)) return true;
    return h.openParts > 0;
  }
  if (h.openMsn > msn) return true;
  return h.openMsn === msn && h.openParts > part;
}

const secs = (ms: number) => (ms / 1000).toFixed(3);

function mediaPlaylist(o: TestOrigin, t: Timeline, rendition: string, nowMs: number): string {
  const pps = partsPerSegment(t);
  const h = head(t, nowMs);
  const first = Math.max(t.firstMsn, h.openMsn - t.windowSegments);
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:6",
    `#EXT-X-TARGETDURATION:${Math.ceil(t.segmentMs / 1000)}`,
    `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${secs(3 * t.partMs)},HOLD-BACK=${secs(3 * t.segmentMs)}`,
    `#EXT-X-PART-INF:PART-TARGET=${secs(t.partMs)}`,
    `#EXT-X-MEDIA-SEQUENCE:${first}`,
    "#EXT-X-INDEPENDENT-SEGMENTS",
    '#EXT-X-MAP:URI="init.mp4"',
  ];
  const partLine = (msn: number, i: number) => {
    let l = `#EXT-X-PART:DURATION=${secs(t.partMs)},URI="${msn}.${i}.m4s"`;
    if (i === 0) l += ",INDEPENDENT=YES";
    if (o.gaps.has(`${rendition}/${msn}.${i}`)) l += ",GAP=YES";
    return l;
  };
  for (let msn = first; msn < h.openMsn; msn++) {
    if (msn === first) {
      const pdt = t.t0Ms + (msn - t.firstMsn) * t.segmentMs;
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(pdt).toISOString()}`);
    }
    if (h.openMsn - msn <= 3) for (let i = 0; i < pps; i++) lines.push(partLine(msn, i));
    lines.push(`#EXTINF:${secs(t.segmentMs)},`, `${msn}.m4s`);
  }
  for (let i = 0; i < h.openParts; i++) lines.push(partLine(h.openMsn, i));
  lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${h.openMsn}.${h.openParts}.m4s"`);
  return `${lines.join("\n")}\n`;
}

function master(): string {
  const lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"];
  for (const r of renditions) {
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${r.bandwidth},CODECS="avc1.42e01e,mp4a.40.2",RESOLUTION=640x360`,
      `${r.id}/index.m3u8`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const holdMaxMs = 3000;

export async function startTestOrigin(streamId: string, t: Timeline): Promise<TestOrigin> {
  const log: RequestLog[] = [];
  const sockets = new Set<import("node:net").Socket>();
  const origin: TestOrigin = {
    url: "",
    log,
    fail500: false,
    missing: new Set(),
    gaps: new Set(),
    close: async () => {},
  };
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const prefix = `/live/${streamId}/`;
    const entry = (e: Omit<RequestLog, "path" | "query" | "cmcd">) => {
      const cmcd = u.searchParams.get("CMCD") ?? undefined;
      log.push({ ...e, path: u.pathname, query: u.searchParams, ...(cmcd ? { cmcd } : {}) });
    };
    const send = (status: number, body: string | Buffer, type: string) => {
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    if (origin.fail500) {
      entry({ kind: "other", status: 500 });
      send(500, "injected failure\n", "text/plain");
      return;
    }
    if (!u.pathname.startsWith(prefix)) {
      entry({ kind: "other", status: 404 });
      send(404, "unknown stream\n", "text/plain");
      return;
    }
    const rest = u.pathname.slice(prefix.length);
    if (rest === "master.m3u8") {
      entry({ kind: "master", status: 200 });
      send(200, master(), "application/vnd.apple.mpegurl");
      return;
    }
    const m = /^([a-z]+)\/(index\.m3u8|init\.mp4|(\d+)(?:\.(\d+))?\.m4s)$/.exec(rest);
    const r = m ? renditions.find((x) => x.id === m[1]) : undefined;
    if (!m || !r) {
      entry({ kind: "other", status: 404 });
      send(404, "not found\n", "text/plain");
      return;
    }
    if (m[2] === "index.m3u8") {
      const msnQ = u.searchParams.get("_HLS_msn");
      const partQ = u.searchParams.get("_HLS_part");
      if (msnQ !== null) {
        const msn = Number(msnQ);
        const part = partQ === null ? undefined : Number(partQ);
        const deadline = Date.now() + holdMaxMs;
        while (!satisfied(t, Date.now(), msn, part) && Date.now() < deadline && !req.destroyed) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        if (!satisfied(t, Date.now(), msn, part)) {
          entry({ kind: "playlist", rendition: r.id, status: 503 });
          send(503, "blocking reload timed out\n", "text/plain");
          return;
        }
      }
      if (origin.fail500) {
        entry({ kind: "other", status: 500 });
        send(500, "injected failure\n", "text/plain");
        return;
      }
      entry({ kind: "playlist", rendition: r.id, status: 200 });
      send(200, mediaPlaylist(origin, t, r.id, Date.now()), "application/vnd.apple.mpegurl");
      return;
    }
    if (m[2] === "init.mp4") {
      entry({ kind: "init", rendition: r.id, status: 200 });
      send(200, Buffer.alloc(800, 1), "video/mp4");
      return;
    }
    const msn = Number(m[3]);
    const part = m[4] === undefined ? undefined : Number(m[4]);
    const h = head(t, Date.now());
    const pps = partsPerSegment(t);
    const key = `${r.id}/${msn}.${part}`;
    const exists =
      msn >= t.firstMsn &&
      (part === undefined
        ? msn < h.openMsn
        : part < pps && (msn < h.openMsn || (msn === h.openMsn && part < h.openParts)));
    const kind = part === undefined ? "segment" : "part";
    if (!exists || origin.missing.has(key) || origin.gaps.has(key)) {
      entry({ kind, rendition: r.id, msn, ...(part !== undefined ? { part } : {}), status: 404 });
      send(404, "no such object\n", "text/plain");
      return;
    }
    entry({ kind, rendition: r.id, msn, ...(part !== undefined ? { part } : {}), status: 200 });
    const durMs = part === undefined ? t.segmentMs : t.partMs;
    send(200, Buffer.alloc(Math.round((r.bandwidth / 8) * (durMs / 1000)), 7), "video/iso.segment");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(origin, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

/** Media requests (segments and parts) answered 200. */
export function mediaServed(o: TestOrigin): RequestLog[] {
  return o.log.filter((e) => (e.kind === "segment" || e.kind === "part") && e.status === 200);
}
