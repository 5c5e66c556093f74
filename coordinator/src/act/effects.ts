/**
 * The orchestrator's side effects on real processes: PackagerService RPCs to
 * packager-nodes (their control address comes from the agent's Hello) and
 * agent directives through the ingest streams. Every call carries the stream
 * epoch and the leader's term, so a deposed leader's late call is refused by
 * the receiver.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  createGrpcClient,
  type GrpcClient,
  type GrpcClientOptions,
} from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import type { DirectiveSchema } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { DirectiveKind } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import {
  type Component,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  AssignmentRole,
  PackagerService,
} from "../../../proto/gen/understudy/packager/v1/packager_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import type { HandoverEffects } from "./orchestrator.ts";

export interface EffectsOptions {
  cluster: ClusterHandle;
  log: Logger;
  /** Sends a directive to a component's agent; false when it has no live stream. */
  sendDirective?: (componentId: string, d: MessageInitShape<typeof DirectiveSchema>) => boolean;
  /** Service name the agent allowlists for starting a standby packager. */
  standbyServiceName?: string;
  rpcTimeoutMs?: number;
  /** Options of the PackagerService clients (the token the packagers require). */
  packagerClient?: GrpcClientOptions;
}

export interface RealEffects extends HandoverEffects {
  close(): void;
}

/** PackagerService clients, one per control address, reused across calls. */
export interface PackagerClients {
  /** Throws when the component has no control address (its agent did not report one). */
  client(c: Component): GrpcClient<typeof PackagerService>;
  close(): void;
}

export function createPackagerClients(clientOptions: GrpcClientOptions = {}): PackagerClients {
  const clients = new Map<string, GrpcClient<typeof PackagerService>>();
  return {
    client(c) {
      if (!c.controlAddress)
        throw new Error(
          `component "${c.id}" has no control address (its agent did not report one)`,
        );
      let cl = clients.get(c.controlAddress);
      if (!cl) {
        cl = createGrpcClient(PackagerService, c.controlAddress, clientOptions);
        clients.set(c.controlAddress, cl);
      }
      return cl;
    },
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}

export function createHandoverEffects(opts: EffectsOptions): RealEffects {
  const clients = createPackagerClients(opts.packagerClient);
  const timeoutMs = opts.rpcTimeoutMs ?? 5000;
  const term = () => BigInt(opts.cluster.leadership().term);
  const client = (c: Component) => clients.client(c);
  const call = (signal?: AbortSignal) => ({ timeoutMs, signal });

  return {
    async ensureRunning(c, epoch, signal) {
      const healthy = () => opts.cluster.fsm.component(c.id)?.status === ComponentStatus.HEALTHY;
      if (healthy()) return;
      const sent = opts.sendDirective?.(c.id, {
        directiveId: `start-${c.id}-${epoch}`,
        epoch,
        kind: DirectiveKind.START_SERVICE,
        service: opts.standbyServiceName ?? "packager",
        deadlineUnixMs: BigInt(Math.trunc(opts.cluster.clock.nowMs() + timeoutMs)),
      });
      if (!sent) throw new Error(`standby "${c.id}" is not healthy and its agent is not connected`);
      while (!healthy()) {
        if (signal.aborted) throw signal.reason;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async assign(c, stream, renditionIds, role, epoch, signal) {
      await client(c).assign(
        {
          epoch,
          coordinatorTerm: term(),
          stream: stream.spec,
          renditionIds: [...renditionIds],
          role: role === "primary" ? AssignmentRole.PRIMARY : AssignmentRole.REPLICA,
          // Served by every coordinator; this (leader) node's API address.
          steeringServerUri: opts.cluster.leadership().leaderApiAddress
            ? `http://${opts.cluster.leadership().leaderApiAddress}/steering/${stream.spec?.id ?? ""}`
            : "",
        },
        call(signal),
      );
    },
    async unassign(c, streamId, renditionIds, epoch) {
      await client(c).unassign(
        { epoch, coordinatorTerm: term(), streamId, renditionIds: [...renditionIds] },
        call(),
      );
    },
    async replicate(to, from, streamId, renditionId, lastN, epoch, signal) {
      const r = await client(to).replicate(
        {
          epoch,
          coordinatorTerm: term(),
          streamId,
          renditionId,
          peerBaseUrl: from.baseUrl,
          lastNSegments: lastN,
          includeParts: true,
        },
        call(signal),
      );
      let latest = -1;
      for (const s of r.segments) latest = Math.max(latest, Number(s.msn));
      return {
        latestMsn: latest,
        verified: r.verified && r.mismatches.length === 0,
        copied: r.segmentsCopied,
      };
    },
    async latestMsn(c, streamId, renditionId, signal) {
      const st = await client(c).getStatus({ coordinatorTerm: term() }, call(signal));
      const s = st.streams.find(
        (x) =>
          x.streamId === streamId &&
          (x.renditionIds.length === 0 || x.renditionIds.includes(renditionId)),
      );
      return s ? Number(s.lastMsn) : -1;
    },
    async drain(c, epoch) {
      await client(c).drain(
        {
          epoch,
          coordinatorTerm: term(),
          deadlineUnixMs: BigInt(Math.trunc(opts.cluster.clock.nowMs() + 30_000)),
        },
        call(),
      );
    },
    close() {
      clients.close();
    },
  };
}
