/**
 * CMCD (CTA-5004 Common Media Client Data) parsing: from the `CMCD` query
 * parameter or the CMCD-Request / CMCD-Object / CMCD-Status / CMCD-Session
 * headers. Payload: comma-separated `key=value` pairs; strings are quoted
 * (with \" and \\ escapes), tokens are bare, booleans are a bare key.
 *
 * Pure. CMCD is telemetry: a bad key is reported in `errors` and dropped,
 * never a reason to fail the media request it rides on.
 */

export type CmcdObjectType = "m" | "a" | "v" | "av" | "i" | "c" | "tt" | "k" | "o";
export type CmcdStreamingFormat = "d" | "h" | "s" | "o";
export type CmcdStreamType = "v" | "l";

export interface CmcdData {
  /** Encoded bitrate, kbps. */
  br?: number;
  /** Buffer length, ms. */
  bl?: number;
  /** Buffer starvation since the previous request. */
  bs?: boolean;
  /** Content id (≤ 64 chars). */
  cid?: string;
  /** Object duration, ms. */
  d?: number;
  /** Deadline, ms. */
  dl?: number;
  /** Measured throughput, kbps. */
  mtp?: number;
  /** Next object request (relative path, URL-encoded). */
  nor?: string;
  /** Next range request. */
  nrr?: string;
  ot?: CmcdObjectType;
  /** Playback rate. */
  pr?: number;
  /** Requested maximum throughput, kbps. */
  rtp?: number;
  sf?: CmcdStreamingFormat;
  /** Session id (≤ 64 chars). */
  sid?: string;
  st?: CmcdStreamType;
  /** Startup. */
  su?: boolean;
  /** Top bitrate, kbps. */
  tb?: number;
  /** CMCD version (absent = 1). */
  v?: number;
  /** Custom keys (must contain a hyphen, e.g. "com.example-foo"). */
  custom: Record<string, string | number | boolean>;
}

export interface CmcdParseResult {
  data: CmcdData;
  errors: string[];
}

type Kind = "int" | "dec" | "str" | "tok" | "bool";

const KEYS: Record<string, Kind> = {
  br: "int",
  bl: "int",
  bs: "bool",
  cid: "str",
  d: "int",
  dl: "int",
  mtp: "int",
  nor: "str",
  nrr: "str",
  ot: "tok",
  pr: "dec",
  rtp: "int",
  sf: "tok",
  sid: "str",
  st: "tok",
  su: "bool",
  tb: "int",
  v: "int",
};

const TOKENS: Record<string, readonly string[]> = {
  ot: ["m", "a", "v", "av", "i", "c", "tt", "k", "o"],
  sf: ["d", "h", "s", "o"],
  st: ["v", "l"],
};

const STRING_MAX: Record<string, number> = { cid: 64, sid: 64, nor: 1024, nrr: 64 };

/** Longest payload read; the rest is ignored (and reported). */
export const CMCD_PAYLOAD_MAX = 4096;

interface RawPair {
  key: string;
  /** undefined = bare key; string with `quoted` = a quoted string. */
  value?: string;
  quoted: boolean;
}

function tokenize(payload: string, errors: string[]): RawPair[] {
  const out: RawPair[] = [];
  let i = 0;
  const n = payload.length;
  while (i < n) {
    while (i < n && (payload[i] === " " || payload[i] === ",")) i++;
    if (i >= n) break;
    let key = "";
    while (i < n && payload[i] !== "=" && payload[i] !== ",") key += payload[i++];
    key = key.trim();
    if (i >= n || payload[i] === ",") {
      out.push({ key, quoted: false });
      continue;
    }
    i++; // '='
    if (payload[i] === '"') {
      i++;
      let value = "";
      let closed = false;
      while (i < n) {
        const c = payload[i++]!;
        if (c === "\\" && i < n) value += payload[i++];
        else if (c === '"') {
          closed = true;
          break;
        } else value += c;
      }
      if (!closed) errors.push(`${key}: unterminated string`);
      else out.push({ key, value, quoted: true });
      while (i < n && payload[i] !== ",") i++;
    } else {
      let value = "";
      while (i < n && payload[i] !== ",") value += payload[i++];
      out.push({ key, value: value.trim(), quoted: false });
    }
  }
  return out;
}

export function parseCmcd(payload: string, into?: CmcdParseResult): CmcdParseResult {
  const result = into ?? { data: { custom: {} }, errors: [] };
  const { data, errors } = result;
  if (payload.length > CMCD_PAYLOAD_MAX) {
    errors.push(`payload longer than ${CMCD_PAYLOAD_MAX} chars; rest ignored`);
    payload = payload.slice(0, CMCD_PAYLOAD_MAX);
  }
  for (const { key, value, quoted } of tokenize(payload, errors)) {
    const kind = KEYS[key];
    if (!kind) {
      if (key.includes("-") && /^[A-Za-z0-9._-]+$/.test(key)) {
        data.custom[key] =
          value === undefined
            ? true
            : quoted
              ? value
              : Number.isFinite(Number(value))
                ? Number(value)
                : value;
      } else {
        errors.push(`${key || "(empty)"}: unknown key`);
      }
      continue;
    }
    const d = data as unknown as Record<string, unknown>;
    switch (kind) {
      case "bool":
        if (value === undefined || value === "?1" || value === "true") d[key] = true;
        else if (value === "?0" || value === "false") d[key] = false;
        else errors.push(`${key}: expected a bare boolean key`);
        break;
      case "int": {
        const v = value === undefined || quoted ? Number.NaN : Number(value);
        if (Number.isSafeInteger(v) && v >= 0 && /^\d+$/.test(value!)) d[key] = v;
        else errors.push(`${key}: expected a non-negative integer`);
        break;
      }
      case "dec": {
        const v = value === undefined || quoted ? Number.NaN : Number(value);
        if (Number.isFinite(v) && /^-?\d+(\.\d+)?$/.test(value!)) d[key] = v;
        else errors.push(`${key}: expected a decimal`);
        break;
      }
      case "str":
        if (!quoted || value === undefined) errors.push(`${key}: expected a quoted string`);
        else if (value.length > (STRING_MAX[key] ?? 1024))
          errors.push(`${key}: longer than ${STRING_MAX[key]} chars`);
        else d[key] = value;
        break;
      case "tok":
        if (value !== undefined && !quoted && TOKENS[key]!.includes(value)) d[key] = value;
        else errors.push(`${key}: expected one of ${TOKENS[key]!.join(", ")}`);
        break;
    }
  }
  return result;
}

export const CMCD_HEADERS = ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"] as const;

/**
 * CMCD of one request: the four headers, then the `CMCD` query parameter
 * (already URL-decoded) on top. Returns undefined when the request carries none.
 */
export function cmcdFromRequest(
  query: string | undefined,
  headers: Record<string, string | string[] | undefined>,
): CmcdParseResult | undefined {
  let result: CmcdParseResult | undefined;
  for (const h of CMCD_HEADERS) {
    const v = headers[h];
    if (v === undefined) continue;
    result ??= { data: { custom: {} }, errors: [] };
    parseCmcd(Array.isArray(v) ? v.join(",") : v, result);
  }
  if (query !== undefined) {
    result ??= { data: { custom: {} }, errors: [] };
    parseCmcd(query, result);
  }
  return result;
}
