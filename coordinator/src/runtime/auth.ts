/**
 * Who may call what on a coordinator (bearer tokens, common/rpc-auth.ts).
 * The table is the contract documented in coordinator/README.md
 * ("Authentication"); every method of every service is decided here, and the
 * types make a new RPC fail to compile until it is.
 *
 * Public (no token): what players and load balancers must reach without
 * credentials: health, the SDK's HandoverService reads (GetLatestNotice,
 * WatchHandovers, GetHandover), ChainService.GetChain (the SDK reads the
 * shard map and origins from it), ClientService.Report, and over plain HTTP
 * the HLS Content Steering manifest (/steering/...). /metrics needs reader.
 */
import type { Clock } from "../../../common/clock.ts";
import type { GrpcClientOptions } from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import {
  ADMIN_ROLE,
  type AuthPolicy,
  authorizeHttp,
  createAuthInterceptor,
  createAuthPolicy,
  createRefusalLog,
  createTokenFileSource,
  createTokenSet,
  type MethodRule,
  PUBLIC,
  serviceRules,
  standardServiceRules,
  type TokenEntry,
  type TokenSet,
  tokenSetOfSource,
  unionTokenSets,
} from "../../../common/rpc-auth.ts";
import type { HttpFallback } from "../../../common/rpc-server.ts";
import { AgentService } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ChainService } from "../../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ClientService } from "../../../proto/gen/understudy/api/v1/client_service_pb.ts";
import { ClusterService } from "../../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { ComponentService } from "../../../proto/gen/understudy/api/v1/component_service_pb.ts";
import { HandoverService } from "../../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { StreamService } from "../../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import { RaftService } from "../../../proto/gen/understudy/raft/v1/raft_pb.ts";
import { type CoordinatorConfig, coordinatorRoles } from "./config.ts";

const admin: MethodRule = [ADMIN_ROLE];
const reader: MethodRule = ["reader"];
/** Sources read their stream and follow its chain. */
const readerOrEncoder: MethodRule = ["reader", "encoder"];

/** The API port's policy (ClusterService, StreamService, ... AgentService, health, reflection). */
export const apiPolicy: AuthPolicy = createAuthPolicy([
  serviceRules(ClusterService, {
    getStatus: reader,
    listMembers: reader,
    addMember: admin,
    removeMember: admin,
    transferLeadership: admin,
  }),
  serviceRules(StreamService, {
    createStream: admin,
    updateStream: admin,
    deleteStream: admin,
    getStream: readerOrEncoder,
    listStreams: reader,
  }),
  serviceRules(ChainService, { getChain: PUBLIC, watchChain: readerOrEncoder }),
  serviceRules(HandoverService, {
    listHandovers: reader,
    getHandover: PUBLIC,
    watchHandovers: PUBLIC,
    startHandover: admin,
    getLatestNotice: PUBLIC,
  }),
  serviceRules(ComponentService, {
    listComponents: reader,
    getComponent: reader,
    getMetrics: reader,
    drain: admin,
  }),
  serviceRules(ClientService, { report: PUBLIC }),
  serviceRules(AgentService, { connect: ["agent"] }),
  ...standardServiceRules(reader),
]);

/** The peer port: Raft RPCs and reflection need the cluster's peer token; health is public. */
export const peerPolicy: AuthPolicy = createAuthPolicy([
  serviceRules(RaftService, {
    appendEntries: ["peer"],
    requestVote: ["peer"],
    installSnapshot: ["peer"],
    timeoutNow: ["peer"],
    readIndex: ["peer"],
  }),
  ...standardServiceRules(["peer"]),
]);

/** Plain HTTP on the API port: /metrics needs reader (Prometheus: authorization.credentials_file). */
export const metricsRule: MethodRule = reader;

