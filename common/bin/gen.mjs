#!/usr/bin/env node
// Generates TypeScript from proto/ into proto/gen (committed) with buf and the
// local protoc-gen-es plugin, and checks that the committed code is current.
//
//   node common/bin/gen.mjs            regenerate proto/gen (deleted protos disappear)
//   node common/bin/gen.mjs --check    fail (exit 1) if proto/gen differs from a fresh
//                                      generation, or if proto/ breaks compatibility
//                                      with the committed proto/ (buf breaking, FILE)
//   --against <git-ref>                with --check: compare against this ref instead of HEAD
//
// Exit codes: 0 ok, 1 drift or breaking change, 2 usage or tool failure.
// Plain Node ESM on purpose: it must run before any TypeScript tooling.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const protoDir = path.join(repoRoot, "proto");
const genDir = path.join(protoDir, "gen");
const binDir = path.join(repoRoot, "node_modules", ".bin");
const bufBin = path.join(binDir, process.platform === "win32" ? "buf.cmd" : "buf");
const template = path.join(protoDir, "buf.gen.yaml");
// buf.gen.yaml writes to `<output>/gen`; the output base decides where that is.
const genSubdir = "gen";

function usage(message) {
  process.stderr.write(
    `gen: ${message}\nusage: node common/bin/gen.mjs [--check [--against <git-ref>]]\n`,
  );
  return 2;
}

/** Runs a tool with node_modules/.bin first on PATH (so buf finds protoc-gen-es). */
function run(command, args, opts = {}) {
  const env = { ...process.env, PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ""}` };
  return spawnSync(command, args, {
    cwd: repoRoot,
    env,
    encoding: "utf8",
    stdio: opts.capture ? ["ignore", "pipe", "pipe"] : "inherit",
  });
}

/** Generates into `<outputBase>/gen`, removing whatever was there first. */
function generate(outputBase) {
  if (!existsSync(bufBin)) {
    process.stderr.write(`gen: ${bufBin} not found; run npm ci first\n`);
    return false;
  }
  rmSync(path.join(outputBase, genSubdir), { recursive: true, force: true });
  const res = run(bufBin, ["generate", "proto", "--template", template, "--output", outputBase]);
  if (res.error) {
    process.stderr.write(`gen: could not run buf: ${res.error.message}\n`);
    return false;
  }
  if (res.status !== 0) {
    process.stderr.write(`gen: buf generate failed (exit ${res.status})\n`);
    return false;
  }
  return true;
}

/** Relative paths of every file under dir, sorted; empty when dir is missing. */
function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  const walk = (rel) => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk("");
  return out.sort();
}

/** Byte-for-byte comparison of two trees. */
function diffTrees(expectedDir, actualDir) {
  const expected = listFiles(expectedDir);
  const actual = new Set(listFiles(actualDir));
  const stale = [];
  const missing = [];
  for (const file of expected) {
    if (!actual.has(file)) {
      missing.push(file);
      continue;
    }
    actual.delete(file);
    const a = readFileSync(path.join(expectedDir, file));
    const b = readFileSync(path.join(actualDir, file));
    if (!a.equals(b)) stale.push(file);
  }
  return { stale, missing, extra: [...actual].sort() };
}

/** True if `ref` is a git commit containing proto/buf.yaml; false without git or history. */
function refHasProto(ref) {
  const res = run("git", ["cat-file", "-e", `${ref}:proto/buf.yaml`], { capture: true });
  return !res.error && res.status === 0;
}

function checkBreaking(ref) {
  if (!refHasProto(ref)) {
    process.stdout.write(`gen: skipped buf breaking: no proto/ at git ${ref}\n`);
    return true;
  }
  const against = ref === "HEAD" ? ".git#subdir=proto" : `.git#ref=${ref},subdir=proto`;
  const res = run(bufBin, ["breaking", "proto", "--against", against]);
  if (res.error || res.status !== 0) {
    process.stderr.write(
      `gen: proto/ is not backward compatible with ${ref} (buf breaking, FILE rules).\n` +
        "Within v1, add fields/messages instead of changing or removing them; put breaking\n" +
        "changes in a new v2 package.\n",
    );
    return false;
  }
  return true;
}

function check(ref) {
  const tmp = mkdtempSync(path.join(tmpdir(), "understudy-gen-"));
  try {
    if (!generate(tmp)) return 2;
    const { stale, missing, extra } = diffTrees(path.join(tmp, genSubdir), genDir);
    let code = 0;
    if (stale.length + missing.length + extra.length > 0) {
      const lines = [
        ...stale.map((f) => `  stale:   proto/gen/${f}`),
        ...missing.map((f) => `  missing: proto/gen/${f}`),
        ...extra.map((f) => `  extra:   proto/gen/${f}`),
      ];
      process.stderr.write(
        `gen: proto/gen is out of date with proto/:\n${lines.join("\n")}\n` +
          "run `npm run gen` and commit proto/gen\n",
      );
      code = 1;
    }
    if (!checkBreaking(ref)) code = 1;
    if (code === 0) process.stdout.write("gen: proto/gen is up to date\n");
    return code;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function main(argv) {
  let checkMode = false;
  let ref = "HEAD";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--check") checkMode = true;
    else if (arg === "--against") {
      const value = argv[++i];
      if (value === undefined || value.startsWith("-")) return usage("--against needs a git ref");
      ref = value;
    } else return usage(`unknown argument ${JSON.stringify(arg)}`);
  }
  if (!checkMode && ref !== "HEAD") return usage("--against only applies with --check");
  return checkMode ? check(ref) : regenerate();
}

/**
 * Generates into a temp dir and only then replaces proto/gen, so a failing buf
 * run leaves the committed code in place; deleted protos disappear because the
 * whole folder is replaced.
 */
function regenerate() {
  const tmp = mkdtempSync(path.join(tmpdir(), "understudy-gen-"));
  try {
    if (!generate(tmp)) return 2;
    rmSync(genDir, { recursive: true, force: true });
    cpSync(path.join(tmp, genSubdir), genDir, { recursive: true });
    process.stdout.write(`gen: wrote ${listFiles(genDir).length} files to proto/gen\n`);
    return 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
