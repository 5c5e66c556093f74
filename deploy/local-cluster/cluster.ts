/**
 * The local demo cluster on loopback, as real processes: a nats-server, three
 * coordinators, three packager-nodes with their agents, and the encoder pool
 * (two sources with agents) once a stream exists. Used by `understudy demo`
 * and the end-to-end tests.
 */
import { join } from "node:path";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { type NatsServerHandle, startNatsServer } from "../../common/nats-server.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ClusterService, NodeRole } from "../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { StreamService } from "../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import { LatencyMode } from "../../proto/gen/understudy/common/v1/stream_pb.ts";
import { createSupervisor, freePorts, type RoleProcess, type Supervisor } from "./supervisor.ts";
import { type RunTokens, writeRunTokens } from "./tokens.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function say(msg: string) {
  process.stdout.write(`[demo ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(100);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (${(lastErr as Error).message})` : ""}`,
  );
}

export interface Cluster {
  sup: Supervisor;
  /** Every process runs with bearer-token auth; the demo's own calls use these tokens. */
  tokens: RunTokens;
  coordinators: { id: string; api: string; proc: RoleProcess }[];
  packagers: { id: string; http: string; proc: RoleProcess }[];
  natsUrl: string;
  /** Stops nats-server (an outage); `startNats` brings it back on the same port. */
  stopNats(): Promise<void>;
  startNats(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(runDir: string, predictive: boolean): Promise<Cluster> {
  let nats: NatsServerHandle | undefined = await startNatsServer();
  const natsPort = nats.port;
  const natsUrl = nats.url;
  const sup = createSupervisor({ runDir });
  const tokens = writeRunTokens(join(runDir, "tokens"));
  const ports = await freePorts(3 + 3 + 3 + 3);
  const coord = [0, 1, 2].map((i) => ({
    id: `c${i + 1}`,
    api: `127.0.0.1:${ports[i]}`,
    peer: `127.0.0.1:${ports[3 + i]}`,
  }));
  const bootstrap = coord.map((c) => ({ id: c.id, peerAddress: c.peer, apiAddress: c.api }));
  const coordinators = await Promise.all(
    coord.map(async (c) => ({
      id: c.id,
      api: c.api,
      proc: await sup.start(
        c.id,
        "coordinator",
        {
          nodeId: c.id,
          dataDir: join(runDir, `${c.id}-data`),
          peerListen: c.peer,
          apiListen: c.api,
          bootstrap,
          nats: { servers: [natsUrl] },
          placement: { intervalMs: 500 },
          predict: { enabled: predictive },
          handover: { stepDeadlineMs: 8000, switchAheadSegments: 2 },
          ...tokens.coordinatorConfig(),
        },
        { ready: /"event":"listening"/ },
      ),
    })),
  );
  say(`coordinators ${coord.map((c) => `${c.id}@${c.api}`).join(" ")}; nats ${natsUrl}`);
  const addresses = coord.map((c) => c.api);
  const zones = ["z1", "z2", "z3"];
  const packagers = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const id = `pkg-${i + 1}`;
      const http = `127.0.0.1:${ports[6 + i]}`;
      const control = `127.0.0.1:${ports[9 + i]}`;
      const proc = await sup.start(
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
        { ready: /listening on/, extraArgs: ["--dev-fault-injection"] },
      );
      await sup.start(
        `agent-${id}`,
        "agent",
        {
          component: {
            id,
            role: "packager",
            labels: { region: "local", zone: zones[i] },
            capacity: { maxStreams: 10 },
            baseUrl: `http://${http}`,
            controlAddress: control,
          },
          coordinator: { addresses, tokenFile: tokens.files.agent },
          sampling: { intervalMs: 1000, heartbeatIntervalMs: 250 },
          probes: { packagerStatusUrl: `http://${http}/status` },
          // The agent watches the packager process: if it dies while the
          // agent lives, the coordinator learns it from proc.up.
          watch: { pid: proc.pid() },
          logLevel: "warn",
        },
        { ready: "spawn" },
      );
      return { id, http: `http://${http}`, proc };
    }),
  );
  say(`packagers ${packagers.map((p) => `${p.id}@${p.http}`).join(" ")}`);
  for (const e of ["enc-1", "enc-2"]) {
    await sup.start(
      `agent-${e}`,
      "agent",
      {
        component: { id: e, role: "encoder", labels: { region: "local", zone: "z1" } },
        coordinator: { addresses, tokenFile: tokens.files.agent },
        sampling: { intervalMs: 1000, heartbeatIntervalMs: 250 },
        logLevel: "warn",
      },
      { ready: "spawn" },
    );
  }
  return {
    sup,
    tokens,
    coordinators,
    packagers,
    natsUrl,
    async stopNats() {
      await nats?.stop();
      nats = undefined;
    },
    async startNats() {
      nats ??= await startNatsServer({ port: natsPort });
    },
    async stop() {
      await sup.stopAll();
      await nats?.stop();
    },
  };
}

