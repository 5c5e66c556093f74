/**
 * The fast commit-index and vote arithmetic against brute-force definitions
 * (after etcd's quorum/quick_test.go).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { majorityIndex, voteResult } from "../../../coordinator/src/raft/quorum.ts";

/** By definition: the largest i such that a strict majority has acked >= i. */
function bruteForceMajorityIndex(acked: readonly number[]): number {
  let best = 0;
  for (const candidate of acked) {
    const count = acked.filter((a) => a >= candidate).length;
    if (count * 2 > acked.length && candidate > best) best = candidate;
  }
  return best;
}

function bruteForceVote(n: number, answers: readonly (boolean | undefined)[]): string {
  const granted = answers.filter((a) => a === true).length;
  const unknown = answers.filter((a) => a === undefined).length;
  if (granted * 2 > n) return "won";
  if ((granted + unknown) * 2 <= n) return "lost";
  return "pending";
}

describe("raft quorum arithmetic", () => {
  it("majorityIndex equals the brute-force commit index", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { minLength: 1, maxLength: 9 }), (acked) => {
        const voters = new Set(acked.map((_, k) => `v${k}`));
        const got = majorityIndex(voters, (id) => acked[Number(id.slice(1))]!);
        assert.equal(got, bruteForceMajorityIndex(acked));
      }),
      { numRuns: 2000 },
    );
  });

  it("voteResult equals the brute-force tally, ignoring non-voters", () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.boolean(), { nil: undefined }), { minLength: 1, maxLength: 9 }),
        fc.array(fc.boolean(), { maxLength: 3 }),
        (answers, strangers) => {
          const voters = new Set(answers.map((_, k) => `v${k}`));
          const votes = new Map<string, boolean>();
          for (const [k, a] of answers.entries()) {
            if (a !== undefined) votes.set(`v${k}`, a);
          }
          for (const [k, a] of strangers.entries()) votes.set(`x${k}`, a);
          assert.equal(voteResult(voters, votes), bruteForceVote(answers.length, answers));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
