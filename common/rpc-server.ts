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
  Code,
  ConnectError,
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
  /**
   * gRPC bidi methods served without connect-node (see RawGrpcRoute): HTTP/2
   * requests with content-type application/grpc(+proto) on exactly the
   * route's path. gRPC-Web, Connect, HTTP/1.1 and every other path still go
   * through connect-node (register the same method in `services` for them).
   */
  rawGrpc?: readonly RawGrpcRoute[];
}

/**
 * One call on a raw gRPC route. The server does the gRPC-over-HTTP/2 framing
 * (5-byte length prefixes across DATA chunks, readMaxBytes, grpc-timeout,
 * trailers, cancellation); the route sees whole messages.
 */
export interface RawGrpcCall {
  readonly headers: http2.IncomingHttpHeaders;
  /** "ip:port" of the caller. */
  readonly peer: string;
  /** Aborted once the call is over for any reason (end, cancel, deadline, shutdown). */
  readonly signal: AbortSignal;
  /** Sends one message; false when the write buffer is full (await drained()) or the call is over. */
  send(message: Uint8Array): boolean;
  /** Resolves when the write buffer has room again or the call is over. */
  drained(): Promise<void>;
  /** Stops delivering messages (and end) until resume(); HTTP/2 flow control holds the client back. */
  pause(): void;
  resume(): void;
  /** Finishes the call: trailers with grpc-status OK, or the error's code and message. Later calls are ignored. */
  end(err?: ConnectError): void;
}

/** What a raw route does with the messages of one call. None of these may throw. */
export interface RawGrpcHandlers {
  onMessage(message: Uint8Array): void;
  /** The client half-closed after its last message. */
  onEnd(): void;
  /**
   * The call ended without the route: Canceled (client reset the stream),
   * DeadlineExceeded, Unavailable (server shutdown), or a refused message
   * (ResourceExhausted above readMaxBytes, Unimplemented compression,
   * Internal truncated message). The client has been told already.
   */
  onAbort(err: ConnectError): void;
}

/**
 * A gRPC method served on node:http2 directly, for per-message cost:
 * connect-node's pipeline (async iterables, per-message promises) bounds a
 * core at a few thousand 1 Hz bidi streams. `interceptors` run first with the
 * request headers (and an empty message stream): they can refuse the call
 * (auth), nothing else.
 */
