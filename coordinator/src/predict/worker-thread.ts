/**
 * Edge helper: start a worker thread on a module of this package.
 *
 * Under tsx (development, tests, `understudy` via its launcher) a `.ts` worker
 * entry cannot be loaded directly: Node 20 does not carry the main thread's
 * module hooks into workers. The worker then starts from a tiny ESM bootstrap
 * that registers tsx's loader and imports the entry. Compiled `.js` entries
 * are started directly.
 */
import { Worker } from "node:worker_threads";

export function spawnModuleWorker(entry: URL): Worker {
  if (!entry.pathname.endsWith(".ts")) return new Worker(entry);
  const api = import.meta.resolve("tsx/esm/api");
  const src =
    `import(${JSON.stringify(api)})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })` +
    ".catch((e) => { setImmediate(() => { throw e; }); });";
  return new Worker(src, { eval: true });
}
