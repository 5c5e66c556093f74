/** A real FSM driven by hand for the planner tests: apply commands, register components, create streams. */
import assert from "node:assert/strict";
import {
  createFsm,
  encodeCommand,
  type Fsm,
  type FsmResult,
} from "../../../coordinator/src/fsm/fsm.ts";
import type { PlannedCommand } from "../../../coordinator/src/plan/index.ts";
import {
  type ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { LatencyMode } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";

export type Cmd = Parameters<typeof encodeCommand>[0];

export interface FsmHarness {
  readonly fsm: Fsm;
  apply(command: Cmd, requestId?: string): FsmResult;
  propose(c: PlannedCommand): FsmResult;
  register(
    id: string,
    role: ComponentRole,
    labels?: { region?: string; zone?: string },
    capacity?: { maxStreams?: number; egressBps?: bigint },
  ): void;
  setStatus(id: string, status: ComponentStatus): void;
  /** A LOW_LATENCY stream: 500 ms shards and parts, 2 s target segments (1–4 s), keyframes at every part. */
  createStream(
    id: string,
    opts: {
      renditions: readonly (readonly [id: string, bandwidthBps: bigint])[];
      replicationFactor: number;
      zoneAntiAffinity: boolean;
      allowedRegions?: readonly string[];
      allowedZones?: readonly string[];
    },
  ): void;
}

export function createFsmHarness(): FsmHarness {
  const fsm = createFsm();
  let seq = 0;
  const apply = (command: Cmd, requestId = `t${++seq}`) =>
    fsm.apply(
      fsm.appliedIndex() + 1,
      1,
      encodeCommand(command, {
        requestId,
        proposerNodeId: "c1",
        proposedUnixMs: 1_700_000_000_000 + seq,
        proposerTerm: 1,
      }),
    );
  return {
    fsm,
    apply,
    propose: (c) => apply(c.command, c.requestId),
    register(id, role, labels = {}, capacity = {}) {
      const r = apply({
        op: {
          case: "registerComponent",
          value: { componentId: id, role, host: `${id}.local`, labels, capacity },
        },
      });
      assert.ok(r.ok, JSON.stringify(r));
    },
    setStatus(id, status) {
      assert.notEqual(status, ComponentStatus.UNSPECIFIED);
      const r = apply({
        op: { case: "updateComponentStatus", value: { componentId: id, status, reason: "test" } },
      });
      assert.ok(r.ok, JSON.stringify(r));
    },
    createStream(id, opts) {
      const r = apply({
        op: {
          case: "createStream",
          value: {
            spec: {
              id,
              renditions: opts.renditions.map(([rid, bandwidthBps]) => ({
                id: rid,
                bandwidthBps,
                width: 640,
                height: 360,
                frameRate: 30,
                codecs: "avc1.64001f",
              })),
              shardDurationMs: 500,
              segmentPolicy: {
                segmentDurationTargetMs: 2000,
                segmentDurationMinMs: 1000,
                segmentDurationMaxMs: 4000,
                partDurationMs: 500,
                // Encoders that cut wherever told (a keyframe at every part).
                keyframeIntervalMs: 500,
              },
              replicationFactor: opts.replicationFactor,
              latencyMode: LatencyMode.LOW_LATENCY,
              placement: {
                zoneAntiAffinity: opts.zoneAntiAffinity,
                allowedRegions: [...(opts.allowedRegions ?? [])],
                allowedZones: [...(opts.allowedZones ?? [])],
              },
            },
          },
        },
      });
      assert.ok(r.ok, JSON.stringify(r));
    },
  };
}