export interface RawGrpcRoute {
  /** The service and proto method name ("Connect"); the path is /typeName/method. */
  readonly service: DescService;
  readonly method: string;
  start(call: RawGrpcCall): RawGrpcHandlers;
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
  const readMaxBytes = opts.readMaxBytes ?? defaultReadMaxBytes;
  const writeMaxBytes = opts.writeMaxBytes ?? 16 * 1024 * 1024;
  const connectHandler = connectNodeAdapter({
    routes,
    readMaxBytes,
    writeMaxBytes,
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
  const rawRoutes = new Map<string, RawGrpcRoute>();
  for (const r of opts.rawGrpc ?? []) rawRoutes.set(`/${r.service.typeName}/${r.method}`, r);
  const rawCalls = new Set<(err: ConnectError) => void>();
  const handler: typeof connectHandler = (req, res) => {
    if (rawRoutes.size > 0 && req.httpVersionMajor === 2) {
      const route = rawRoutes.get(req.url ?? "");
      const stream = (req as unknown as { stream?: http2.ServerHttp2Stream }).stream;
      if (
        route !== undefined &&
        stream !== undefined &&
        req.method === "POST" &&
        grpcContentType.test(req.headers["content-type"] ?? "")
      ) {
        const peer = `${req.socket?.remoteAddress ?? "?"}:${req.socket?.remotePort ?? 0}`;
        serveRawGrpc(route, stream, req.headers, peer, {
          readMaxBytes,
          writeMaxBytes,
          interceptors: opts.interceptors ?? [],
          calls: rawCalls,
        });
        return;
      }
    }
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
        for (const stop of [...rawCalls]) {
          stop(new ConnectError("server shutting down; reconnect", Code.Unavailable));
        }
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

const grpcContentType = /^application\/grpc(\+proto)?\s*(;.*)?$/i;
const grpcTimeoutUnitsMs: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

interface RawGrpcEnv {
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
  readonly interceptors: readonly Interceptor[];
  /** Open calls' shutdown hooks. */
  readonly calls: Set<(err: ConnectError) => void>;
}

/** The interceptors' verdict on a call's headers: undefined = allowed. */
async function checkInterceptors(
  route: RawGrpcRoute,
  headers: http2.IncomingHttpHeaders,
  peer: string,
  signal: AbortSignal,
  interceptors: readonly Interceptor[],
): Promise<ConnectError | undefined> {
  const method = route.service.methods.find((m) => m.name === route.method);
  const header = new Headers();
  const empty = async function* () {};
  try {
    for (const [k, v] of Object.entries(headers)) {
      if (k.startsWith(":") || v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) header.append(k, x);
      else header.set(k, String(v));
    }
    const req = {
      stream: true,
      service: route.service,
      method,
      requestMethod: "POST",
      url: `/${route.service.typeName}/${route.method}`,
      signal,
      header,
      contextValues: createContextValues().set(peerAddressKey, peer),
      message: empty(),
    };
    // biome-ignore lint/suspicious/noExplicitAny: a synthetic request; interceptors only see headers.
    let next: (r: any) => Promise<unknown> = async () => ({
      stream: true,
      service: route.service,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: empty(),
    });
    for (let i = interceptors.length - 1; i >= 0; i--) {
      // biome-ignore lint/suspicious/noExplicitAny: see above.
      next = (interceptors[i] as Interceptor)(next as any) as typeof next;
    }
    await next(req);
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

/** gRPC over HTTP/2 for one stream of a raw route (see RawGrpcRoute). */
function serveRawGrpc(
  route: RawGrpcRoute,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  peer: string,
  env: RawGrpcEnv,
): void {
  // node's compatibility response would answer wantTrailers with empty
  // trailers (no grpc-status); this stream's trailers are ours.
  stream.removeAllListeners("wantTrailers");
  // Resets and socket errors end the call through 'close'.
  stream.on("error", () => {});
  const abort = new AbortController();
  let finished = false;
  let trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
  let handlers: RawGrpcHandlers | undefined;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let chunks: Buffer[] = [];
  let buffered = 0;
  let paused = false;
  let inputEnded = false;
  let endDelivered = false;

  const statusOf = (err: ConnectError | undefined): http2.OutgoingHttpHeaders =>
    err === undefined
      ? { "grpc-status": "0" }
      : { "grpc-status": String(err.code), "grpc-message": encodeGrpcMessage(err.rawMessage) };

  /** Ends the call once; returns false when it was over already. */
  const finish = (err: ConnectError | undefined): boolean => {
    if (finished) return false;
    finished = true;
    env.calls.delete(shutdown);
    clearTimeout(deadline);
    chunks = [];
    buffered = 0;
    abort.abort();
    if (!stream.destroyed && !stream.closed) {
      // Keep reading (and discarding) so the client's window never blocks the close.
      stream.resume();
      if (!stream.headersSent) {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", ...statusOf(err) },
          { endStream: true },
        );
      } else {
        trailers = statusOf(err);
        stream.end();
      }
    }
    return true;
  };
  /** The server ends the call: the client is told, the route learns it. */
  const kill = (err: ConnectError) => {
    if (finish(err)) handlers?.onAbort(err);
  };
  const shutdown = (err: ConnectError) => kill(err);
  env.calls.add(shutdown);

  stream.on("wantTrailers", () => {
    if (!stream.destroyed) stream.sendTrailers(trailers);
  });
  const cancelled = () => {
    if (finish(undefined)) {
      handlers?.onAbort(new ConnectError("the client cancelled the call", Code.Canceled));
    }
  };
  stream.on("aborted", cancelled);
  stream.on("close", () => {
    if (finish(undefined)) {
      handlers?.onAbort(new ConnectError("the client cancelled the call", Code.Canceled));
    }
  });

  const pump = () => {
    const h = handlers;
    if (h === undefined) return;
    while (!finished && !paused && buffered >= 5) {
      let head = chunks[0] as Buffer;
      if (head.length < 5) {
        head = Buffer.concat(chunks);
        chunks = [head];
      }
      const flags = head[0] as number;
      const length = head.readUInt32BE(1);
      if (flags !== 0) {
        kill(
          new ConnectError(
            flags === 1
              ? "compressed messages are not supported: send uncompressed messages (grpc-encoding identity)"
              : `invalid message flags 0x${flags.toString(16)}`,
            flags === 1 ? Code.Unimplemented : Code.Internal,
          ),
        );
        return;
      }
      if (length > env.readMaxBytes) {
        kill(
          new ConnectError(
            `message size ${length} is larger than configured readMaxBytes ${env.readMaxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      if (buffered < 5 + length) break;
      if (head.length < 5 + length) {
        head = Buffer.concat(chunks);
        chunks = [head];
      }
      const message = head.subarray(5, 5 + length);
      if (head.length === 5 + length) chunks.shift();
      else chunks[0] = head.subarray(5 + length);
      buffered -= 5 + length;
      try {
        h.onMessage(message);
      } catch (err) {
        kill(new ConnectError(`internal error: ${(err as Error).message}`, Code.Internal));
      }
    }
    if (finished || paused || !inputEnded || endDelivered) return;
    if (buffered > 0) {
      kill(new ConnectError("the request ended inside a message", Code.Internal));
      return;
    }
    endDelivered = true;
    h.onEnd();
  };

  const call: RawGrpcCall = {
    headers,
    peer,
    signal: abort.signal,
    send(message) {
      if (finished || stream.destroyed) return false;
      if (message.length > env.writeMaxBytes) {
        kill(
          new ConnectError(
            `message size ${message.length} is larger than configured writeMaxBytes ${env.writeMaxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return false;
      }
      if (!stream.headersSent) {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc" },
          { waitForTrailers: true },
        );
      }
      const envelope = Buffer.allocUnsafe(5 + message.length);
      envelope[0] = 0;
      envelope.writeUInt32BE(message.length, 1);
      envelope.set(message, 5);
      return stream.write(envelope);
    },
    drained() {
      if (finished || stream.destroyed || !stream.writableNeedDrain) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          stream.off("drain", done);
          abort.signal.removeEventListener("abort", done);
          resolve();
        };
        stream.on("drain", done);
        abort.signal.addEventListener("abort", done);
      });
    },
    pause() {
      if (paused) return;
      paused = true;
      stream.pause();
    },
    resume() {
      if (!paused || finished) return;
      paused = false;
      stream.resume();
      pump();
    },
    end(err) {
      finish(err);
    },
  };

  const encoding = headers["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity") {
    finish(
      new ConnectError(
        `grpc-encoding "${String(encoding)}" is not supported: send uncompressed messages (identity)`,
        Code.Unimplemented,
      ),
    );
    return;
  }
  const timeout = headers["grpc-timeout"];
  if (typeof timeout === "string") {
    const m = /^(\d{1,8})([HMSmun])$/.exec(timeout);
    if (!m) {
      finish(
        new ConnectError(
          `invalid grpc-timeout "${timeout}": expected 1-8 digits and a unit (H M S m u n)`,
          Code.InvalidArgument,
        ),
      );
      return;
    }
    const ms = Number(m[1]) * (grpcTimeoutUnitsMs[m[2] as string] as number);
    deadline = setTimeout(
      () => kill(new ConnectError("deadline exceeded", Code.DeadlineExceeded)),
      Math.max(0, Math.min(ms, 2_147_483_647)),
    );
    deadline.unref();
  }

  const begin = () => {
    if (finished) return;
    try {
      handlers = route.start(call);
    } catch (err) {
      finish(new ConnectError(`internal error: ${(err as Error).message}`, Code.Internal));
      return;
    }
    stream.on("data", (chunk: Buffer) => {
      if (finished || chunk.length === 0) return;
      chunks.push(chunk);
      buffered += chunk.length;
      pump();
    });
    // grpc-js cancels with END_STREAM, then RST_STREAM: the route may see
    // that as the client's end (onEnd) before the reset (then nothing more).
    stream.on("end", () => {
      if (stream.aborted || (stream.rstCode ?? 0) !== 0) return;
      inputEnded = true;
      pump();
    });
  };
  if (env.interceptors.length === 0) {
    begin();
    return;
  }
  void checkInterceptors(route, headers, peer, abort.signal, env.interceptors).then((refusal) => {
    if (refusal !== undefined) finish(refusal);
    else begin();
  });
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
