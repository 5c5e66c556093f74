/**
 * CMSD (CTA-5006 Common Media Server Data) response headers.
 * CMSD-Static describes the object (at, br, d, ht, n, ot, st); CMSD-Dynamic
 * is a list with one entry per server on the path: the server's identifier
 * string with parameters (etp, rd). The `hint` hook lets the control plane add
 * a custom key later (e.g. a handover hint) without touching the serving code.
 */

export interface CmsdStatic {
  /** Availability time of the object at this origin, ms since the epoch. */
  at?: number;
  /** Encoded bitrate, kbps. */
  br?: number;
  /** Object duration, ms. */
  d?: number;
  /** Held time of a blocking response, ms. */
  ht?: number;
  /** Intermediary (node) identifier. */
  n?: string;
  ot?: "m" | "a" | "v" | "av" | "i" | "o";
  /** Stream type: live. */
  st?: "l" | "v";
  /** Custom keys (hyphenated names). */
  custom?: Record<string, string | number | boolean>;
}

export interface CmsdDynamic {
  /** Node identifier (the list entry itself). */
  n: string;
  /** Estimated throughput the client may expect from this node, kbps. */
  etp?: number;
  /** Response delay: request received → response started, ms. */
  rd?: number;
  custom?: Record<string, string | number | boolean>;
}

function sfString(v: string): string {
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

type Item = [key: string, value: string | number | boolean | undefined, token?: boolean];

/** Structured-field members: strings quoted, tokens bare, integers rounded, true as a bare key. */
function members(items: readonly Item[], sep: string): string {
  const out: string[] = [];
  for (const [k, v, token] of items) {
    if (v === undefined || v === false) continue;
    if (v === true) out.push(k);
    else if (typeof v === "number") out.push(`${k}=${Math.round(v)}`);
    else out.push(`${k}=${token ? v : sfString(v)}`);
  }
  return out.join(sep);
}

function customItems(custom: Record<string, string | number | boolean> | undefined): Item[] {
  return Object.entries(custom ?? {}).map(([k, v]) => [k, v] as Item);
}

export function formatCmsdStatic(s: CmsdStatic): string {
  return members(
    [
      ["at", s.at],
      ["br", s.br],
      ["d", s.d],
      ["ht", s.ht],
      ["n", s.n],
      ["ot", s.ot, true],
      ["st", s.st, true],
      ...customItems(s.custom),
    ],
    ",",
  );
}

export function formatCmsdDynamic(d: CmsdDynamic): string {
  const params = members([["etp", d.etp], ["rd", d.rd], ...customItems(d.custom)], ";");
  return params ? `${sfString(d.n)};${params}` : sfString(d.n);
}
