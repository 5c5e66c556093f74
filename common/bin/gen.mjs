#!/usr/bin/env node
// Generates TypeScript from proto/ with buf and the local protoc-gen-es plugin,
// and checks that the committed code is current. Two targets, both committed:
//   proto/gen             every contract (proto/buf.gen.yaml), for the server side
//   client-sdk/src/gen    the client SDK's own copy of the few contracts it speaks
//                         (proto/buf.gen.sdk.yaml lists them), so the separately
//                         published SDK never imports proto/gen
//
//   node common/bin/gen.mjs            regenerate both (deleted protos disappear)
//   node common/bin/gen.mjs --check    fail (exit 1) if either output differs from a fresh
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
const binDir = path.join(repoRoot, "node_modules", ".bin");
const bufBin = path.join(binDir, process.platform === "win32" ? "buf.cmd" : "buf");
// Each template writes to `<output>/gen`; the output base decides where that is.
const genSubdir = "gen";

/**
 * What gets generated. `input` is the buf input given on the command line;
 * null means the template's own `inputs:` (which also lists the files).
 */
const targets = [
  {
    name: "proto/gen",
    template: path.join(protoDir, "buf.gen.yaml"),
    input: "proto",
    dest: path.join(protoDir, "gen"),
  },
  {
    name: "client-sdk/src/gen",
    template: path.join(protoDir, "buf.gen.sdk.yaml"),
    input: null,
    dest: path.join(repoRoot, "client-sdk", "src", "gen"),
  },
];

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

/** Generates `target` into `<outputBase>/gen`, removing whatever was there first. */
function generate(target, outputBase) {
  if (!existsSync(bufBin)) {
    process.stderr.write(`gen: ${bufBin} not found; run npm ci first\n`);
    return false;
  }
  rmSync(path.join(outputBase, genSubdir), { recursive: true, force: true });
  const input = target.input === null ? [] : [target.input];
  const res = run(bufBin, [
    "generate",
    ...input,
    "--template",
    target.template,
    "--output",
    outputBase,
  ]);
  if (res.error) {
    process.stderr.write(`gen: could not run buf: ${res.error.message}\n`);
    return false;
  }
  if (res.status !== 0) {
    process.stderr.write(`gen: buf generate failed for ${target.name} (exit ${res.status})\n`);
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
  let code = 0;
  for (const target of targets) {
    const tmp = mkdtempSync(path.join(tmpdir(), "understudy-gen-"));
    try {
      if (!generate(target, tmp)) return 2;
      const { stale, missing, extra } = diffTrees(path.join(tmp, genSubdir), target.dest);
      if (stale.length + missing.length + extra.length > 0) {
        const lines = [
          ...stale.map((f) => `  stale:   ${target.name}/${f}`),
          ...missing.map((f) => `  missing: ${target.name}/${f}`),
          ...extra.map((f) => `  extra:   ${target.name}/${f}`),
        ];
        process.stderr.write(
          `gen: ${target.name} is out of date with proto/:\n${lines.join("\n")}\n` +
            `run \`npm run gen\` and commit ${target.name}\n`,
        );
        code = 1;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  if (!checkBreaking(ref)) code = 1;
  if (code === 0) {
    process.stdout.write(`gen: ${targets.map((t) => t.name).join(" and ")} up to date\n`);
  }
  return code;
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
 * Generates every target into temp dirs and only then replaces the committed
 * folders, so a failing buf run leaves the committed code in place; deleted
 * protos disappear because each whole folder is replaced.
 */
function regenerate() {
  const tmps = targets.map(() => mkdtempSync(path.join(tmpdir(), "understudy-gen-")));
  try {
    for (let i = 0; i < targets.length; i++) if (!generate(targets[i], tmps[i])) return 2;
    for (let i = 0; i < targets.length; i++) {
      const { name, dest } = targets[i];
      rmSync(dest, { recursive: true, force: true });
      cpSync(path.join(tmps[i], genSubdir), dest, { recursive: true });
      process.stdout.write(`gen: wrote ${listFiles(dest).length} files to ${name}\n`);
    }
    return 0;
  } finally {
    for (const tmp of tmps) rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
