/** Small response helpers shared by the HTTP routes. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/** Plain-text reply; every 4xx/5xx says why in one line an operator can act on. */
export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: OutgoingHttpHeaders = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(text.endsWith("\n") ? text : `${text}\n`);
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": body.length,
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": body.length,
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

/** Sends `body`, or only the headers for HEAD. */
export function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: Buffer | string,
  headers: OutgoingHttpHeaders,
): void {
  const buf = typeof body === "string" ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, "content-length": buf.length });
  if (req.method === "HEAD") res.end();
  else res.end(buf);
}

/** Splits "/a/b?x=1" into path segments and the raw query (undefined when absent). */
export function splitUrl(url: string): { path: string; query: string | undefined } {
  const q = url.indexOf("?");
  return q < 0
    ? { path: url, query: undefined }
    : { path: url.slice(0, q), query: url.slice(q + 1) };
}
