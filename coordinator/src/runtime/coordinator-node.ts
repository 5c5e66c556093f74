/**
 * One coordinator node: durable log + Raft driver + FSM + listeners.
 * - peer listener: RaftService (gRPC over HTTP/2) for the other coordinators;
 * - API listener: integrator services, AgentService, health, reflection and
 *   plain HTTP extras (/metrics).
 * Services reach Raft only through the ClusterHandle built here.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Clock } from "../../../common/clock.ts";
import { systemClock } from "../../../common/clock.ts";
import { Code, ConnectError } from "../../../common/errors.ts";
import type { Logger } from "../../../common/log.ts";
import { createRng } from "../../../common/rng.ts";
import { ServingStatus } from "../../../common/rpc-health.ts";
import {
  type HttpFallback,
  type RpcServer,
  type ServiceRegistration,
  serve,
  startRpcServer,
} from "../../../common/rpc-server.ts";
import { ChainService } from "../../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ClusterService } from "../../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { HandoverService } from "../../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { StreamService } from "../../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import type { CommandSchema } from "../../../proto/gen/understudy/fsm/v1/fsm_pb.ts";
import { RaftService } from "../../../proto/gen/understudy/raft/v1/raft_pb.ts";
import { createNatsNoticeBus, type NoticeBus } from "../act/notice-bus.ts";
import { createNoticePublisher } from "../act/notice-publisher.ts";
import type { HandoverEffects } from "../act/orchestrator.ts";
import { createChainService } from "../api/chain-service.ts";
import type { ApplyResult, ClusterHandle, Leadership } from "../api/cluster-handle.ts";
import { type ClusterAdmin, createClusterService } from "../api/cluster-service.ts";
import { createHandoverService } from "../api/handover-service.ts";
import { handleSteering } from "../api/steering.ts";
import { createStreamService } from "../api/stream-service.ts";
import { notLeaderError } from "../api/writes.ts";
import { createFsm, encodeCommand, type Fsm } from "../fsm/fsm.ts";
import { bootstrapState, type RecoveredState } from "../raft/index.ts";
import { type DurableLog, openDurableLog } from "../storage/index.ts";
import { createCoordinatorAuth } from "./auth.ts";
import type { CoordinatorConfig } from "./config.ts";
import { type ControlPlane, createControlPlane } from "./control-plane.ts";
import { createRaftDriver, type PeerAddress, type RaftDriver } from "./raft-driver.ts";

export interface CoordinatorNode {
  readonly nodeId: string;
  readonly cluster: ClusterHandle;
  readonly driver: RaftDriver;
  readonly fsm: Fsm;
  readonly controlPlane: ControlPlane;
  readonly peerServer: RpcServer;
  readonly apiServer: RpcServer;
  stop(): Promise<void>;
}

export interface CoordinatorNodeDeps {
  log: Logger;
  clock?: Clock;
  softwareVersion: string;
  /** Extra services on the API listener (AgentService, ComponentService, ...). */
  extraServices?: (cluster: ClusterHandle) => ServiceRegistration[];
  /** Plain HTTP routes on the API listener (e.g. /metrics). */
  httpFallback?: (cluster: ClusterHandle) => HttpFallback | undefined;
  /** Replaces the real handover effects (tests). */
  handoverEffects?: HandoverEffects;
  /** Replaces the NATS bus built from config (tests). */
  noticeBus?: NoticeBus;
}

const requestIdMax = 128;