export async function leaderOf(cluster: Cluster): Promise<{ id: string; api: string } | undefined> {
  for (const c of cluster.coordinators) {
    if (!c.proc.running()) continue;
    const client = createGrpcClient(ClusterService, c.api, {
      bearerToken: cluster.tokens.tokens.reader,
    });
    try {
      const st = await client.getStatus({}, { timeoutMs: 500 });
      if (st.node?.role === NodeRole.LEADER) return { id: c.id, api: c.api };
    } catch {
      // down or stopped
    } finally {
      client.close();
    }
  }
  return undefined;
}

/** Creates the demo stream, starts the encoder pool, waits until a packager serves it. */
export async function startStream(cluster: Cluster) {
  const leader = await waitUntil("a coordinator leader", 15_000, () => leaderOf(cluster));
  say(`leader is ${leader.id}`);
  const origin = Math.floor(Date.now() / 2000) * 2000;
  const spec = {
    id: "demo",
    displayName: "understudy demo",
    renditions: [
      {
        id: "360p",
        bandwidthBps: 709_684n,
        width: 640,
        height: 360,
        frameRate: 30,
        codecs: "avc1.42c01e,mp4a.40.2",
      },
      {
        id: "180p",
        bandwidthBps: 292_064n,
        width: 320,
        height: 180,
        frameRate: 30,
        codecs: "avc1.42c01e,mp4a.40.2",
      },
    ],
    shardDurationMs: 500,
    segmentPolicy: {
      segmentDurationTargetMs: 2000,
      segmentDurationMinMs: 500,
      segmentDurationMaxMs: 4000,
      partDurationMs: 500,
    },
    replicationFactor: 2,
    latencyMode: LatencyMode.LOW_LATENCY,
    placement: { zoneAntiAffinity: true },
    timelineOriginUnixMs: BigInt(origin),
  };
  // A write can meet a leader change (the machine is busy starting every
  // process): retry on whichever node leads, with the same request id so it
  // applies once.
  await waitUntil("the stream to be created", 20_000, async () => {
    const l = await leaderOf(cluster);
    if (!l) return undefined;
    const c = createGrpcClient(StreamService, l.api, { bearerToken: cluster.tokens.tokens.admin });
    try {
      await c.createStream({ spec, requestId: "demo-create" }, { timeoutMs: 5000 });
      return true;
    } finally {
      c.close();
    }
  });
  const addresses = cluster.coordinators.map((c) => c.api);
  for (const [i, e] of ["enc-1", "enc-2"].entries()) {
    await cluster.sup.start(
      e,
      "source",
      {
        streamId: "demo",
        encoderId: e,
        coordinator: { addresses, tokenFile: cluster.tokens.files.encoder },
        logLevel: "warn",
      },
      { ready: "spawn" },
    );
    void i;
  }
  // The primary is whoever placement chose (the chain graph names it); wait
  // until it serves playlists.
  const primary = await waitUntil("the stream to be placed and served", 30_000, async () => {
    const l = (await leaderOf(cluster)) ?? leader;
    const c = createGrpcClient(ChainService, l.api);
    let primaryId: string | undefined;
    try {
      const g = (await c.getChain({ streamId: "demo" }, { timeoutMs: 1000 })).graph;
      primaryId = g?.assignments.find(
        (a) => a.renditionId === "360p" && a.lastMsn === undefined,
      )?.primaryPackagerId;
    } finally {
      c.close();
    }
    const p = cluster.packagers.find((x) => x.id === primaryId);
    if (!p) return undefined;
    const r = await fetch(`${p.http}/live/demo/360p/index.m3u8`).catch(() => undefined);
    return r?.ok && (await r.text()).includes("#EXTINF") ? p : undefined;
  });
  return { leader, spec, addresses, primary };
}
