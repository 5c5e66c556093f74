/**
 * A whole understudy cluster as real processes on loopback, for the
 * coordinator-driven data-plane tests: three coordinators (Raft), three
 * packager-nodes each with its agent (role packager, zones z1..z3), and two
 * encoders (`understudy source` following the coordinator's shard map) each
 * with its agent (role encoder). Predictions are off so only failures move
 * the stream.
 */
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createGrpcClient } from "../../common/grpc-client.ts";
import type { RoleProcess } from "../../deploy/local-cluster/supervisor.ts";
import { type RunTokens, writeRunTokens } from "../../deploy/local-cluster/tokens.ts";
import {
  type ChainGraph,
  ChainService,
} from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ClusterService, NodeRole } from "../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { ComponentService } from "../../proto/gen/understudy/api/v1/component_service_pb.ts";
import {
  type GetStreamResponse,
  StreamService,
} from "../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import { ComponentStatus } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  SegmentPolicySchema,
  type Stream,
} from "../../proto/gen/understudy/common/v1/stream_pb.ts";
import { streamSpec } from "../support/cluster.ts";
import {
  type E2ERun,
  fixtureRenditions,
  freePorts,
  segmentDurationMs,
  waitUntil,
} from "./support.ts";

export interface Member {
  readonly id: string;
  readonly proc: RoleProcess;
  /** The host's agent (absent for coordinators). */
  readonly agent?: RoleProcess;
}

export interface CoordinatedCluster {
  readonly coordinators: (Member & { api: string })[];
  readonly packagers: (Member & { url: string; agent: RoleProcess })[];
  readonly encoders: (Member & { agent: RoleProcess })[];
  readonly addresses: string[];
  /** Every process runs with bearer-token auth; tests' own calls send these. */
  readonly tokens: RunTokens;
  /** Client options sending the admin token (writes and reads). */
  readonly admin: { readonly bearerToken: string };
  /** The API address of the current Raft leader. */
  leader(): Promise<string>;
  /** ChainService.GetChain (linearizable) on the leader. */
  chain(streamId: string): Promise<ChainGraph>;
  /**
   * Follows ChainService.WatchChain on the leader and records when each
   * committed change of the stream arrived (wall ms in this process), so two
   * transitions can be timed against each other without polling error.
   */
  watchChain(streamId: string): Promise<ChainWatch>;
}

export interface ChainWatch {
  readonly updates: { readonly atMs: number; readonly graph: ChainGraph }[];
  readonly errors: string[];
  /** Wall ms of the first update at or after `sinceMs` matching `pred`. */
  firstAt(pred: (g: ChainGraph) => boolean, sinceMs?: number): number | undefined;
  stop(): void;
}

const heartbeatIntervalMs = 250;