export async function startCoordinatorNode(
  cfg: CoordinatorConfig,
  deps: CoordinatorNodeDeps,
): Promise<CoordinatorNode> {
  const log = deps.log.child({ node: cfg.nodeId });
  const clock = deps.clock ?? systemClock;
  // Token files first: a bad one stops the start before anything is opened.
  const auth = createCoordinatorAuth(cfg, log, clock);
  mkdirSync(cfg.dataDir, { recursive: true });
  const opened = await openDurableLog(cfg.dataDir, { logger: log });
  const durable: DurableLog = opened.log;
  let recovered: RecoveredState = opened.recovered;
  const fresh =
    recovered.hardState.term === 0 &&
    recovered.entries.length === 0 &&
    recovered.snapshot.metadata.index === 0;
  if (fresh && cfg.bootstrap) {
    recovered = bootstrapState(cfg.bootstrap.map((m) => m.id));
    await durable.save({ hardState: recovered.hardState, entries: recovered.entries });
    log.info("bootstrapped a new cluster", { members: cfg.bootstrap.map((m) => m.id) });
  } else if (fresh && !cfg.join) {
    await durable.close();
    throw new Error(
      `${cfg.dataDir} holds no cluster state: set \`bootstrap\` to found a new cluster, or \`join: true\` to wait to be added to an existing one`,
    );
  } else if (fresh) {
    log.info("empty node waiting to be added to a cluster (join)");
  }

  const fsm = createFsm();
  const staticBook = new Map<string, PeerAddress>();
  for (const m of [...cfg.peers, ...(cfg.bootstrap ?? [])]) {
    staticBook.set(m.id, { peer: m.peerAddress, api: m.apiAddress });
  }
  const addressOf = (id: string): PeerAddress | undefined => {
    const m = fsm.member(id);
    if (m?.address) return { peer: m.address, api: m.apiAddress };
    return staticBook.get(id);
  };

  const rng = createRng(cfg.seed ?? Number.parseInt(randomUUID().slice(0, 8), 16));
  const driver = createRaftDriver({
    nodeId: cfg.nodeId,
    tickMs: cfg.raft.tickMs,
    electionTicks: cfg.raft.electionTicks,
    heartbeatTicks: cfg.raft.heartbeatTicks,
    preVote: cfg.raft.preVote,
    checkQuorum: cfg.raft.checkQuorum,
    maxSizePerMsgBytes: cfg.raft.maxSizePerMsgBytes,
    maxInflightMsgs: cfg.raft.maxInflightMsgs,
    maxUncommittedEntriesBytes: cfg.raft.maxUncommittedEntriesBytes,
    snapshotEntries: cfg.raft.snapshotEntries,
    rpcTimeoutMs: cfg.raft.rpcTimeoutMs,
    durable,
    recovered,
    fsm,
    rng,
    clock,
    log,
    addressOf,
    peerClient: auth.peerClient,
  });

  const leadership = (): Leadership => {
    const l = driver.leader();
    return {
      isLeader: l.role === "leader",
      leaderId: l.leaderId,
      leaderApiAddress: l.leaderId ? (addressOf(l.leaderId)?.api ?? "") : "",
      term: l.term,
    };
  };

  const cluster: ClusterHandle = {
    nodeId: cfg.nodeId,
    clock,
    fsm,
    leadership,
    onLeadershipChange(listener) {
      return driver.onLeaderChange(() => listener(leadership()));
    },
    async propose(
      command: MessageInitShape<typeof CommandSchema>,
      opts = {},
    ): Promise<ApplyResult> {
      const l = leadership();
      if (!l.isLeader) throw notLeaderError(cluster);
      const requestId = opts.requestId ?? randomUUID();
      if (requestId.length > requestIdMax) {
        throw new ConnectError(`request_id: at most ${requestIdMax} chars`, Code.InvalidArgument);
      }
      const data = encodeCommand(command, {
        requestId,
        proposerNodeId: cfg.nodeId,
        proposedUnixMs: clock.nowMs(),
        proposerTerm: l.term,
      });
      const c = await driver.propose(data, opts.timeoutMs ?? cfg.api.proposeTimeoutMs);
      return c.result.ok
        ? { ok: true, index: c.index }
        : { ok: false, index: c.index, code: c.result.code, message: c.result.message };
    },
    readBarrier: () => driver.readBarrier(cfg.api.proposeTimeoutMs),
    onApply: (l) => driver.onApplied(l),
  };

  const peerServer = await startRpcServer({
    listen: cfg.peerListen,
    services: [serve(RaftService, driver.service)],
    interceptors: auth.peerInterceptors,
    readMaxBytes: cfg.raft.maxSizePerMsgBytes + 1024 * 1024,
  });
  const peerAddress = cfg.peerAdvertise ?? peerServer.address;

  const admin: ClusterAdmin = {
    softwareVersion: deps.softwareVersion,
    peerAddress,
    get apiAddress() {
      return cfg.apiAdvertise ?? apiServer.address;
    },
    raftStatus() {
      const st = driver.status();
      const all = [
        ...st.conf.voters.map((id) => [id, true] as const),
        ...st.conf.learners.map((id) => [id, false] as const),
      ];
      return {
        role: st.role,
        term: st.term,
        leader: st.leader,
        commit: st.commit,
        applied: fsm.appliedIndex(),
        lastIndex: st.lastIndex,
        snapshotIndex: Math.max(0, st.firstIndex - 1),
        isLearner: st.conf.learners.includes(cfg.nodeId),
        confIndex: fsm.appliedIndex(),
        members: all.map(([id, voter]) => {
          const p = st.progress.get(id);
          return {
            id,
            voter,
            match: id === cfg.nodeId ? st.lastIndex : (p?.match ?? 0),
            next: id === cfg.nodeId ? st.lastIndex + 1 : (p?.next ?? 0),
            sinceLastContactMs: 0,
          };
        }),
      };
    },
    addressOf,
    proposeConfChange: (type, nodeId) =>
      driver.proposeConfChange({ type, nodeId }, cfg.api.proposeTimeoutMs),
    async transferLeadership(target) {
      driver.transferLeadership(target);
      const deadline = clock.monotonicMs() + cfg.raft.tickMs * cfg.raft.electionTicks * 2;
      while (clock.monotonicMs() < deadline) {
        const l = driver.leader();
        if (l.leaderId === target) return { leaderId: target, term: l.term };
        await new Promise((r) => setTimeout(r, cfg.raft.tickMs));
      }
      throw new ConnectError(
        `leadership did not move to "${target}" within one election timeout; it may still be catching up`,
        Code.DeadlineExceeded,
      );
    },
  };

  const controlPlane = createControlPlane(cluster, {
    dataDir: cfg.dataDir,
    log,
    handover: cfg.handover,
    placement: cfg.placement,
    predict: cfg.predict,
    packagerClient: auth.packagerClient,
    ...(deps.handoverEffects ? { effects: deps.handoverEffects } : {}),
  });
  const extraHttp = deps.httpFallback?.(cluster);
  const apiServer = await startRpcServer({
    listen: cfg.apiListen,
    readMaxBytes: cfg.api.readMaxBytes,
    interceptors: auth.apiInterceptors,
    // gRPC agents (grpc-js) skip connect-node's per-message pipeline; the
    // same service is also in `services` (via controlPlane) for gRPC-Web/Connect.
    rawGrpc: controlPlane.rawGrpc,
    services: [
      serve(ClusterService, createClusterService(cluster, admin)),
      serve(StreamService, createStreamService(cluster)),
      serve(ChainService, createChainService(cluster)),
      serve(HandoverService, createHandoverService(cluster, controlPlane.startHandover)),
      ...controlPlane.services,
      ...(deps.extraServices?.(cluster) ?? []),
    ],
    fallback: (req, res) => {
      const reply = (status: number, headers: Record<string, string>, body: string) => {
        res.writeHead(status, headers);
        res.end(req.method === "HEAD" ? "" : body);
      };
      if (handleSteering(fsm, req.method, req.url, reply)) return;
      if ((req.url ?? "").split("?")[0] === "/metrics" && !auth.metricsAllowed(req, res)) return;
      if (controlPlane.http(req, res)) return;
      if (extraHttp) return extraHttp(req, res);
      reply(404, { "content-type": "text/plain" }, `no route for ${req.method} ${req.url}\n`);
    },
  });

  // Health: the API is SERVING while a leader is known (writes can make progress).
  const updateHealth = (l: Leadership) => {
    apiServer.health.setStatus("", l.leaderId ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  };
  updateHealth(leadership());
  cluster.onLeadershipChange((l) => {
    updateHealth(l);
    log.info("leadership", { leader: l.leaderId, term: l.term, isLeader: l.isLeader });
  });

  const bus =
    deps.noticeBus ??
    (cfg.nats
      ? createNatsNoticeBus({
          servers: cfg.nats.servers,
          user: cfg.nats.user,
          pass: cfg.nats.pass,
          token: cfg.nats.token,
          credsFile: cfg.nats.credsFile,
          name: `understudy-coordinator-${cfg.nodeId}`,
          log,
        })
      : undefined);
  const publisher = bus ? createNoticePublisher(cluster, bus, log) : undefined;

  driver.start();
  await controlPlane.start();
  log.info("coordinator started", { peer: peerServer.address, api: apiServer.address });

  let stopping: Promise<void> | undefined;
  return {
    nodeId: cfg.nodeId,
    cluster,
    driver,
    fsm,
    controlPlane,
    peerServer,
    apiServer,
    stop() {
      stopping ??= (async () => {
        publisher?.stop();
        await controlPlane.stop();
        await bus?.close();
        await driver.stop();
        await Promise.all([apiServer.close(200), peerServer.close(200)]);
        await durable.close();
      })();
      return stopping;
    },
  };
}
