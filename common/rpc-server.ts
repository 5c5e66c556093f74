/**
 * The one server stack: Connect `ServiceImpl`s served by connect-node, which
 * speaks gRPC, gRPC-Web and Connect. Plaintext listeners accept both HTTP/2
 * (prior knowledge, what gRPC clients send) and HTTP/1.1 (curl, browsers,
 * Prometheus) on the same port by sniffing the HTTP/2 connection preface.
 * With TLS, ALPN chooses. `grpc.health.v1` and server reflection (v1 and
 * v1alpha) are always served.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import { createHealthService, type HealthService } from "./rpc-health.ts";
import { registerReflection } from "./rpc-reflection.ts";

export interface ServiceRegistration {
  readonly service: DescService;
  // biome-ignore lint/suspicious/noExplicitAny: each registration pairs a service with its own impl type.
  readonly impl: Partial<ServiceImpl<any>>;
}

/** Pairs a service descriptor with its implementation, type-checked. */
export function serve<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
): ServiceRegistration {
  return { service, impl };
}

/** Handler for plain HTTP requests that are not RPCs. */
export type HttpFallback = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

export interface RpcServerOptions {
  /** "host:port"; port 0 picks a free port (read it back from `port`). */
  listen: string;
  services: readonly ServiceRegistration[];
  /** Largest accepted request message; bigger ones fail with RESOURCE_EXHAUSTED. */
  readMaxBytes?: number;
  writeMaxBytes?: number;
  interceptors?: Interceptor[];
  /** Plain HTTP routes that are not RPCs (metrics, steering manifests); 404 otherwise. */
  fallback?: HttpFallback;
  tls?: { certFile: string; keyFile: string };
}

export interface RpcServer {
  readonly host: string;
  readonly port: number;
  /** "host:port" actually bound. */
  readonly address: string;
  readonly health: HealthService;
  /** Stops accepting, ends open streams, resolves when closed (bounded by `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

export const defaultReadMaxBytes = 4 * 1024 * 1024;

/** "ip:port" of the caller, for interceptors (auth refusal logs); "" when unknown. */
export const peerAddressKey = createContextKey<string>("", { description: "caller address" });

export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const [host, portText] = splitHostPort(opts.listen);
  const health = createHealthService(opts.services.map((s) => s.service.typeName));
  const routes = (router: ConnectRouter) => {
    for (const s of opts.services) router.service(s.service, s.impl);
    health.register(router);
    registerReflection(router, [...opts.services.map((s) => s.service), ...health.services]);
  };
  const connectHandler = connectNodeAdapter({
    routes,
    readMaxBytes: opts.readMaxBytes ?? defaultReadMaxBytes,
    writeMaxBytes: opts.writeMaxBytes ?? 16 * 1024 * 1024,
    interceptors: opts.interceptors,
    contextValues: (req) =>
      createContextValues().set(
        peerAddressKey,
        `${req.socket?.remoteAddress ?? "?"}:${req.socket?.remotePort ?? 0}`,
      ),
    fallback: (req, res) => {
      if (opts.fallback) return opts.fallback(req, res);
      res.writeHead(404, { "content-type": "text/plain" });
      res.end(`no route for ${req.method} ${req.url}\n`);
    },
  });

  // connect-node percent-encodes grpc-message with encodeURIComponent, while
  // the gRPC spec (and grpc-js, which decodes with decodeURI) expects only
  // bytes outside printable ASCII and "%" to be encoded: clients saw "%3A"
  // for ":". Re-encode it the spec's way on the way out.
  const handler: typeof connectHandler = (req, res) => {
    const r = res as unknown as {
      writeHead(status: number, headers?: Record<string, unknown>): unknown;
      addTrailers(headers: Record<string, unknown>): unknown;
    };
    const writeHead = r.writeHead.bind(res);
    const addTrailers = r.addTrailers.bind(res);
    r.writeHead = (status, headers) => writeHead(status, headers && fixGrpcMessage(headers));
    r.addTrailers = (headers) => addTrailers(fixGrpcMessage(headers));
    connectHandler(req, res);
  };

  const sockets = new Set<net.Socket>();
  let listener: net.Server;
  let h2: http2.Http2Server | http2.Http2SecureServer;
  if (opts.tls) {
    h2 = http2.createSecureServer(
      {
        cert: readFileSync(opts.tls.certFile),
        key: readFileSync(opts.tls.keyFile),
        allowHTTP1: true,
      },
      handler,
    );
    listener = h2;
  } else {
    h2 = http2.createServer({}, handler);
    const h1 = http.createServer(handler);
    // Route each plaintext connection by its first bytes: the HTTP/2 preface
    // starts with "PRI * HTTP/2.0"; anything else is HTTP/1.x.
    // noDelay: small RPC messages must not wait for Nagle's algorithm.
    listener = net.createServer({ noDelay: true }, (socket) => {
      socket.once("readable", () => {
        const head: Buffer | null = socket.read();
        if (head === null) {
          socket.once("readable", () => socket.destroy());
          return;
        }
        socket.unshift(head);
        if (head.subarray(0, 3).toString("latin1") === "PRI") h2.emit("connection", socket);
        else h1.emit("connection", socket);
      });
    });
  }
  listener.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(Number(portText), host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const bound = listener.address() as net.AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    host,
    port: bound.port,
    address: `${host.includes(":") ? `[${host}]` : host}:${bound.port}`,
    health,
    close(graceMs = 1000) {
      closed ??= new Promise<void>((resolve) => {
        health.shutdown();
        listener.close(() => resolve());
        // http2 sessions first get a GOAWAY; anything left after the grace is cut.
        h2.close();
        const timer = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, graceMs);
        timer.unref();
      });
      return closed;
    },
  };
}

function fixGrpcMessage(headers: Record<string, unknown>): Record<string, unknown> {
  const m = headers["grpc-message"];
  if (typeof m !== "string") return headers;
  let text: string;
  try {
    text = decodeURIComponent(m);
  } catch {
    return headers;
  }
  return { ...headers, "grpc-message": encodeGrpcMessage(text) };
}

/** gRPC's percent-encoding: UTF-8 bytes outside 0x20–0x7E, and "%", become %XX. */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(text)) {
    out +=
      b < 0x20 || b > 0x7e || b === 0x25
        ? `%${b.toString(16).toUpperCase().padStart(2, "0")}`
        : String.fromCharCode(b);
  }
  return out;
}

export function splitHostPort(address: string): [string, string] {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid address "${address}": expected host:port`);
  return [m[1] as string, m[2] as string];
}