export async function startCoordinatedCluster(
  run: E2ERun,
  streamId: string,
): Promise<CoordinatedCluster> {
  const ports = await freePorts(12);
  const tokens = writeRunTokens(join(run.runDir, "tokens"));
  const admin = { bearerToken: tokens.tokens.admin };
  const coord = [0, 1, 2].map((i) => ({
    id: `c${i + 1}`,
    api: `127.0.0.1:${ports[i]}`,
    peer: `127.0.0.1:${ports[3 + i]}`,
  }));
  const bootstrap = coord.map((c) => ({ id: c.id, peerAddress: c.peer, apiAddress: c.api }));
  const addresses = coord.map((c) => c.api);
  const coordinators = await Promise.all(
    coord.map(async (c) => ({
      id: c.id,
      api: c.api,
      proc: await run.sup.start(
        c.id,
        "coordinator",
        {
          nodeId: c.id,
          dataDir: join(run.runDir, `${c.id}-data`),
          peerListen: c.peer,
          apiListen: c.api,
          bootstrap,
          placement: { intervalMs: 500 },
          predict: { enabled: false },
          // info: placement commits and handover steps land in the run directory's logs.
          log: { level: "info" },
          ...tokens.coordinatorConfig(),
        },
        { ready: /"event":"listening"/ },
      ),
    })),
  );
  const packagers = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const id = `pkg-${i + 1}`;
      const http = `127.0.0.1:${ports[6 + i]}`;
      const control = `127.0.0.1:${ports[9 + i]}`;
      const proc = await run.sup.start(
        id,
        "packager",
        {
          nodeId: id,
          mode: "origin",
          listen: http,
          control,
          controlAuth: { tokens: tokens.controlTokens },
          log: { level: "warn" },
        },
        { ready: /listening on/ },
      );
      const agent = await run.sup.start(
        `agent-${id}`,
        "agent",
        {
          component: {
            id,
            role: "packager",
            labels: { region: "local", zone: `z${i + 1}` },
            capacity: { maxStreams: 10 },
            baseUrl: `http://${http}`,
            controlAddress: control,
          },
          coordinator: { addresses, tokenFile: tokens.files.agent },
          sampling: { intervalMs: 1000, heartbeatIntervalMs },
          probes: { packagerStatusUrl: `http://${http}/status` },
          logLevel: "warn",
        },
        { ready: "spawn" },
      );
      return { id, url: `http://${http}`, proc, agent };
    }),
  );
  const encoders = await Promise.all(
    ["enc-1", "enc-2"].map(async (id, i) => {
      const agent = await run.sup.start(
        `agent-${id}`,
        "agent",
        {
          component: { id, role: "encoder", labels: { region: "local", zone: `z${i + 1}` } },
          coordinator: { addresses, tokenFile: tokens.files.agent },
          sampling: { intervalMs: 1000, heartbeatIntervalMs },
          logLevel: "warn",
        },
        { ready: "spawn" },
      );
      // Follows the coordinator: waits (bounded backoff) until the stream exists.
      const proc = await run.sup.start(
        id,
        "source",
        {
          streamId,
          encoderId: id,
          coordinator: { addresses, tokenFile: tokens.files.encoder },
          logLevel: "warn",
        },
        { ready: "spawn" },
      );
      return { id, proc, agent };
    }),
  );

  const leader = () =>
    waitUntil("a coordinator leader", 15_000, async () => {
      for (const c of coordinators) {
        if (!c.proc.running()) continue;
        const client = createGrpcClient(ClusterService, c.api, admin);
        try {
          const st = await client.getStatus({}, { timeoutMs: 500 });
          if (st.node?.role === NodeRole.LEADER) return c.api;
        } catch {
          // down or not ready
        } finally {
          client.close();
        }
      }
      return undefined;
    });
  return {
    coordinators,
    packagers,
    encoders,
    addresses,
    tokens,
    admin,
    leader,
    async watchChain(streamId) {
      const client = createGrpcClient(ChainService, await leader(), {
        ...admin,
        keepaliveMs: 10_000,
      });
      const ac = new AbortController();
      const updates: { atMs: number; graph: ChainGraph }[] = [];
      const errors: string[] = [];
      void (async () => {
        try {
          for await (const u of client.watchChain({ streamId }, { signal: ac.signal })) {
            if (u.graph) updates.push({ atMs: Date.now(), graph: u.graph });
          }
        } catch (err) {
          if (!ac.signal.aborted) errors.push((err as Error).message);
        } finally {
          client.close();
        }
      })();
      return {
        updates,
        errors,
        firstAt(pred, sinceMs = 0) {
          return updates.find((u) => u.atMs >= sinceMs && pred(u.graph))?.atMs;
        },
        stop: () => ac.abort(),
      };
    },
    async chain(streamId) {
      const client = createGrpcClient(ChainService, await leader(), admin);
      try {
        const { graph } = await client.getChain({ streamId }, { timeoutMs: 2000 });
        if (!graph) throw new Error(`GetChain(${streamId}) returned no graph`);
        return graph;
      } finally {
        client.close();
      }
    },
  };
}

