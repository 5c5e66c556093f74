/** Shared test fixtures for packager-node: real nodes on 127.0.0.1:0 and an HTTP client. */
import { silentLogger } from "../../common/log.ts";
import { type PackagerConfig, parsePackagerConfig } from "../../packager-node/src/config.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";

export const T0 = Date.UTC(2024, 0, 1);

export interface StreamOpts {
  id?: string;
  latency?: "low" | "standard";
  targetSegmentDurationMs?: number;
  targetPartDurationMs?: number;
  windowSegments?: number;
  deltaUpdates?: boolean;
}

export function originConfig(
  over: Record<string, unknown> = {},
  stream: StreamOpts = {},
): PackagerConfig {
  return parsePackagerConfig({
    nodeId: "pkg-test",
    mode: "origin",
    listen: "127.0.0.1:0",
    ingest: { partBytesMax: 4096, segmentBytesMax: 16384 },
    streams: [
      {
        id: stream.id ?? "s1",
        latency: stream.latency ?? "low",
        targetSegmentDurationMs: stream.targetSegmentDurationMs ?? 2000,
        targetPartDurationMs: stream.targetPartDurationMs ?? 500,
        ...(stream.windowSegments !== undefined ? { windowSegments: stream.windowSegments } : {}),
        ...(stream.deltaUpdates !== undefined ? { deltaUpdates: stream.deltaUpdates } : {}),
        renditions: [
          {
            id: "720p",
            bandwidth: 3000000,
            codecs: "avc1.64001f",
            resolution: "1280x720",
            frameRate: 30,
          },
          {
            id: "360p",
            bandwidth: 800000,
            codecs: "avc1.42c01e",
            resolution: "640x360",
            frameRate: 30,
          },
        ],
      },
    ],
    ...over,
  });
}

/** originConfig's ladder as StreamSpec renditions, for coordinator-side specs of the same stream. */
export const originSpecRenditions = [
  {
    id: "720p",
    bandwidthBps: 3_000_000n,
    width: 1280,
    height: 720,
    frameRate: 30,
    codecs: "avc1.64001f",
  },
  {
    id: "360p",
    bandwidthBps: 800_000n,
    width: 640,
    height: 360,
    frameRate: 30,
    codecs: "avc1.42c01e",
  },
];

export async function startNode(config: PackagerConfig): Promise<PackagerNode> {
  const node = createPackagerNode(config, { logger: silentLogger });
  await node.start();
  return node;
}

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
}

export async function request(
  url: string,
  init: {
    method?: string;
    body?: Buffer | string;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<Reply> {
  const res = await fetch(url, {
    method: init.method ?? "GET",
    ...(init.body !== undefined ? { body: init.body } : {}),
    headers: init.headers ?? {},
    signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString("utf8") };
}

/** Deterministic media bytes for (rendition, msn, part): distinct per object. */
export function partBytes(rendition: string, msn: number, part: number, size = 200): Buffer {
  const b = Buffer.alloc(size);
  const seed = `${rendition}/${msn}/${part}`;
  for (let i = 0; i < size; i++) b[i] = (seed.charCodeAt(i % seed.length) * 31 + i) & 0xff;
  return b;
}

export interface PartSpec {
  rendition?: string;
  msn: number;
  part: number;
  durationMs?: number;
  partsPerSegment?: number;
  body?: Buffer;
  headers?: Record<string, string>;
}

/** Headers an understudy source sends with a part of a 2 s / 0.5 s timeline anchored at T0. */
export function partHeaders(
  msn: number,
  part: number,
  durationMs = 500,
  partsPerSegment = 4,
): Record<string, string> {
  const timelineMs = msn * durationMs * partsPerSegment + part * durationMs;
  return {
    "content-type": "video/mp4",
    "x-understudy-duration-ms": String(durationMs),
    "x-understudy-timeline-ms": String(timelineMs),
    "x-understudy-program-date-time": new Date(T0 + timelineMs).toISOString(),
    ...(part === 0 ? { "x-understudy-independent": "1" } : {}),
  };
}

export async function putPart(base: string, stream: string, p: PartSpec): Promise<Reply> {
  const rendition = p.rendition ?? "720p";
  return request(`${base}/ingest/${stream}/${rendition}/${p.msn}.${p.part}.m4s`, {
    method: "PUT",
    body: p.body ?? partBytes(rendition, p.msn, p.part),
    headers: {
      ...partHeaders(p.msn, p.part, p.durationMs, p.partsPerSegment),
      ...(p.headers ?? {}),
    },
  });
}

export async function putInit(base: string, stream: string, rendition = "720p"): Promise<Reply> {
  return request(`${base}/ingest/${stream}/${rendition}/init.mp4`, {
    method: "PUT",
    body: Buffer.from(`init-${rendition}`),
    headers: { "content-type": "video/mp4" },
  });
}

/** Pushes init + parts for segments [from, to) (4 parts each) of the given renditions. */
export async function feed(
  base: string,
  stream: string,
  renditions: string[],
  from: number,
  to: number,
  partsOfLast = 0,
): Promise<void> {
  for (const r of renditions) {
    const init = await putInit(base, stream, r);
    if (init.status >= 300) throw new Error(`init: ${init.status} ${init.text}`);
  }
  for (let msn = from; msn < to; msn++) {
    for (let part = 0; part < 4; part++) {
      for (const r of renditions) {
        const res = await putPart(base, stream, { rendition: r, msn, part });
        if (res.status >= 300) throw new Error(`${r} ${msn}.${part}: ${res.status} ${res.text}`);
      }
    }
  }
  for (let part = 0; part < partsOfLast; part++) {
    for (const r of renditions) {
      const res = await putPart(base, stream, { rendition: r, msn: to, part });
      if (res.status >= 300) throw new Error(`${r} ${to}.${part}: ${res.status} ${res.text}`);
    }
  }
}

/** Polls `check` until it returns true (bounded); for effects that complete in the background. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 3000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${timeoutMs} ms: ${what}`);
}
