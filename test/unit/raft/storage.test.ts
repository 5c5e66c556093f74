import assert from "node:assert/strict";
import {
  bootstrapState,
  createMemoryStorage,
  type Entry,
} from "../../../coordinator/src/raft/index.ts";

const entry = (index: number, term: number, payload = ""): Entry => ({
  index,
  term,
  type: "normal",
  data: new TextEncoder().encode(payload),
});

describe("raft MemoryStorage", () => {
  it("starts from a recovered state and truncates conflicting suffixes on append", () => {
    const s = createMemoryStorage(bootstrapState(["a", "b"]));
    assert.deepEqual([s.firstIndex(), s.lastIndex()], [1, 2]);
    assert.deepEqual(s.initialState().hardState, { term: 1, vote: "", commit: 2 });
    s.append([entry(3, 2), entry(4, 2), entry(5, 2)]);
    s.append([entry(4, 3)]);
    assert.equal(s.lastIndex(), 4);
    assert.equal(s.term(4), 3);
    assert.equal(s.term(5), undefined);
    assert.equal(s.term(0), 0, "the term of the compaction point is known");
    assert.throws(() => s.append([entry(7, 3)]), /gap/);
    assert.throws(() => s.append([entry(5, 3), entry(7, 3)]), /contiguous/);
  });

  it("limits entries by bytes but always returns one", () => {
    const s = createMemoryStorage();
    s.append([entry(1, 1, "x".repeat(100)), entry(2, 1, "y"), entry(3, 1, "z")]);
    assert.equal(s.entries(1, 4, 10).length, 1);
    assert.equal(s.entries(2, 4, 1000).length, 2);
    assert.throws(() => s.entries(0, 2, 10), /outside the stored range/);
    assert.throws(() => s.entries(1, 5, 10), /outside the stored range/);
  });

  it("compacts only up to a snapshot and applies snapshots from the leader", () => {
    const s = createMemoryStorage();
    s.append([entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]);
    assert.throws(() => s.compact(2), /snapshot first/);
    const conf = { voters: ["a"], learners: [], votersOutgoing: [] };
    s.createSnapshot(3, conf, new Uint8Array([1]));
    s.compact(2);
    assert.deepEqual([s.firstIndex(), s.lastIndex(), s.term(2), s.term(1)], [3, 4, 1, undefined]);
    assert.throws(() => s.createSnapshot(3, conf, new Uint8Array()), /must be in/);
    s.applySnapshot({ metadata: { index: 10, term: 5, conf }, data: new Uint8Array() });
    assert.deepEqual([s.firstIndex(), s.lastIndex(), s.term(10)], [11, 10, 5]);
    assert.deepEqual(s.initialState().confState, conf);
    assert.throws(
      () => s.applySnapshot({ metadata: { index: 9, term: 5, conf }, data: new Uint8Array() }),
      /not newer/,
    );
    // Entries at or below the snapshot are ignored by append.
    s.append([entry(10, 5), entry(11, 5)]);
    assert.deepEqual([s.firstIndex(), s.lastIndex()], [11, 11]);
  });
});
