/** fast-check generators and small builders shared by the planner tests. */
import fc from "fast-check";
import {
  type AssignmentOptions,
  defaultAssignmentOptions,
  type PackagerInput,
  type PlacementPolicy,
  type StreamInput,
} from "../../../coordinator/src/plan/index.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";

export const H = ComponentStatus.HEALTHY;

export function pkg(
  id: string,
  zone: string,
  extra: Partial<Omit<PackagerInput, "id" | "zone">> = {},
): PackagerInput {
  return {
    id,
    zone,
    region: "eu",
    status: H,
    maxStreams: 10,
    egressBps: 1_000_000_000,
    ...extra,
  };
}

export const placement = (p: Partial<PlacementPolicy> = {}): PlacementPolicy => ({
  allowedRegions: [],
  allowedZones: [],
  zoneAntiAffinity: false,
  ...p,
});

export function stream(
  id: string,
  renditionIds: readonly string[],
  extra: Partial<Omit<StreamInput, "id">> = {},
): StreamInput {
  return {
    id,
    replicationFactor: 2,
    placement: placement(),
    currentMsn: 100,
    renditions: renditionIds.map((r, i) => ({
      id: r,
      bandwidthBps: 1_000_000 * (renditionIds.length - i),
      sessions: 10,
    })),
    ...extra,
  };
}

/** Small capacities so that limits bind in generated cases. */
export const tinyOptions: AssignmentOptions = {
  ...defaultAssignmentOptions,
  defaultMaxStreams: 3,
  defaultEgressBps: 10_000,
  searchNodesMax: 5_000_000,
  roundSearchNodesMax: 50_000_000,
  candidatesPerSlotMax: 8,
};

const statusArb = fc.constantFrom(
  ComponentStatus.HEALTHY,
  ComponentStatus.HEALTHY,
  ComponentStatus.HEALTHY,
  ComponentStatus.SUSPECT,
  ComponentStatus.UNKNOWN,
  ComponentStatus.DOWN,
  ComponentStatus.DRAINING,
);

/** 1–maxPackagers packagers named p0..pN (in shuffled input order). */
export function packagersArb(maxPackagers: number) {
  return fc
    .integer({ min: 1, max: maxPackagers })
    .chain((n) =>
      fc.tuple(
        ...Array.from({ length: n }, (_, i) =>
          fc.record({
            id: fc.constant(`p${i}`),
            region: fc.constantFrom("r1", "r2"),
            zone: fc.constantFrom("z1", "z2", "z3"),
            status: statusArb,
            maxStreams: fc.integer({ min: 0, max: 4 }),
            egressBps: fc.constantFrom(0, 1_000, 5_000, 20_000),
            baseStreams: fc.integer({ min: 0, max: 1 }),
            baseEgressBps: fc.integer({ min: 0, max: 3_000 }),
          }),
        ),
      ),
    )
    .chain((ps) => fc.shuffledSubarray(ps, { minLength: ps.length, maxLength: ps.length }));
}

/** One stream with 1–maxRenditions renditions whose current holders name p0..p(ids-1) or a gone "px". */
export function streamArb(id: string, maxRenditions: number, ids: number) {
  const idArb = fc.constantFrom(...Array.from({ length: ids }, (_, i) => `p${i}`), "px");
  const holdersArb = fc.option(
    fc.record({
      primary: idArb,
      replicas: fc.uniqueArray(idArb, { maxLength: 3 }),
      firstMsn: fc.integer({ min: 0, max: 50 }),
    }),
    { nil: undefined },
  );
  return fc.record({
    id: fc.constant(id),
    replicationFactor: fc.constantFrom(1, 1, 2, 2, 2, 3, 3, 4, 5),
    placement: fc.record({
      allowedRegions: fc.oneof(
        { weight: 3, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: fc.subarray(["r1", "r2"], { minLength: 1 }) },
      ),
      allowedZones: fc.oneof(
        { weight: 3, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: fc.subarray(["z1", "z2", "z3"], { minLength: 1 }) },
      ),
      zoneAntiAffinity: fc.boolean(),
    }),
    currentMsn: fc.integer({ min: 60, max: 100 }),
    preferredRegions: fc.subarray(["r1", "r2"], { maxLength: 1 }),
    renditions: fc.integer({ min: 1, max: maxRenditions }).chain((n) =>
      fc.tuple(
        ...Array.from({ length: n }, (_, i) =>
          fc.record({
            id: fc.constant(`v${i}`),
            bandwidthBps: fc.integer({ min: 100, max: 2_000 }),
            sessions: fc.integer({ min: 0, max: 6 }),
            current: holdersArb,
          }),
        ),
      ),
    ),
  });
}
