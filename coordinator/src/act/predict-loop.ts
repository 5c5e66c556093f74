/**
 * The leader's prediction loop: every ingested report feeds the predictor's
 * windows and scores its component at once; a timer scores components whose
 * reports stopped. A new alarm (a rising edge, after the predictor's own
 * debouncing) asks the orchestrator to hand over the streams the component
 * serves. Labels flow back from the
 * replicated state: a component declared DOWN is a failure; a handover we
 * started on a prediction that completed is "mitigated" (kept out of
 * training, see predict/predictor.ts).
 *
 * The model is replicated: every `publishIntervalMs` the leader proposes its
 * current model (online logistic updates and adjusted thresholds included) as
 * SetModelParameters{model_id, version + 1, format "uspm-v1"} when it differs
 * from the committed one, and every node loads committed models of
 * `modelId` into its predictor, so a new leader predicts with what the old
 * one had learned. A committed model this build cannot use (other format or
 * feature set, corrupt bytes) is logged and ignored; the node keeps its model.
 */
import type { Logger } from "../../../common/log.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  HandoverReason,
  HandoverState,
} from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import type { IngestedReport } from "../ingest/index.ts";
import {
  deserializeModel,
  type MetricSample,
  type Prediction,
  type Predictor,
  type PredictorModel,
  serializeModel,
} from "../predict/index.ts";

/** `format` of SetModelParameters carrying serializeModel bytes. */
export const MODEL_PARAMETERS_FORMAT = "uspm-v1";
export const DEFAULT_MODEL_ID = "failure-predictor";

export interface PredictLoopOptions {
  readonly cluster: ClusterHandle;
  readonly predictor: Predictor;
  readonly onReport: (listener: (r: IngestedReport) => void) => () => void;
  /** Called on a new alarm (leader only). */
  readonly onAlarm: (p: Prediction, why: string) => void;
  readonly log: Logger;
  readonly intervalMs?: number;
  /** FSM model id of the predictor's model. Default DEFAULT_MODEL_ID. */
  readonly modelId?: string;
  /** How often the leader proposes its model when it changed; 0 = never. Default 10 min. */
  readonly publishIntervalMs?: number;
}

export interface PredictLoop {
  /** Latest prediction per component (for metrics and the API). */
  latest(): ReadonlyMap<string, Prediction>;
  tick(): void;
  /** Proposes the current model if this node leads and it changed; resolves when settled. */
  publishModel(): Promise<void>;
  /** Version of the committed model this node loaded (0 = none yet, the start-up model). */
  loadedModelVersion(): number;
  stop(): void;
}

const HEARTBEAT_INTERVAL = "heartbeat.interval_ms";

export interface ReportAdapter {
  /**
   * The samples the predictor should see for one full report that arrived at
   * `arrivalMs` (coordinator monotonic clock); `live` is false for replays.
   */
  adapt(
    componentId: string,
    samples: readonly MetricSample[],
    arrivalMs: number,
    live: boolean,
  ): MetricSample[];
  forget(componentId: string): void;
}

/**
 * The predictor reads `heartbeat.interval_ms` as the interval between a
 * component's successive reports (about the sampling interval, stretching
 * when the agent or its host stalls; the models were trained on that).
 * Ingest derives it from every live message, heartbeats included, so on a
 * full report it is only the time since the last heartbeat, a phase that
 * drifts with no meaning. This replaces it with the arrival interval between
 * successive live full reports (none on the first one, or after a replay).
 */
export function createReportAdapter(): ReportAdapter {
  const lastArrivalMs = new Map<string, number>();
  return {
    adapt(id, samples, arrivalMs, live) {
      const out = samples.filter((s) => s.name !== HEARTBEAT_INTERVAL);
      const prev = lastArrivalMs.get(id);
      if (!live) {
        lastArrivalMs.delete(id);
        return out;
      }
      lastArrivalMs.set(id, arrivalMs);
      if (prev !== undefined && arrivalMs > prev) {
        out.push({ name: HEARTBEAT_INTERVAL, value: arrivalMs - prev, unit: "ms" });
      }
      return out;
    },
    forget: (id) => void lastArrivalMs.delete(id),
  };
}

const roleNames: Record<number, string> = {
  [ComponentRole.ENCODER]: "encoder",
  [ComponentRole.PACKAGER]: "packager",
  [ComponentRole.ORIGIN]: "origin",
  [ComponentRole.EDGE]: "edge",
  [ComponentRole.INGEST]: "ingest",
};

