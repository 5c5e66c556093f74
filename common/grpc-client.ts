/**
 * @grpc/grpc-js clients built from protobuf-es generated service descriptors,
 * so agents, tools and interop tests use a standard gRPC stack against our
 * connect-node servers. Methods are typed from the descriptor: unary returns a
 * promise, server-streaming an async iterable, client-streaming takes an
 * async iterable, bidi returns a duplex handle.
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

export interface CallOptions {
  /** Deadline relative to now. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

export interface BidiCall<I extends DescMessage, O extends DescMessage> {
  send(msg: MessageInitShape<I>): boolean;
  end(): void;
  cancel(): void;
  readonly responses: AsyncIterable<MessageShape<O>>;
  readonly call: grpc.ClientDuplexStream<MessageShape<I>, MessageShape<O>>;
}

type MethodFn<M> = M extends { methodKind: "unary"; input: infer I; output: infer O }
  ? I extends DescMessage
    ? O extends DescMessage
      ? (req: MessageInitShape<I>, opts?: CallOptions) => Promise<MessageShape<O>>
      : never
    : never
  : M extends { methodKind: "server_streaming"; input: infer I; output: infer O }
    ? I extends DescMessage
      ? O extends DescMessage
        ? (req: MessageInitShape<I>, opts?: CallOptions) => AsyncIterable<MessageShape<O>>
        : never
      : never
    : M extends { methodKind: "client_streaming"; input: infer I; output: infer O }
      ? I extends DescMessage
        ? O extends DescMessage
          ? (
              reqs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
              opts?: CallOptions,
            ) => Promise<MessageShape<O>>
          : never
        : never
      : M extends { methodKind: "bidi_streaming"; input: infer I; output: infer O }
        ? I extends DescMessage
          ? O extends DescMessage
            ? (opts?: CallOptions) => BidiCall<I, O>
            : never
          : never
        : never;

export type GrpcClient<S extends DescService> = {
  [K in keyof S["method"]]: MethodFn<S["method"][K]>;
} & {
  close(): void;
  readonly raw: grpc.Client;
};

export interface GrpcClientOptions {
  credentials?: grpc.ChannelCredentials;
  /** Sends HTTP/2 pings at this interval so dead peers are noticed (0 = off). */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  maxReceiveMessageBytes?: number;
  channelOptions?: grpc.ChannelOptions;
  /**
   * Sent as `authorization: Bearer <token>` on every call (unless the call's
   * own metadata has an authorization); a function is asked on every call, so
   * a token file re-read on change (common/rpc-auth.ts TokenSource) takes effect.
   */
  bearerToken?: string | (() => string);
}

export function createGrpcClient<S extends DescService>(
  service: S,
  address: string,
  opts: GrpcClientOptions = {},
): GrpcClient<S> {
  const channelOptions: grpc.ChannelOptions = {
    "grpc.max_receive_message_length": opts.maxReceiveMessageBytes ?? 16 * 1024 * 1024,
    ...(opts.keepaliveMs
      ? {
          "grpc.keepalive_time_ms": opts.keepaliveMs,
          "grpc.keepalive_timeout_ms": opts.keepaliveTimeoutMs ?? 5000,
          "grpc.keepalive_permit_without_calls": 1,
        }
      : {}),
    ...opts.channelOptions,
  };
  const raw = new grpc.Client(
    address,
    opts.credentials ?? grpc.credentials.createInsecure(),
    channelOptions,
  );
  const client: Record<string, unknown> = { raw, close: () => raw.close() };
  const token = opts.bearerToken;
  const auth = token === undefined ? undefined : typeof token === "string" ? () => token : token;
  for (const method of service.methods) {
    client[method.localName] = bind(raw, service, method, auth);
  }
  return client as GrpcClient<S>;
}

function bind(
  raw: grpc.Client,
  service: DescService,
  method: DescMethod,
  token: (() => string) | undefined,
) {
  const path = `/${service.typeName}/${method.name}`;
  const serialize = (m: MessageInitShape<DescMessage>) =>
    Buffer.from(toBinary(method.input, create(method.input, m)));
  const deserialize = (b: Buffer) => fromBinary(method.output, b);
  const callOpts = (o: CallOptions = {}): [grpc.Metadata, grpc.CallOptions] => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(o.metadata ?? {})) md.set(k, v);
    if (token && md.get("authorization").length === 0) md.set("authorization", `Bearer ${token()}`);
    return [md, o.timeoutMs ? { deadline: Date.now() + o.timeoutMs } : {}];
  };
  // The listener is removed when the call ends (every call kind emits
  // "status" exactly once), so a long-lived signal shared by many calls does
  // not accumulate one listener per call.
  const abortable = (call: grpc.Call, signal?: AbortSignal) => {
    if (!signal) return;
    if (signal.aborted) {
      call.cancel();
      return;
    }
    const onAbort = () => call.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    call.once("status", () => signal.removeEventListener("abort", onAbort));
  };
  switch (method.methodKind) {
    case "unary":
      return (req: MessageInitShape<DescMessage>, o?: CallOptions) =>
        new Promise((resolve, reject) => {
          const [md, co] = callOpts(o);
          const call = raw.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            req,
            md,
            co,
            (err, res) => (err ? reject(err) : resolve(res)),
          );
          abortable(call, o?.signal);
        });
    case "server_streaming":
      return (req: MessageInitShape<DescMessage>, o?: CallOptions) => {
        const [md, co] = callOpts(o);
        const call = raw.makeServerStreamRequest(path, serialize, deserialize, req, md, co);
        abortable(call, o?.signal);
        return call;
      };
    case "client_streaming":
      return (
        reqs:
          | AsyncIterable<MessageInitShape<DescMessage>>
          | Iterable<MessageInitShape<DescMessage>>,
        o?: CallOptions,
      ) =>
        new Promise((resolve, reject) => {
          const [md, co] = callOpts(o);
          const call = raw.makeClientStreamRequest(
            path,
            serialize,
            deserialize,
            md,
            co,
            (err, res) => (err ? reject(err) : resolve(res)),
          );
          abortable(call, o?.signal);
          void (async () => {
            try {
              for await (const r of reqs) {
                if (!call.write(r)) await new Promise((d) => call.once("drain", d));
              }
              call.end();
            } catch (err) {
              call.cancel();
              reject(err);
            }
          })();
        });
    case "bidi_streaming":
      return (o?: CallOptions) => {
        const [md, co] = callOpts(o);
        const call = raw.makeBidiStreamRequest(path, serialize, deserialize, md, co);
        abortable(call, o?.signal);
        return {
          call,
          send: (m: MessageInitShape<DescMessage>) => call.write(m),
          end: () => call.end(),
          cancel: () => call.cancel(),
          responses: call,
        };
      };
  }
}
