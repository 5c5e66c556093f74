/**
 * Test side of an agent stream over a real grpc-js client: send messages,
 * await the next CoordinatorMessage, await the final status (code, details).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { createGrpcClient, type GrpcClient } from "../../../common/grpc-client.ts";
import {
  type AgentMessageSchema,
  AgentService,
  type CoordinatorMessage,
  type HelloSchema,
  type ReportSchema,
} from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentRole } from "../../../proto/gen/understudy/common/v1/component_pb.ts";

export interface StreamEnd {
  code: number;
  details: string;
}

export interface AgentConn {
  send(m: MessageInitShape<typeof AgentMessageSchema>): void;
  hello(h?: MessageInitShape<typeof HelloSchema>): void;
  report(r: MessageInitShape<typeof ReportSchema>): void;
  /** Next message; rejects when the stream ended first or after timeoutMs. */
  next(timeoutMs?: number): Promise<CoordinatorMessage>;
  /** Resolves with the final status (code 0 = OK). */
  ended(timeoutMs?: number): Promise<StreamEnd>;
  /** Messages received so far and not yet taken by next(). */
  readonly buffered: CoordinatorMessage[];
  cancel(): void;
  close(): void;
}

/**
 * connect-node percent-encodes grpc-message with encodeURIComponent while
 * grpc-js decodes it with decodeURI, which leaves reserved characters
 * (":", ",", ";", "=", ...) as %XX; finish the decoding here.
 */
export function decodeDetails(details: string): string {
  try {
    return decodeURIComponent(details);
  } catch {
    return details;
  }
}

export function helloFor(
  componentId: string,
  instance = "inst-1",
  extra: MessageInitShape<typeof HelloSchema> = {},
): MessageInitShape<typeof HelloSchema> {
  return {
    componentId,
    role: ComponentRole.PACKAGER,
    host: `${componentId}.example`,
    agentInstanceId: instance,
    samplingIntervalMs: 1000,
    softwareVersion: "understudy-agent test",
    ...extra,
  };
}

export function openAgentConn(
  address: string,
  client?: GrpcClient<typeof AgentService>,
): AgentConn {
  const own = client === undefined;
  const c = client ?? createGrpcClient(AgentService, address);
  const call = c.connect();
  const buffered: CoordinatorMessage[] = [];
  let end: StreamEnd | undefined;
  const waiters: Array<() => void> = [];
  const wakeAll = () => {
    for (const w of waiters.splice(0)) w();
  };
  call.call.on("data", (m: CoordinatorMessage) => {
    buffered.push(m);
    wakeAll();
  });
  call.call.on("error", (err: grpc.ServiceError) => {
    end ??= { code: err.code, details: decodeDetails(err.details) };
    wakeAll();
  });
  call.call.on("status", (st: grpc.StatusObject) => {
    end ??= { code: st.code, details: decodeDetails(st.details) };
    wakeAll();
  });
  const wait = (timeoutMs: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
        timeoutMs,
      );
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  const conn: AgentConn = {
    buffered,
    send: (m) => {
      call.send(m);
    },
    hello: (h) => conn.send({ body: { case: "hello", value: h ?? helloFor("pkg-1") } }),
    report: (r) => conn.send({ body: { case: "report", value: r } }),
    async next(timeoutMs = 3000) {
      for (let i = 0; i < 1000; i++) {
        const m = buffered.shift();
        if (m !== undefined) return m;
        if (end !== undefined) throw new Error(`stream ended (code ${end.code}: ${end.details})`);
        await wait(timeoutMs, "a message");
      }
      throw new Error("unreachable");
    },
    async ended(timeoutMs = 3000) {
      for (let i = 0; i < 1000 && end === undefined; i++) await wait(timeoutMs, "the stream end");
      return end!;
    },
    cancel: () => call.cancel(),
    close() {
      call.cancel();
      if (own) c.close();
    },
  };
  return conn;
}
