/**
 * The coordinator's control plane on top of Raft: agent ingest (AgentService),
 * failure detection, the handover orchestrator and its effects, and the
 * component API. Everything here acts only while this node leads (each part
 * follows leadership changes itself); on followers the services answer
 * reads or redirect.
 */
import { join } from "node:path";
import type { GrpcClientOptions } from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import {
  type HttpFallback,
  type RawGrpcRoute,
  type ServiceRegistration,
  serve,
} from "../../../common/rpc-server.ts";
import { ClientService } from "../../../proto/gen/understudy/api/v1/client_service_pb.ts";
import { ComponentService } from "../../../proto/gen/understudy/api/v1/component_service_pb.ts";
import { HandoverReason } from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import { createCmsdHintActor } from "../act/cmsd-hint.ts";
import { createHandoverEffects } from "../act/effects.ts";
import {
  createOrchestrator,
  type HandoverEffects,
  type Orchestrator,
} from "../act/orchestrator.ts";
import { createInventoryReader, createPlacementLoop } from "../act/placement.ts";
import { createPredictLoop } from "../act/predict-loop.ts";
import { createServiceWatch } from "../act/service-watch.ts";
import { createClientTelemetry } from "../api/client-service.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import { createComponentService } from "../api/component-service.ts";
import type { StartHandoverFn } from "../api/handover-service.ts";
import { handleMetricsRequest } from "../api/metrics-endpoint.ts";
import { createFailureDetector, type FailureDetector } from "../detect/index.ts";
import { type AgentIngest, createAgentIngest } from "../ingest/index.ts";
import type { GranularityOptions } from "../plan/index.ts";
import { createPredictor, DEFAULT_MODEL_FILE, readModelFile } from "../predict/index.ts";

export interface ControlPlaneOptions {
  dataDir: string;
  log: Logger;
  placement: { automatic: boolean; intervalMs: number; granularity?: GranularityOptions };
  predict: { enabled: boolean; horizonMs: number; intervalMs: number; modelFile?: string };
  handover: {
    stepDeadlineMs: number;
    handoverDeadlineMs: number;
    replicateLastN: number;
    switchAheadSegments: number;
    standbyServiceName: string;
    automatic: boolean;
  };
  /** Replaces the real effects (tests). */
  effects?: HandoverEffects;
  /** Options of every PackagerService client (the packagerControl token). */
  packagerClient?: GrpcClientOptions;
}

export interface ControlPlane {
  readonly ingest: AgentIngest;
  readonly detector: FailureDetector;
  readonly orchestrator: Orchestrator;
  readonly services: ServiceRegistration[];
  /** Raw gRPC routes for the API server (AgentService for grpc-js agents; see rpc-server's rawGrpc). */
  readonly rawGrpc: RawGrpcRoute[];
  readonly startHandover: StartHandoverFn;
  /** Plain HTTP routes of the control plane (/metrics); false when not ours. */
  http(req: Parameters<HttpFallback>[0], res: Parameters<HttpFallback>[1]): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createControlPlane(
  cluster: ClusterHandle,
  opts: ControlPlaneOptions,
): ControlPlane {
  const log = opts.log;
  const ingest = createAgentIngest({
    cluster,
    clock: cluster.clock,
    log: log.child({ part: "ingest" }),
    historyDir: join(opts.dataDir, "history"),
  });
  const detector = createFailureDetector({
    cluster,
    clock: cluster.clock,
    log: log.child({ part: "detect" }),
  });
  const offLiveness = ingest.onLiveness((id, hbMs) => detector.observe(id, hbMs));
  const realEffects = opts.effects
    ? undefined
    : createHandoverEffects({
        cluster,
        log,
        sendDirective: (id, d) => ingest.sendDirective(id, d),
        standbyServiceName: opts.handover.standbyServiceName,
        packagerClient: opts.packagerClient ?? {},
      });
  const orchestrator = createOrchestrator({
    cluster,
    effects: opts.effects ?? (realEffects as HandoverEffects),
    log: log.child({ part: "handover" }),
    stepDeadlineMs: opts.handover.stepDeadlineMs,
    handoverDeadlineMs: opts.handover.handoverDeadlineMs,
    replicateLastN: opts.handover.replicateLastN,
    switchAheadSegments: opts.handover.switchAheadSegments,
    automatic: opts.handover.automatic,
  });
  const clients = createClientTelemetry(cluster);
  const inventory = opts.placement.automatic
    ? createInventoryReader(opts.packagerClient ?? {})
    : undefined;
  const placement = opts.placement.automatic
    ? createPlacementLoop({
        cluster,
        effects: opts.effects ?? (realEffects as HandoverEffects),
        log: log.child({ part: "placement" }),
        intervalMs: opts.placement.intervalMs,
        ...(opts.placement.granularity ? { granularity: opts.placement.granularity } : {}),
        deferPrimaryFailuresMs: opts.handover.automatic ? 3000 : 0,
        sessionsByRendition: (id, now) => clients.sessionsByRendition(id, now),
        ...(inventory ? { newestMedia: inventory.read } : {}),
      })
    : undefined;
  const predictLoop = opts.predict.enabled
    ? createPredictLoop({
        cluster,
        // Checked at config load (predict.modelFile); see DEFAULT_MODEL_FILE for how it was made.
        predictor: createPredictor({
          model: readModelFile(opts.predict.modelFile ?? DEFAULT_MODEL_FILE),
        }),
        onReport: (l) => ingest.onReport(l),
        onAlarm: (p, why) => orchestrator.onPrediction(p.componentId, p.probability, why),
        log: log.child({ part: "predict" }),
        intervalMs: opts.predict.intervalMs,
      })
    : undefined;
  // The old primary's responses carry a CMSD hint while a handover is under way.
  const cmsdHints = createCmsdHintActor({
    cluster,
    log: log.child({ part: "cmsd-hint" }),
    packagerClient: opts.packagerClient ?? {},
  });
  const serviceWatch = createServiceWatch(
    cluster,
    (l) => ingest.onReport(l),
    log.child({ part: "service" }),
  );
  const startHandover: StartHandoverFn = (req) =>
    orchestrator.begin({
      streamId: req.streamId,
      fromComponentId: req.fromComponentId,
      ...(req.toComponentId ? { toComponentId: req.toComponentId } : {}),
      reason: HandoverReason.OPERATOR,
      detail: req.reason,
      ...(req.requestId ? { requestId: req.requestId } : {}),
    });
  return {
    ingest,
    detector,
    orchestrator,
    startHandover,
    http: (req, res) =>
      handleMetricsRequest(req, res, { cluster, ingest, detector, clock: cluster.clock }),
    rawGrpc: [ingest.rawGrpc],
    services: [
      // Same AgentService path and wire format; reports are decoded by the
      // ingest's own decoder (coordinator/src/ingest/wire.ts), ~8x cheaper
      // than the generic one.
      ingest.rpc,
      serve(ComponentService, createComponentService({ cluster, ingest, clock: cluster.clock })),
      serve(ClientService, clients.service),
    ],
    async start() {
      await ingest.start();
      detector.start();
    },
    async stop() {
      cmsdHints.stop();
      serviceWatch.stop();
      predictLoop?.stop();
      placement?.stop();
      inventory?.close();
      orchestrator.stop();
      offLiveness();
      detector.close();
      await ingest.close();
      realEffects?.close();
    },
  };
}
