/**
 * A component's service can die while its agent lives (the packager process
 * crashed; the host is fine). The agent reports `proc.up` for the service it
 * watches; the leader turns a 0 into a committed DOWN (reason "service: ..."),
 * which starts the reactive handover, and a 1 after such a DOWN back into
 * HEALTHY. Statuses with other reasons (liveness, drains, operators) are not
 * touched. At most one proposal per component is in flight.
 */
import type { Logger } from "../../../common/log.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import type { IngestedReport } from "../ingest/index.ts";

export const SERVICE_REASON_PREFIX = "service: ";

export function createServiceWatch(
  cluster: ClusterHandle,
  onReport: (l: (r: IngestedReport) => void) => () => void,
  log: Logger,
): { stop(): void } {
  const inFlight = new Set<string>();
  const propose = (id: string, status: ComponentStatus, reason: string, tMs: number) => {
    if (inFlight.has(id)) return;
    inFlight.add(id);
    cluster
      .propose({
        op: {
          case: "updateComponentStatus",
          value: { componentId: id, status, reason, atUnixMs: BigInt(Math.trunc(tMs)) },
        },
      })
      .then((r) => {
        if (r.ok)
          log.info("service status", { component: id, status: ComponentStatus[status], reason });
      })
      .catch((err) => log.debug("service status proposal failed", { component: id, err }))
      .finally(() => inFlight.delete(id));
  };
  const off = onReport((r) => {
    if (r.replayed || !cluster.leadership().isLeader) return;
    const up = r.samples.find((s) => s.name === "proc.up");
    if (!up) return;
    const c = cluster.fsm.component(r.componentId);
    if (!c) return;
    if (
      up.value === 0 &&
      c.status !== ComponentStatus.DOWN &&
      c.status !== ComponentStatus.DRAINED
    ) {
      propose(
        c.id,
        ComponentStatus.DOWN,
        `${SERVICE_REASON_PREFIX}watched process is not running`,
        r.tMs,
      );
    } else if (
      up.value === 1 &&
      c.status === ComponentStatus.DOWN &&
      c.statusReason.startsWith(SERVICE_REASON_PREFIX)
    ) {
      propose(c.id, ComponentStatus.HEALTHY, `${SERVICE_REASON_PREFIX}running again`, r.tMs);
    }
  });
  return { stop: off };
}
