/**
 * FSM commands from a plan diff.
 *
 * Contract:
 * - No command when the planned rows/ranges equal the stored ones
 *   (replicas compared as sets): replanning an unchanged state proposes
 *   nothing, so the control loop may replan as often as it likes.
 * - Each command carries expected_epoch (compare-and-set on the stream
 *   epoch). Every applied SetAssignments/SetShardMap bumps the epoch by one,
 *   so `streamCommands` gives the second command expected_epoch + 1: propose
 *   them in order and stop at the first failure (ABORTED = the state moved
 *   under the plan: replan from the new state).
 * - A segment schedule change carries expected_schedule_version instead
 *   (compare-and-set on Stream.segment_schedule_version; it does not touch
 *   the epoch, so it can follow the other two in any order).
 * - requestId is derived from the command's content (kind, epoch or
 *   schedule version, digest of its bytes), so re-proposing the same plan
 *   after a timeout or a leader change is deduplicated by the FSM, and a
 *   different plan never reuses an id. Format: `plan-a-<epoch>-<16 hex>` /
 *   `plan-s-<epoch>-<16 hex>` / `plan-g-<schedule version>-<16 hex>` (≤ 40
 *   chars of [a-z0-9-]).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type Command, CommandSchema } from "../../../proto/gen/understudy/fsm/v1/fsm_pb.ts";
import { digest } from "../fsm/fsm.ts";
import { sameAssignmentRows } from "./assignment-rows.ts";
import { assignmentRowsToProto, shardRangesToProto } from "./proto-adapter.ts";
import type { GranularityDecision } from "./segment-granularity.ts";
import { sameRanges, validateShardRanges } from "./shard-planner.ts";
import { type AssignmentRow, requireInt, type ShardRangeRow } from "./types.ts";

export interface PlannedCommand {
  readonly kind: "set-assignments" | "set-shard-map" | "set-segment-schedule";
  readonly streamId: string;
  /** The stream epoch the plan was made at (the compare-and-set value of set-assignments/set-shard-map). */
  readonly expectedEpoch: number;
  /** set-segment-schedule only: its compare-and-set value. */
  readonly expectedScheduleVersion?: number;
  /** Idempotency key for CommandEnvelope.request_id. */
  readonly requestId: string;
  /** Pass to the leader's propose (encodeCommand's `command`). */
  readonly command: Command;
}

export interface PlanDiff<T> {
  readonly current: readonly T[];
  readonly next: readonly T[];
}

const kindLetter: Record<PlannedCommand["kind"], string> = {
  "set-assignments": "a",
  "set-shard-map": "s",
  "set-segment-schedule": "g",
};

const withRequestId = (
  kind: PlannedCommand["kind"],
  streamId: string,
  expected: number,
  command: Command,
): PlannedCommand => ({
  kind,
  streamId,
  expectedEpoch: expected,
  command,
  requestId: `plan-${kindLetter[kind]}-${expected}-${digest(toBinary(CommandSchema, command))}`,
});

export function assignmentsCommand(
  streamId: string,
  expectedEpoch: number,
  diff: PlanDiff<AssignmentRow>,
): PlannedCommand | undefined {
  requireInt("expectedEpoch", expectedEpoch, 1);
  if (sameAssignmentRows(diff.current, diff.next)) return undefined;
  const command = create(CommandSchema, {
    op: {
      case: "setAssignments",
      value: {
        streamId,
        expectedEpoch: BigInt(expectedEpoch),
        assignments: assignmentRowsToProto(diff.next),
      },
    },
  });
  return withRequestId("set-assignments", streamId, expectedEpoch, command);
}

export function shardMapCommand(
  streamId: string,
  expectedEpoch: number,
  diff: PlanDiff<ShardRangeRow>,
): PlannedCommand | undefined {
  requireInt("expectedEpoch", expectedEpoch, 1);
  if (sameRanges(diff.current, diff.next)) return undefined;
  validateShardRanges(diff.next, "next");
  const command = create(CommandSchema, {
    op: {
      case: "setShardMap",
      value: {
        streamId,
        expectedEpoch: BigInt(expectedEpoch),
        ranges: shardRangesToProto(diff.next),
      },
    },
  });
  return withRequestId("set-shard-map", streamId, expectedEpoch, command);
}

/**
 * The schedule change of a granularity decision, or undefined for "keep".
 * `epoch` is informational (the schedule has its own version).
 */
export function segmentScheduleCommand(
  streamId: string,
  expectedScheduleVersion: number,
  epoch: number,
  decision: GranularityDecision,
): PlannedCommand | undefined {
  requireInt("expectedScheduleVersion", expectedScheduleVersion, 0);
  if (decision.kind !== "change") return undefined;
  const command = create(CommandSchema, {
    op: {
      case: "setSegmentSchedule",
      value: {
        streamId,
        expectedScheduleVersion: BigInt(expectedScheduleVersion),
        sinceMsn: BigInt(decision.schedule.sinceMsn),
        sinceShard: BigInt(decision.schedule.sinceShard),
        segmentDurationMs: decision.schedule.segmentDurationMs,
        reason: decision.reason,
      },
    },
  });
  return {
    ...withRequestId("set-segment-schedule", streamId, expectedScheduleVersion, command),
    expectedEpoch: epoch,
    expectedScheduleVersion,
  };
}

/**
 * The commands for one stream, in proposal order: assignments first (the
 * packagers learn their renditions), then the shard map (encoders push to
 * them), with consecutive expected epochs. Empty when nothing changed.
 */
export function streamCommands(input: {
  readonly streamId: string;
  readonly epoch: number;
  readonly assignments?: PlanDiff<AssignmentRow> | undefined;
  readonly shardMap?: PlanDiff<ShardRangeRow> | undefined;
  /** Last: the segment schedule change, if the granularity planner decided one. */
  readonly granularity?:
    | { readonly scheduleVersion: number; readonly decision: GranularityDecision }
    | undefined;
}): PlannedCommand[] {
  const out: PlannedCommand[] = [];
  let epoch = input.epoch;
  if (input.assignments) {
    const c = assignmentsCommand(input.streamId, epoch, input.assignments);
    if (c) {
      out.push(c);
      epoch++;
    }
  }
  if (input.shardMap) {
    const c = shardMapCommand(input.streamId, epoch, input.shardMap);
    if (c) {
      out.push(c);
      epoch++;
    }
  }
  if (input.granularity) {
    const g = input.granularity;
    const c = segmentScheduleCommand(input.streamId, g.scheduleVersion, epoch, g.decision);
    if (c) out.push(c);
  }
  return out;
}
