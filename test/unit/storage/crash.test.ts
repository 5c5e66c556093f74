import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { silentLogger } from "../../../common/log.ts";
import { openDurableLog } from "../../../coordinator/src/storage/index.ts";
import { makeTempDir, removeDir, text } from "./helpers.ts";

const childPath = fileURLToPath(new URL("./crash-child.ts", import.meta.url));

interface ChildRun {
  term: number;
  acked: Map<number, number>;
  snapshots: number[];
  exit: { code: number | null; signal: NodeJS.Signals | null };
  stderr: string;
}

/** Runs the child until it has acknowledged `killAfterAcks` entries (or `deadlineMs` passes), then SIGKILLs it. */
function runAndKill(dir: string, killAfterAcks: number, deadlineMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      process.execPath,
      ["--import", "tsx", childPath, dir, String(deadlineMs)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const run: ChildRun = {
      term: 0,
      acked: new Map(),
      snapshots: [],
      exit: { code: null, signal: null },
      stderr: "",
    };
    let buffered = "";
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    };
    const timer = setTimeout(kill, deadlineMs);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const [kind, a, b] = line.split(" ");
        if (kind === "ack") run.acked.set(Number(a), Number(b));
        else if (kind === "term") run.term = Number(a);
        else if (kind === "snapshot") run.snapshots.push(Number(a));
      }
      if (run.acked.size >= killAfterAcks) kill();
    });
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (c: string) => {
      run.stderr += c;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      run.exit = { code, signal };
      resolve(run);
    });
  });
}

describe("storage/crash (real processes, SIGKILL)", function () {
  this.timeout(90_000);
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  it("every entry acknowledged before a SIGKILL is there after reopening, run after run", async () => {
    const rounds = 4;
    const started = performance.now();
    const everAcked = new Map<number, number>();
    let maxTerm = 0;
    let snapshotsSeen = 0;
    for (let round = 0; round < rounds && performance.now() - started < 60_000; round++) {
      // Vary where the kill lands: early in a run, mid-stream, and past a snapshot + compaction.
      const killAfterAcks = [500, 2_500, 7_000, 4_000][round]!;
      const run = await runAndKill(dir, killAfterAcks, 15_000);
      assert.equal(
        run.exit.signal,
        "SIGKILL",
        `child should die by SIGKILL (exit ${run.exit.code}): ${run.stderr}`,
      );
      assert.ok(run.term > maxTerm, "each run starts a new term");
      assert.ok(run.acked.size > 0, `the child acknowledged nothing: ${run.stderr}`);
      maxTerm = run.term;
      snapshotsSeen += run.snapshots.length;
      for (const [i, t] of run.acked) everAcked.set(i, t);

      const { recovered, log } = await openDurableLog(dir, {
        logger: silentLogger,
        segmentBytesMax: 256 * 1024,
      });
      try {
        assert.equal(
          recovered.hardState.term,
          maxTerm,
          "the term (and vote) of the last run is durable",
        );
        assert.equal(recovered.hardState.vote, "c1");
        const snapIndex = recovered.snapshot.metadata.index;
        if (snapIndex > 0) assert.equal(text(recovered.snapshot.data), `snap@${snapIndex}`);
        const first = recovered.entries[0]?.index ?? snapIndex + 1;
        assert.equal(first, snapIndex + 1, "entries continue right after the snapshot");
        recovered.entries.forEach((e, k) => {
          assert.equal(e.index, first + k, "recovered entries are contiguous");
        });
        const lastIndex = recovered.entries.at(-1)?.index ?? snapIndex;
        assert.ok(recovered.hardState.commit <= lastIndex);
        let missing = 0;
        for (const [i, t] of everAcked) {
          if (i <= snapIndex) continue;
          const e = recovered.entries[i - first];
          if (!e || e.term !== t || text(e.data) !== `e${i}@${t}`) missing++;
        }
        assert.equal(
          missing,
          0,
          `${missing} acknowledged entries lost (round ${round}, last index ${lastIndex})`,
        );
        assert.ok(lastIndex >= Math.max(...run.acked.keys()));
      } finally {
        await log.close();
      }
    }
    assert.ok(snapshotsSeen > 0, "the runs should have crossed at least one snapshot + compaction");
  });
});
