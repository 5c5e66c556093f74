/**
 * CMCD (CTA-5004, Common Media Client Data) for the SDK's own requests, sent
 * as the `CMCD` query parameter. Serialisation follows the spec: keys in
 * alphabetical order separated by commas; strings quoted (with `"` and `\`
 * escaped); tokens (ot, sf, st) bare; a true boolean is the bare key and a
 * false one is omitted; bl and dl are rounded to the nearest 100 ms and mtp
 * to the nearest 100 kbps; `v` is omitted for version 1 and `pr` for 1.0, as
 * the spec recommends. The whole payload is URL-encoded into the query value.
 */

export type CmcdObjectType = "m" | "a" | "v" | "av" | "i" | "c" | "tt" | "k" | "o";

export interface CmcdData {
  /** Encoded bitrate of the object's rendition, kbps. */
  br?: number;
  /** Buffer length, ms. */
  bl?: number;
  /** Buffer starvation since the previous request. */
  bs?: boolean;
  /** Content id (≤ 64 chars). */
  cid?: string;
  /** Object duration, ms. */
  d?: number;
  /** Deadline (buffer left at the current rate), ms. */
  dl?: number;
  /** Measured throughput, kbps. */
  mtp?: number;
  /** Next object request, relative to this request's URL. */
  nor?: string;
  ot?: CmcdObjectType;
  /** Playback rate (1 = real time). */
  pr?: number;
  /** Requested maximum throughput, kbps. */
  rtp?: number;
  sf?: "d" | "h" | "s" | "o";
  /** Session id (≤ 64 chars). */
  sid?: string;
  st?: "v" | "l";
  /** Startup: the object is needed urgently (startup, seek, stall recovery). */
  su?: boolean;
  /** Top bitrate the client can play, kbps. */
  tb?: number;
  /** CMCD version (1 when absent). */
  v?: number;
}

const integerKeys = new Set(["br", "bl", "d", "dl", "mtp", "rtp", "tb", "v"]);
const roundTo100 = new Set(["bl", "dl", "mtp"]);
const tokenKeys = new Set(["ot", "sf", "st"]);
const stringMax: Record<string, number> = { cid: 64, sid: 64 };

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The CMCD payload (not URL-encoded), e.g. `bl=2100,br=800,ot=v,sid="abc"`. */
export function encodeCmcd(data: CmcdData): string {
  const parts: string[] = [];
  const entries = Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, raw] of entries) {
    if (raw === undefined || raw === null) continue;
    if (typeof raw === "boolean") {
      if (raw) parts.push(key);
      continue;
    }
    if (typeof raw === "number") {
      if (!Number.isFinite(raw) || raw < 0) continue;
      if (key === "v" && raw === 1) continue;
      if (key === "pr") {
        if (raw !== 1) parts.push(`pr=${Math.round(raw * 100) / 100}`);
        continue;
      }
      if (integerKeys.has(key)) {
        const n = roundTo100.has(key) ? Math.round(raw / 100) * 100 : Math.round(raw);
        parts.push(`${key}=${n}`);
      }
      continue;
    }
    const s = String(raw);
    if (tokenKeys.has(key)) parts.push(`${key}=${s}`);
    else parts.push(`${key}=${quote(s.slice(0, stringMax[key] ?? 1024))}`);
  }
  return parts.join(",");
}

/** `url` with `CMCD=<payload>` appended to its query (other parameters kept). */
export function withCmcdQuery(url: string, data: CmcdData): string {
  const payload = encodeCmcd(data);
  if (payload === "") return url;
  const hash = url.indexOf("#");
  const base = hash < 0 ? url : url.slice(0, hash);
  const sep = base.includes("?") ? "&" : "?";
  return `${base}${sep}CMCD=${encodeURIComponent(payload)}${hash < 0 ? "" : url.slice(hash)}`;
}

/**
 * `target` relative to `from` (both absolute URLs of the same origin), as CMCD
 * `nor` wants it: a path relative to the current request, URL-encoded by the
 * caller through the query encoding. Falls back to the absolute path.
 */
export function relativePath(from: string, target: string): string {
  const f = new URL(from);
  const t = new URL(target);
  if (f.origin !== t.origin) return t.href;
  const fromDir = f.pathname.split("/").slice(0, -1);
  const to = t.pathname.split("/");
  let i = 0;
  while (i < fromDir.length && i < to.length - 1 && fromDir[i] === to[i]) i++;
  const ups = fromDir.length - i;
  return `${"../".repeat(ups)}${to.slice(i).join("/")}${t.search}`;
}
