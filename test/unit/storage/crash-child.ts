/**
 * Child process for the crash test: opens the durable log in argv[2], starts
 * a new term, and appends entries as fast as group commit allows, printing
 * `ack <index> <term>` only after each save resolved. It takes a snapshot and
 * compacts now and then, so kills also land in those paths. It runs until it
 * is killed (or for `--max-ms`, a safety bound). Linux pipes are written
 * synchronously, so a printed ack was really printed before any later kill.
 */
import { silentLogger } from "../../../common/log.ts";
import { openDurableLog } from "../../../coordinator/src/storage/index.ts";

const dir = process.argv[2];
const maxMs = Number(process.argv[3] ?? 20_000);
if (!dir) throw new Error("usage: crash-child.ts <data dir> [max ms]");

const inFlightMax = 64;
const snapshotEveryEntries = 3000;

const { recovered, log } = await openDurableLog(dir, {
  logger: silentLogger,
  segmentBytesMax: 256 * 1024,
});
const term = recovered.hardState.term + 1;
let next = (recovered.entries.at(-1)?.index ?? recovered.snapshot.metadata.index) + 1;
let commit = recovered.hardState.commit;
await log.save({ hardState: { term, vote: "c1", commit } });
process.stdout.write(`term ${term} from ${next}\n`);

const enc = new TextEncoder();
const started = performance.now();
let inFlight = 0;
let lastSnapshotAt = recovered.snapshot.metadata.index;
let snapshotting = false;

function pump(): void {
  while (inFlight < inFlightMax && performance.now() - started < maxMs) {
    const index = next++;
    // Every entry this process wrote before is committed in this toy: commit trails the log by one save.
    const save = log.save({
      entries: [{ index, term, type: "normal", data: enc.encode(`e${index}@${term}`) }],
      hardState: { term, vote: "c1", commit },
    });
    commit = index;
    inFlight++;
    save.then(
      () => {
        inFlight--;
        process.stdout.write(`ack ${index} ${term}\n`);
        maybeSnapshot(index);
        pump();
      },
      (err: unknown) => {
        process.stderr.write(`save failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  }
}

function maybeSnapshot(acked: number): void {
  if (snapshotting || acked - lastSnapshotAt < snapshotEveryEntries) return;
  // Only indexes whose commit is durable may be snapshotted: an acked save at
  // `acked` carried commit >= acked - 1.
  const at = acked - 1;
  snapshotting = true;
  log
    .saveSnapshot({
      metadata: { index: at, term, conf: { voters: ["c1"], learners: [], votersOutgoing: [] } },
      data: enc.encode(`snap@${at}`),
    })
    .then(() => log.compact(at))
    .then(
      () => {
        lastSnapshotAt = at;
        snapshotting = false;
        process.stdout.write(`snapshot ${at}\n`);
      },
      (err: unknown) => {
        process.stderr.write(`snapshot failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
}

pump();