export interface CoordinatorAuth {
  /** Interceptors for the API listener (empty when auth is off). */
  readonly apiInterceptors: ReturnType<typeof createAuthInterceptor>[];
  readonly peerInterceptors: ReturnType<typeof createAuthInterceptor>[];
  /** Checks a plain HTTP request for /metrics; false = refused (answered already). */
  readonly metricsAllowed: (
    req: Parameters<HttpFallback>[0],
    res: Parameters<HttpFallback>[1],
  ) => boolean;
  /** Options for the Raft driver's peer clients (sends the peer token). */
  readonly peerClient: GrpcClientOptions;
  /** Options for PackagerService clients (sends packagerControl's token). */
  readonly packagerClient: GrpcClientOptions;
}

/**
 * Builds the node's token sets and client tokens from its config; reads the
 * files now (a bad one throws) and warns for each listener left open.
 */
export function createCoordinatorAuth(
  cfg: CoordinatorConfig,
  log: Logger,
  clock?: Clock,
): CoordinatorAuth {
  const authLog = log.child({ part: "auth" });
  const timing = clock ? { clock } : {};
  const peerSource = cfg.raft.peerTokenFile
    ? createTokenFileSource(cfg.raft.peerTokenFile, { log: authLog, ...timing })
    : undefined;
  const packagerSource = cfg.packagerControl
    ? createTokenFileSource(cfg.packagerControl.tokenFile, { log: authLog, ...timing })
    : undefined;
  const fromAuth = (filter?: (e: TokenEntry) => boolean): TokenSet | undefined =>
    cfg.auth
      ? createTokenSet({
          log: authLog,
          roles: coordinatorRoles,
          entries: cfg.auth.tokens,
          ...(cfg.auth.tokensFile ? { file: cfg.auth.tokensFile } : {}),
          ...(filter ? { filter } : {}),
          ...timing,
        })
      : undefined;
  const apiTokens = fromAuth();
  // The peer port accepts the cluster token this node sends (whatever its
  // file holds now) and auth tokens with role peer (the next token, while
  // rotating).
  const peerFromAuth = fromAuth((e) => e.roles.includes("peer"));
  const peerTokens: TokenSet | undefined = peerSource
    ? unionTokenSets(
        tokenSetOfSource(peerSource, "cluster-peer", ["peer"]),
        ...(peerFromAuth ? [peerFromAuth] : []),
      )
    : undefined;

  if (!apiTokens) {
    log.warn(
      "the API port is unauthenticated: anyone who reaches it can create and delete streams, start handovers, drain components and change membership; set auth.tokens (coordinator/README.md, Authentication)",
      { apiListen: cfg.apiListen },
    );
  }
  if (!peerTokens) {
    log.warn(
      "the Raft peer port is unauthenticated: anyone who reaches it can disrupt the cluster; set raft.peerTokenFile on every member",
      { peerListen: cfg.peerListen },
    );
  }
  if (!cfg.packagerControl) {
    log.info(
      "no packagerControl.tokenFile: PackagerService calls carry no token (packagers with controlAuth refuse them)",
    );
  }
  const refusals = createRefusalLog(authLog, { listener: "api", ...timing });
  return {
    apiInterceptors: apiTokens
      ? [
          createAuthInterceptor({
            tokens: apiTokens,
            policy: apiPolicy,
            log: authLog,
            listener: "api",
            ...timing,
          }),
        ]
      : [],
    peerInterceptors: peerTokens
      ? [
          createAuthInterceptor({
            tokens: peerTokens,
            policy: peerPolicy,
            log: authLog,
            listener: "peer",
            configHint: "raft.peerTokenFile",
            ...timing,
          }),
        ]
      : [],
    metricsAllowed: (req, res) =>
      apiTokens ? authorizeHttp(apiTokens, metricsRule, req, res, refusals) : true,
    peerClient: peerSource ? { bearerToken: () => peerSource.token() } : {},
    packagerClient: packagerSource ? { bearerToken: () => packagerSource.token() } : {},
  };
}
