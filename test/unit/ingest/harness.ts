/**
 * A real AgentService server (common/rpc-server.ts) around createAgentIngest
 * with a fake leader ClusterHandle and a manual clock, plus polling helpers.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createManualClock, type ManualClock } from "../../../common/clock.ts";
import { createGrpcClient, type GrpcClient } from "../../../common/grpc-client.ts";
import { type Logger, silentLogger } from "../../../common/log.ts";
import { type RpcServer, serve, startRpcServer } from "../../../common/rpc-server.ts";
import { createComponentService } from "../../../coordinator/src/api/component-service.ts";
import {
  type AgentIngest,
  type AgentIngestLimits,
  agentIngestReadMaxBytes,
  createAgentIngest,
} from "../../../coordinator/src/ingest/index.ts";
import {
  AgentService,
  type ReportSchema,
  type RoleProbeSchema,
} from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentService } from "../../../proto/gen/understudy/api/v1/component_service_pb.ts";
import type { MetricSampleSchema } from "../../../proto/gen/understudy/common/v1/metric_pb.ts";
import { type AgentConn, openAgentConn } from "./agent-conn.ts";
import { createFakeCluster, type FakeCluster } from "./fake-cluster.ts";

/** 2023-11-14T22:13:20Z: a realistic wall clock for the manual clock. */
export const T0 = 1_700_000_000_000;

export interface Harness {
  clock: ManualClock;
  cluster: FakeCluster;
  ingest: AgentIngest;
  server: RpcServer;
  client: GrpcClient<typeof AgentService>;
  api: GrpcClient<typeof ComponentService>;
  conn(): AgentConn;
  close(): Promise<void>;
}

export interface HarnessOptions {
  log?: Logger;
  limits?: Partial<AgentIngestLimits>;
  historyDir?: string;
  clock?: ManualClock;
  cluster?: FakeCluster;
  /**
   * How AgentService is registered: `ingest.rpc` (frames, the hand-written
   * decoder; default, what the coordinator serves) or
   * `serve(AgentService, ingest.service)` (protobuf-es decodes first).
   */
  registration?: "frames" | "classic";
}

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const clock = o.clock ?? createManualClock(T0);
  const cluster = o.cluster ?? createFakeCluster(clock);
  const ingest = createAgentIngest({
    cluster,
    clock,
    log: o.log ?? silentLogger,
    autoMaintain: false,
    limits: o.limits,
    historyDir: o.historyDir,
  });
  await ingest.start();
  const server = await startRpcServer({
    listen: "127.0.0.1:0",
    services: [
      o.registration === "classic" ? serve(AgentService, ingest.service) : ingest.rpc,
      serve(ComponentService, createComponentService({ cluster, ingest, clock })),
    ],
    readMaxBytes: agentIngestReadMaxBytes(o.limits),
  });
  const client = createGrpcClient(AgentService, server.address);
  const api = createGrpcClient(ComponentService, server.address);
  const conns: AgentConn[] = [];
  return {
    clock,
    cluster,
    ingest,
    server,
    client,
    api,
    conn() {
      const c = openAgentConn(server.address, client);
      conns.push(c);
      return c;
    },
    async close() {
      for (const c of conns) c.cancel();
      client.close();
      api.close();
      await ingest.close();
      await server.close(200);
    },
  };
}

export function sample(
  name: string,
  value: number,
  extra: { unit?: string; labels?: Record<string, string> } = {},
): MessageInitShape<typeof MetricSampleSchema> {
  return { name, value, unit: "ratio", ...extra };
}

export function report(
  seq: number,
  tMs: number,
  samples: MessageInitShape<typeof MetricSampleSchema>[] = [sample("cpu.load", seq / 100)],
  extra: {
    probes?: MessageInitShape<typeof RoleProbeSchema>[];
    heartbeatOnly?: boolean;
    replayed?: boolean;
  } = {},
): MessageInitShape<typeof ReportSchema> {
  return { sequence: BigInt(seq), timestampUnixMs: BigInt(tMs), samples, ...extra };
}

/** Polls `cond` every 5 ms (bounded by timeoutMs). */
export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
