/**
 * A tiny real HTTP receiver for source tests: records every request
 * (method, path, headers, body, arrival time) and answers with the status
 * `respond` chooses (201 by default; 0 = never answer, to test timeouts),
 * optionally with the refusal's text (what a packager says, e.g. "stale epoch").
 * Binds 127.0.0.1 on port 0.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly atMs: number;
  /** Status the receiver answered. */
  readonly status: number;
}

export interface Receiver {
  readonly url: string;
  readonly requests: Received[];
  /** Requests answered 2xx. */
  accepted(): Received[];
  /** Changes the answer for subsequent requests. */
  setRespond(fn: Responder): void;
  close(): Promise<void>;
}

export type Responder = (
  req: Omit<Received, "status">,
) => number | { readonly status: number; readonly text: string };

export async function startReceiver(respond: Responder = () => 201): Promise<Receiver> {
  const requests: Received[] = [];
  let answer = respond;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rec = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
        atMs: Date.now(),
      };
      const a = answer(rec);
      const status = typeof a === "number" ? a : a.status;
      requests.push({ ...rec, status });
      if (status === 0) return; // hold the request open until the client gives up
      res.writeHead(status, { "Content-Type": "text/plain" });
      const text = typeof a === "number" ? `refused with ${status}` : a.text;
      res.end(status >= 400 ? `${text}\n` : "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    accepted: () => requests.filter((r) => r.status >= 200 && r.status < 300),
    setRespond(fn) {
      answer = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sha256(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("hex");
}

/** "/ingest/{stream}/{rendition}/{name}" → its parts. */
export function ingestPath(path: string): { stream: string; rendition: string; name: string } {
  const m = /^\/ingest\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) throw new Error(`not an ingest path: ${path}`);
  return { stream: m[1]!, rendition: m[2]!, name: m[3]! };
}
