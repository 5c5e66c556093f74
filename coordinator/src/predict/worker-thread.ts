/**
 * Edge helper: start a worker thread on a module of this package.
 *
 * Under tsx (development, tests, `understudy` via its launcher) a `.ts` worker
 * entry cannot be loaded directly: Node 20 does not carry the main thread's
 * module hooks into workers. The worker then starts from a tiny ESM bootstrap
 * that registers tsx's loader and imports the entry. Compiled `.js` entries
 * are started directly.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

function tsxApiUrl(): string {
  // import.meta.resolve is missing when tsx compiles this file as CommonJS (e.g. under mocha).
  const resolve = (import.meta as { resolve?: (s: string) => string }).resolve;
  if (typeof resolve === "function") return resolve("tsx/esm/api");
  // Otherwise find the ESM build through tsx's package exports (the CJS build cannot be imported here).
  const pkgPath = createRequire(import.meta.url).resolve("tsx/package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as {
    exports: Record<string, { import?: { default?: string } }>;
  };
  const rel = pkg.exports["./esm/api"]?.import?.default;
  if (rel === undefined) throw new Error(`tsx at ${pkgPath} has no ESM export for ./esm/api`);
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

export function spawnModuleWorker(entry: URL): Worker {
  if (!entry.pathname.endsWith(".ts")) return new Worker(entry);
  const src =
    `import(${JSON.stringify(tsxApiUrl())})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })` +
    ".catch((e) => { setImmediate(() => { throw e; }); });";
  return new Worker(src, { eval: true });
}