/**
 * Segment bounds of the fixture stream: its keyframes are 2 s apart
 * (keyframeIntervalMs), so every segment is a whole number of 2 s; here
 * exactly 2 s (no granularity change, EXT-X-TARGETDURATION 2).
 */
export const fixtureSegmentPolicy = {
  segmentDurationTargetMs: 2000,
  segmentDurationMinMs: 2000,
  segmentDurationMaxMs: 2000,
  partDurationMs: 500,
  keyframeIntervalMs: 2000,
};

export interface FixtureStreamOptions {
  /** Default: now, on a 2 s boundary. */
  readonly originMs?: number;
  /** Default: fixtureSegmentPolicy. */
  readonly segmentPolicy?: typeof fixtureSegmentPolicy;
}

/** CreateStream for the fixture ladder: test/support's spec (0.5 s shards/parts, 2 s segments, LL-HLS, replication 2). */
export async function createFixtureStream(
  cluster: CoordinatedCluster,
  streamId: string,
  nowMs = Date.now(),
  opts: FixtureStreamOptions = {},
): Promise<number> {
  const originMs = opts.originMs ?? Math.floor(nowMs / segmentDurationMs) * segmentDurationMs;
  const client = createGrpcClient(StreamService, await cluster.leader(), cluster.admin);
  try {
    await client.createStream(
      {
        spec: {
          ...streamSpec(streamId),
          segmentPolicy: opts.segmentPolicy ?? fixtureSegmentPolicy,
          renditions: fixtureRenditions.map((r) => {
            const [w, h] = r.resolution.split("x").map(Number);
            return {
              id: r.id,
              bandwidthBps: BigInt(r.bandwidth),
              width: w!,
              height: h!,
              frameRate: r.frameRate,
              codecs: r.codecs,
            };
          }),
          placement: { zoneAntiAffinity: true },
          timelineOriginUnixMs: BigInt(originMs),
        },
      },
      { timeoutMs: 5000 },
    );
  } finally {
    client.close();
  }
  return originMs;
}

/** StreamService.UpdateStream on the leader: the stored spec with a new segment policy (compare-and-set on its version). */
export async function updateSegmentPolicy(
  cluster: CoordinatedCluster,
  streamId: string,
  segmentPolicy: typeof fixtureSegmentPolicy,
): Promise<Stream> {
  const client = createGrpcClient(StreamService, await cluster.leader(), cluster.admin);
  try {
    const { stream } = await client.getStream({ streamId }, { timeoutMs: 2000 });
    if (!stream?.spec) throw new Error(`GetStream(${streamId}) returned no spec`);
    const res = await client.updateStream(
      {
        spec: { ...stream.spec, segmentPolicy: create(SegmentPolicySchema, segmentPolicy) },
        expectedVersion: stream.version,
      },
      { timeoutMs: 5000 },
    );
    if (!res.stream) throw new Error(`UpdateStream(${streamId}) returned no stream`);
    return res.stream;
  } finally {
    client.close();
  }
}

/** StreamService.GetStream on the leader (linearizable), with its segment granularity. */
export async function getStream(
  cluster: CoordinatedCluster,
  streamId: string,
): Promise<GetStreamResponse> {
  const client = createGrpcClient(StreamService, await cluster.leader(), cluster.admin);
  try {
    return await client.getStream({ streamId }, { timeoutMs: 2000 });
  } finally {
    client.close();
  }
}

/**
 * Waits until the 3 packagers and 2 encoders are registered HEALTHY, so the
 * first placement round of a stream created next sees all of them.
 */
export async function waitAllComponentsHealthy(cluster: CoordinatedCluster): Promise<void> {
  await waitUntil("3 packagers and 2 encoders registered HEALTHY", 20_000, async () => {
    const client = createGrpcClient(ComponentService, await cluster.leader(), cluster.admin);
    try {
      const { components } = await client.listComponents(
        { status: ComponentStatus.HEALTHY },
        { timeoutMs: 1000 },
      );
      return components.length === 5 ? true : undefined;
    } finally {
      client.close();
    }
  });
}