export function createPredictLoop(opts: PredictLoopOptions): PredictLoop {
  const { cluster, predictor, log } = opts;
  const latest = new Map<string, Prediction>();
  const alarmed = new Set<string>();

  const modelId = opts.modelId ?? DEFAULT_MODEL_ID;
  let loadedVersion = 0;
  /** Bytes of the model this node runs as last committed (or proposed by it). */
  let committedBytes: Uint8Array | undefined;
  let publishing = false;

  const sameBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
    a !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);

  const loadCommitted = () => {
    const m = cluster.fsm.model(modelId);
    if (m === undefined || Number(m.version) <= loadedVersion) return;
    loadedVersion = Number(m.version);
    if (m.format !== MODEL_PARAMETERS_FORMAT) {
      log.warn("committed model ignored: unknown format", { modelId, format: m.format });
      return;
    }
    if (sameBytes(committedBytes, m.parameters)) return; // our own proposal: already running it
    let model: PredictorModel;
    try {
      model = deserializeModel(m.parameters);
      predictor.loadModel(model);
    } catch (err) {
      log.warn("committed model ignored: this build cannot use it", {
        modelId,
        version: loadedVersion,
        error: (err as Error).message,
      });
      return;
    }
    committedBytes = m.parameters;
    log.info("loaded committed model", {
      modelId,
      version: loadedVersion,
      bytes: m.parameters.length,
      trainedAtMs: model.trainedAtMs,
    });
  };
  loadCommitted();

  const publishModel = async (): Promise<void> => {
    if (publishing || !cluster.leadership().isLeader) return;
    const now = cluster.clock.nowMs();
    const committed = cluster.fsm.model(modelId);
    // Compare with the time stamp of what is committed, so time alone is no change.
    const prevAt = committed ? deserializeTrainedAt(committed.parameters) : undefined;
    if (
      prevAt !== undefined &&
      sameBytes(committed?.parameters, serializeModel(predictor.exportModel(prevAt)))
    ) {
      return;
    }
    const bytes = serializeModel(predictor.exportModel(now));
    const version = Math.max(loadedVersion, Number(committed?.version ?? 0n)) + 1;
    publishing = true;
    const before = committedBytes;
    committedBytes = bytes;
    try {
      const r = await cluster.propose({
        op: {
          case: "setModelParameters",
          value: {
            modelId,
            version: BigInt(version),
            format: MODEL_PARAMETERS_FORMAT,
            parameters: bytes,
          },
        },
      });
      if (r.ok) log.info("model committed", { modelId, version, bytes: bytes.length });
      else {
        committedBytes = before;
        log.warn("model not committed", { modelId, version, error: r.message });
      }
    } catch (err) {
      committedBytes = before;
      log.warn("model proposal failed", { modelId, version, error: (err as Error).message });
    } finally {
      publishing = false;
    }
  };

  const adapter = createReportAdapter();
  const intervalMs = opts.intervalMs ?? 1000;
  const lastScoredMs = new Map<string, number>();

  const score = (id: string, now: number): void => {
    let p: Prediction;
    try {
      p = predictor.predict(id, now);
    } catch {
      return; // never observed
    }
    latest.set(id, p);
    lastScoredMs.set(id, now);
    if (p.alarm && !alarmed.has(id)) {
      alarmed.add(id);
      const why = p.topFeatures
        .slice(0, 3)
        .map((f) => `${f.name}=${f.value.toFixed(3)}`)
        .join(", ");
      log.info("failure predicted", {
        component: id,
        probability: Number(p.probability.toFixed(3)),
        threshold: Number(p.threshold.toFixed(3)),
        horizonMs: p.horizonMs,
        why,
      });
      opts.onAlarm(p, why);
    } else if (!p.alarm) {
      alarmed.delete(id);
    }
  };

  // A component is scored when its report arrives (an alarm waits for no
  // timer); the timer scores the ones whose reports stopped coming.
  const offReport = opts.onReport((r) => {
    if (r.heartbeatOnly) return;
    const samples = adapter.adapt(
      r.componentId,
      r.samples,
      cluster.clock.monotonicMs(),
      !r.replayed,
    );
    predictor.observe(r.componentId, roleNames[r.role] ?? "unknown", samples, r.tMs);
    if (!r.replayed && cluster.leadership().isLeader) score(r.componentId, cluster.clock.nowMs());
  });

  const tick = () => {
    if (!cluster.leadership().isLeader) return;
    const now = cluster.clock.nowMs();
    for (const c of cluster.fsm.components()) {
      const last = lastScoredMs.get(c.id);
      if (last !== undefined && now - last < 1.5 * intervalMs) continue;
      score(c.id, now);
    }
  };

  const offChange = cluster.fsm.onChange((changes) => {
    // Any change, not only "model": a snapshot restore announces streams and
    // components but may also have brought a newer model.
    loadCommitted();
    const now = cluster.clock.nowMs();
    for (const ch of changes) {
      if (ch.kind === "component") {
        const c = cluster.fsm.component(ch.id);
        if (c?.status === ComponentStatus.DOWN) predictor.label(ch.id, now, "failed");
        if (ch.deleted) {
          predictor.forget(ch.id);
          adapter.forget(ch.id);
          lastScoredMs.delete(ch.id);
          latest.delete(ch.id);
        }
      } else if (ch.kind === "handover") {
        const h = cluster.fsm.handover(ch.id);
        if (h?.reason === HandoverReason.PREDICTED && h.state === HandoverState.COMPLETED) {
          predictor.label(h.fromComponentId, now, "mitigated");
        }
      }
    }
  });

  const timer = setInterval(tick, intervalMs);
  const publishIntervalMs = opts.publishIntervalMs ?? 10 * 60_000;
  const publishTimer =
    publishIntervalMs > 0 ? setInterval(() => void publishModel(), publishIntervalMs) : undefined;
  return {
    latest: () => latest,
    tick,
    publishModel,
    loadedModelVersion: () => loadedVersion,
    stop() {
      clearInterval(timer);
      if (publishTimer !== undefined) clearInterval(publishTimer);
      offReport();
      offChange();
    },
  };
}

/** trainedAtMs of serialised model bytes, or undefined when they do not parse. */
function deserializeTrainedAt(bytes: Uint8Array): number | undefined {
  try {
    return deserializeModel(bytes).trainedAtMs;
  } catch {
    return undefined;
  }
}
