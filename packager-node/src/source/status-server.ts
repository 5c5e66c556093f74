/**
 * The source's probe endpoint: `GET /status` returns the source status JSON
 * (per-target push latency, errors, drops, queue depth) for the host agent;
 * `GET /healthz` answers "ok" while the source runs. Loopback by default.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { SourceStatus } from "./source.ts";

export interface StatusServer {
  /** "host:port" actually bound (port 0 resolved). */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Parses "host:port" (IPv6 hosts in brackets). */
export function splitHostPort(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(":");
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(listen.slice(at + 1)) };
}

export async function startStatusServer(
  listen: string,
  status: () => SourceStatus,
): Promise<StatusServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" });
      res.end("only GET and HEAD are allowed\n");
      return;
    }
    if (path === "/status") {
      const body = JSON.stringify(status());
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (path === "/healthz") {
      const ok = status().running;
      res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain" });
      res.end(ok ? "ok\n" : "stopped\n");
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found: try /status or /healthz\n");
  });
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    address: `${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
