/**
 * The agent stream over gRPC (@grpc/grpc-js, from the generated
 * AgentService descriptor via common/grpc-client.ts).
 *
 * Outgoing messages are written as already-encoded bytes: reports sit encoded
 * in the replay buffer, so the call's serializer is the identity rather than
 * the typed `send()` of the shared client, which would need a decode and an
 * encode per report. Channels are kept per address (grpc-js reconnects them
 * itself); their reconnect backoff follows the agent's own bounds instead of
 * grpc-js's default of up to 120 s, so a restarted coordinator is found again
 * within `backoffMaxMs`.
 */
import type * as grpc from "@grpc/grpc-js";
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
}

/** Channels kept at most (configured coordinators plus redirect targets); the oldest is closed. */
const channelsMax = 32;
const connectPath = `/${AgentService.typeName}/${AgentService.method.connect.name}`;

export function createGrpcAgentTransport(opts: GrpcAgentTransportOptions): AgentTransport {
  const clients = new Map<string, GrpcClient<typeof AgentService>>();
  const clientFor = (address: string) => {
    let c = clients.get(address);
    if (!c) {
      c = createGrpcClient(AgentService, address, {
        keepaliveMs: opts.keepaliveIntervalMs,
        keepaliveTimeoutMs: opts.keepaliveTimeoutMs,
        maxReceiveMessageBytes: opts.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
        channelOptions: {
          "grpc.initial_reconnect_backoff_ms": opts.backoffInitialMs,
          "grpc.max_reconnect_backoff_ms": opts.backoffMaxMs,
        },
      });
      clients.set(address, c);
      if (clients.size > channelsMax) {
        const [oldest, oc] = clients.entries().next().value!;
        clients.delete(oldest);
        oc.close();
      }
    }
    return c;
  };
  return {
    connect(address) {
      const call: grpc.ClientDuplexStream<Uint8Array, CoordinatorMessage> = clientFor(
        address,
      ).raw.makeBidiStreamRequest(
        connectPath,
        (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
        (b: Buffer) => decodeCoordinatorMessage(b),
      );
      // Errors surface through the async iterator; this listener only keeps an
      // 'error' emitted while nobody iterates from crashing the process.
      call.on("error", () => {});
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
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}
