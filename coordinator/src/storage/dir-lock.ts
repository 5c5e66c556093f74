/**
 * One writer per data directory. Two coordinators appending to the same WAL
 * (a unit started twice, a copy-pasted config) would interleave records and
 * destroy it, so open takes `<dir>/LOCK`, a file holding the owner's pid.
 * Node has no flock, so a lock left by a process that died is detected by
 * probing its pid and taken over; the in-process registry catches a second
 * open from the same process, where the pid probe cannot tell.
 */
import { open, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { failedPrecondition } from "../../../common/errors.ts";

export const LOCK_FILE = "LOCK";

const openInThisProcess = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes the lock on `dir` (an absolute path); resolves to its release function. */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  if (openInThisProcess.has(dir)) {
    throw failedPrecondition(`data directory ${dir} is already open in this process`);
  }
  openInThisProcess.add(dir);
  const path = join(dir, LOCK_FILE);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const fh = await open(path, "wx");
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 1) throw err;
      }
      const owner = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
      if (Number.isSafeInteger(owner) && owner !== process.pid && processAlive(owner)) {
        throw failedPrecondition(
          `data directory ${dir} is in use by process ${owner} (${path}); stop that process, or delete the file if it is not a coordinator`,
        );
      }
      // The owner is gone (crashed or killed): its lock is stale.
      await unlink(path).catch(() => {});
    }
  } catch (err) {
    openInThisProcess.delete(dir);
    throw err;
  }
  return async () => {
    await unlink(path).catch(() => {});
    openInThisProcess.delete(dir);
  };
}
