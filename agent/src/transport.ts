/**
 * The agent stream over gRPC (@grpc/grpc-js, from the generated
 * AgentService descriptor via common/grpc-client.ts).
 *
 * Outgoing messages are written as already-encoded bytes: reports sit encoded
 * in the replay buffer, so the call's serializer is the identity rather than
 * the typed `send()` of the shared client, which would need a decode and an
 * encode per report.
 *
 * One channel (one HTTP/2 connection) per stream, closed when the stream
 * ends. The agent has one stream at a time and opens a new one only after a
 * failure or redirect, so reuse would save little, while a kept channel
 * carries grpc-js's reconnect-backoff state into the next attempt and keeps
 * pinging an idle follower. HTTP/2 keepalive pings on the stream's own
 * connection are how the agent notices a leader that hangs or drops off the
 * network (no TCP error ever comes): within keepaliveIntervalMs +
 * keepaliveTimeoutMs.
 */
import * as grpc from "@grpc/grpc-js";
import { createGrpcClient, type GrpcClient } from "../../common/grpc-client.ts";
import {
  AgentService,
  type CoordinatorMessage,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { decodeCoordinatorMessage } from "./wire.ts";

export interface AgentStream {
  /** Writes one encoded AgentMessage; false means the caller should `waitDrain()` before more. */
  write(bytes: Uint8Array): boolean;
  waitDrain(): Promise<void>;
  /** Coordinator messages in order; ends when the coordinator ends the stream, throws on errors. */
  readonly messages: AsyncIterable<CoordinatorMessage>;
  /** Abandons the stream (cancels the call). */
  cancel(): void;
}

export interface AgentTransport {
  connect(address: string): AgentStream;
  close(): void;
}

export interface GrpcAgentTransportOptions {
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Largest coordinator message accepted. */
  maxReceiveMessageBytes?: number;
  /** Bearer token for the coordinators (asked per stream, so a re-read token file takes effect). */
  token?: () => string;
}

const connectPath = `/${AgentService.typeName}/${AgentService.method.connect.name}`;

export function createGrpcAgentTransport(opts: GrpcAgentTransportOptions): AgentTransport {
  /** Channels of streams still open (at most one in normal operation). */
  const open = new Set<GrpcClient<typeof AgentService>>();
  return {
    connect(address) {
      const client = createGrpcClient(AgentService, address, {
        keepaliveMs: opts.keepaliveIntervalMs,
        keepaliveTimeoutMs: opts.keepaliveTimeoutMs,
        maxReceiveMessageBytes: opts.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
        channelOptions: {
          "grpc.initial_reconnect_backoff_ms": opts.backoffInitialMs,
          "grpc.max_reconnect_backoff_ms": opts.backoffMaxMs,
          // Pings only while the stream is open; the channel dies with it.
          "grpc.keepalive_permit_without_calls": 0,
        },
      });
      open.add(client);
      const md = new grpc.Metadata();
      if (opts.token) md.set("authorization", `Bearer ${opts.token()}`);
      const call: grpc.ClientDuplexStream<Uint8Array, CoordinatorMessage> =
        client.raw.makeBidiStreamRequest(
          connectPath,
          (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
          (b: Buffer) => decodeCoordinatorMessage(b),
          md,
        );
      // Errors surface through the async iterator; this listener only keeps an
      // 'error' emitted while nobody iterates from crashing the process.
      call.on("error", () => {});
      // Every call emits 'status' exactly once, however it ends.
      call.once("status", () => {
        open.delete(client);
        client.close();
      });
      return {
        write: (bytes) => call.write(bytes),
        waitDrain: () =>
          new Promise<void>((resolve) => {
            const done = () => {
              call.off("drain", done);
              call.off("close", done);
              call.off("error", done);
              resolve();
            };
            call.on("drain", done);
            call.on("close", done);
            call.on("error", done);
          }),
        messages: call,
        cancel: () => call.cancel(),
      };
    },
    close() {
      for (const c of open) c.close();
      open.clear();
    },
  };
}
