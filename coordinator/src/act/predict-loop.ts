/**
 * The leader's prediction loop: every ingested report feeds the predictor's
 * windows; once a second every component is scored, and a new alarm (a
 * rising edge, after the predictor's own debouncing) asks the orchestrator to
 * hand over the streams the component serves. Labels flow back from the
 * replicated state: a component declared DOWN is a failure; a handover we
 * started on a prediction that completed is "mitigated" (kept out of
 * training, see predict/predictor.ts).
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
import type { Prediction, Predictor } from "../predict/index.ts";

export interface PredictLoopOptions {
  readonly cluster: ClusterHandle;
  readonly predictor: Predictor;
  readonly onReport: (listener: (r: IngestedReport) => void) => () => void;
  /** Called on a new alarm (leader only). */
  readonly onAlarm: (p: Prediction, why: string) => void;
  readonly log: Logger;
  readonly intervalMs?: number;
}

export interface PredictLoop {
  /** Latest prediction per component (for metrics and the API). */
  latest(): ReadonlyMap<string, Prediction>;
  tick(): void;
  stop(): void;
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

  const offReport = opts.onReport((r) => {
    if (r.heartbeatOnly) return;
    predictor.observe(r.componentId, roleNames[r.role] ?? "unknown", r.samples, r.tMs);
  });

  const tick = () => {
    if (!cluster.leadership().isLeader) return;
    const now = cluster.clock.nowMs();
    for (const c of cluster.fsm.components()) {
      let p: Prediction;
      try {
        p = predictor.predict(c.id, now);
      } catch {
        continue; // never observed
      }
      latest.set(c.id, p);
      if (p.alarm && !alarmed.has(c.id)) {
        alarmed.add(c.id);
        const why = p.topFeatures
          .slice(0, 3)
          .map((f) => `${f.name}=${f.value.toFixed(3)}`)
          .join(", ");
        log.info("failure predicted", {
          component: c.id,
          probability: Number(p.probability.toFixed(3)),
          threshold: Number(p.threshold.toFixed(3)),
          horizonMs: p.horizonMs,
          why,
        });
        opts.onAlarm(p, why);
      } else if (!p.alarm) {
        alarmed.delete(c.id);
      }
    }
  };

  const offChange = cluster.fsm.onChange((changes) => {
    const now = cluster.clock.nowMs();
    for (const ch of changes) {
      if (ch.kind === "component") {
        const c = cluster.fsm.component(ch.id);
        if (c?.status === ComponentStatus.DOWN) predictor.label(ch.id, now, "failed");
        if (ch.deleted) {
          predictor.forget(ch.id);
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

  const timer = setInterval(tick, opts.intervalMs ?? 1000);
  return {
    latest: () => latest,
    tick,
    stop() {
      clearInterval(timer);
      offReport();
      offChange();
    },
  };
}
