/**
 * A single-process ClusterHandle for ingest/detect/component-service tests:
 * proposals are encoded and applied to the real FSM at once (no Raft), and
 * leadership is set by the test.
 */
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Clock } from "../../../common/clock.ts";
import { Code, ConnectError } from "../../../common/errors.ts";
import type {
  ApplyResult,
  ClusterHandle,
  Leadership,
  ProposeOptions,
} from "../../../coordinator/src/api/cluster-handle.ts";
import { createFsm, encodeCommand, type Fsm } from "../../../coordinator/src/fsm/fsm.ts";
import type { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { CommandSchema } from "../../../proto/gen/understudy/fsm/v1/fsm_pb.ts";

export type ProposedCommand = MessageInitShape<typeof CommandSchema>;

export interface FakeCluster extends ClusterHandle {
  readonly fsm: Fsm;
  /** Every command proposed while leader, in order. */
  readonly proposals: ProposedCommand[];
  setLeadership(l: Partial<Leadership>): void;
  /** Delays every later proposal by this many ms (real timers). */
  proposeDelayMs: number;
  /** Makes the next proposal reject with this error. */
  failNextPropose(err: ConnectError): void;
  /** Registers a component directly (bypassing proposals bookkeeping). */
  register(id: string, role: number, status?: ComponentStatus, reason?: string): void;
}

export function createFakeCluster(clock: Clock, nodeId = "c1"): FakeCluster {
  const fsm = createFsm();
  let leadership: Leadership = {
    isLeader: true,
    leaderId: nodeId,
    leaderApiAddress: "127.0.0.1:1",
    term: 3,
  };
  const listeners = new Set<(l: Leadership) => void>();
  const applyListeners = new Set<(index: number) => void>();
  const proposals: ProposedCommand[] = [];
  let index = 0;
  let nextError: ConnectError | undefined;

  const apply = (command: ProposedCommand, requestId?: string): ApplyResult => {
    index++;
    const data = encodeCommand(command, {
      requestId: requestId ?? randomUUID(),
      proposerNodeId: nodeId,
      proposedUnixMs: clock.nowMs(),
      proposerTerm: leadership.term,
    });
    const r = fsm.apply(index, leadership.term, data);
    for (const l of applyListeners) l(index);
    return r.ok ? { ok: true, index } : { ok: false, index, code: r.code, message: r.message };
  };

  const cluster: FakeCluster = {
    nodeId,
    clock,
    fsm,
    proposals,
    proposeDelayMs: 0,
    leadership: () => leadership,
    onLeadershipChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    async propose(command, opts?: ProposeOptions) {
      if (!leadership.isLeader) {
        throw new ConnectError(`not leader (leader: ${leadership.leaderId})`, Code.Unavailable);
      }
      if (nextError) {
        const e = nextError;
        nextError = undefined;
        throw e;
      }
      if (cluster.proposeDelayMs > 0)
        await new Promise((r) => setTimeout(r, cluster.proposeDelayMs));
      proposals.push(command);
      return apply(command, opts?.requestId);
    },
    async readBarrier() {
      if (!leadership.isLeader) throw new ConnectError("no leader", Code.Unavailable);
    },
    onApply(l) {
      applyListeners.add(l);
      return () => applyListeners.delete(l);
    },
    setLeadership(l) {
      leadership = { ...leadership, ...l };
      for (const fn of listeners) fn(leadership);
    },
    failNextPropose(err) {
      nextError = err;
    },
    register(id, role, status, reason) {
      apply({
        op: { case: "registerComponent", value: { componentId: id, role, host: `${id}.local` } },
      });
      if (status !== undefined) {
        apply({
          op: {
            case: "updateComponentStatus",
            value: {
              componentId: id,
              status,
              reason: reason ?? "test",
              atUnixMs: BigInt(clock.nowMs()),
            },
          },
        });
      }
    },
  };
  return cluster;
}
