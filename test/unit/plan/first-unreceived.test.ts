/**
 * firstUnreceivedShard: from the holders' newest objects (what
 * PackagerService.Inventory returns first per rendition) to the shard the
 * rewind starts at.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { firstUnreceivedShard, type NewestMedia } from "../../../coordinator/src/plan/index.ts";
import {
  SegmentScheduleEntrySchema,
  type Stream,
  StreamSchema,
} from "../../../proto/gen/understudy/common/v1/stream_pb.ts";

/** 0.5 s shards; 2 s segments (4 parts) unless told otherwise. */
function stream(segmentMs = 2000, partMs = 500): Stream {
  return create(StreamSchema, {
    spec: {
      id: "s1",
      shardDurationMs: 500,
      segmentPolicy: { segmentDurationTargetMs: segmentMs, partDurationMs: partMs },
    },
  });
}

const at = (packagerId: string, renditionId: string, msn: number, part?: number): NewestMedia => ({
  packagerId,
  renditionId,
  msn,
  part,
});

describe("firstUnreceivedShard", () => {
  it("is one past the oldest newest object over holders and renditions", () => {
    const newest = [at("p1", "720p", 10, 2), at("p1", "360p", 10, 1), at("p2", "720p", 10, 3)];
    assert.equal(firstUnreceivedShard(stream(), { currentShard: 44, holdersNewest: newest }), 42);
  });

  it("counts a complete segment as all of its parts", () => {
    const newest = [at("p1", "720p", 10), at("p2", "720p", 11, 0)];
    assert.equal(firstUnreceivedShard(stream(), { currentShard: 45, holdersNewest: newest }), 44);
    const sixParts = stream(3000);
    assert.equal(
      firstUnreceivedShard(sixParts, { currentShard: 70, holdersNewest: [at("p1", "720p", 10)] }),
      66,
    );
  });

  it("knows nothing without reports, or when parts are not shards", () => {
    assert.equal(firstUnreceivedShard(stream(), { currentShard: 44 }), undefined);
    assert.equal(
      firstUnreceivedShard(stream(), { currentShard: 44, holdersNewest: [] }),
      undefined,
    );
    const reports = { currentShard: 44, holdersNewest: [at("p1", "720p", 10, 2)] };
    assert.equal(firstUnreceivedShard(stream(2000, 250), reports), undefined);
  });

  it("places reports by the stream's segment schedule across a change", () => {
    // 2 s segments up to MSN 10 (shards 0..39), then 4 s (8 parts) from shard 40.
    const s = stream();
    s.segmentSchedule.push(
      create(SegmentScheduleEntrySchema, { segmentDurationMs: 2000 }),
      create(SegmentScheduleEntrySchema, {
        sinceMsn: 10n,
        sinceShard: 40n,
        segmentDurationMs: 4000,
      }),
    );
    const rt = (newest: NewestMedia[]) => ({ currentShard: 60, holdersNewest: newest });
    assert.equal(firstUnreceivedShard(s, rt([at("p1", "720p", 11, 5)])), 54);
    assert.equal(firstUnreceivedShard(s, rt([at("p1", "720p", 10)])), 48, "a whole 4 s segment");
    assert.equal(firstUnreceivedShard(s, rt([at("p1", "720p", 9)])), 40, "the last 2 s one");
    // Part 5 exists only in the 8-part segments.
    assert.equal(
      firstUnreceivedShard(s, rt([at("p1", "720p", 9, 5), at("p2", "720p", 10, 7)])),
      48,
    );
  });

  it("ignores reports it cannot place on the shard axis", () => {
    const newest = [at("p1", "720p", 10, 9), at("p1", "360p", -1, 0), at("p2", "720p", 10, 1)];
    assert.equal(firstUnreceivedShard(stream(), { currentShard: 44, holdersNewest: newest }), 42);
  });
});
