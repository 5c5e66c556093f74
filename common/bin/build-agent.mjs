#!/usr/bin/env node
// Builds the host agent into one ESM file that plain `node` runs: no tsx, no
// node_modules, no repository on the host. What a host installs:
//
//   node common/bin/build-agent.mjs               → dist/understudy-agent.mjs (+ .map, licenses)
//   node common/bin/build-agent.mjs --outdir DIR  → DIR/understudy-agent.mjs
//   --analyze                                     also print bundled bytes per package
//
// and runs as `node [--enable-source-maps] understudy-agent.mjs --config FILE [--check]`
// (the same arguments as `understudy agent`). Why a bundle: under tsx the agent
// carries tsx's loader and esbuild's transform service (~35 MB RSS, bench/agent.ts)
// on every host, over its 80 MB budget.
//
// Everything is bundled (grpc-js, systeminformation, yaml, protobuf-es): each
// works bundled (test/agent/bundle.test.ts runs the bundle against a real gRPC
// server), so nothing has to be installed next to it.
//
// Writes, next to the bundle:
//   understudy-agent.mjs.map             source map of our own files (file and line, no sources)
//   understudy-agent.licenses.txt        the license of every bundled npm package (MIT/Apache-2.0
//                                        require shipping them with copies)
//
// Exit codes: 0 built, 1 build failed, 2 usage error.
// Plain Node ESM on purpose: it runs before (and without) any TypeScript tooling.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const entry = path.join(repoRoot, "agent", "src", "standalone.ts");
const bundleName = "understudy-agent.mjs";

const usage = `Usage: node common/bin/build-agent.mjs [--outdir DIR] [--analyze]

Bundles the host agent into DIR/${bundleName} (default: dist/).
`;

function parseArgs(argv) {
  const out = { outdir: path.join(repoRoot, "dist"), analyze: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--outdir" && argv[i + 1] !== undefined) out.outdir = path.resolve(argv[++i]);
    else if (a.startsWith("--outdir=")) out.outdir = path.resolve(a.slice("--outdir=".length));
    else if (a === "--analyze") out.analyze = true;
    else if (a === "--help" || a === "-h") out.help = true;
    else out.error = `unknown or incomplete argument "${a}"`;
  }
  return out;
}

/**
 * common/cli.ts reads the version from ../package.json next to itself at run
 * time; a bundle installed as /opt/understudy/understudy-agent.mjs has no
 * package.json beside it. The agent takes only `packageVersion` from that
 * module, so the bundle gets a module exporting the version fixed at build
 * time. If the agent starts using anything else from cli.ts, esbuild stops
 * with "No matching export", not a broken bundle.
 */
function fixedVersionPlugin(version) {
  const cliFile = path.join(repoRoot, "common", "cli.ts");
  return {
    name: "understudy-fixed-version",
    setup(build) {
      build.onLoad({ filter: /[\\/]common[\\/]cli\.ts$/ }, (args) => {
        if (path.resolve(args.path) !== cliFile) return undefined;
        return {
          loader: "ts",
          contents:
            "// Replaced by common/bin/build-agent.mjs: the version fixed at build time.\n" +
            `export function packageVersion(): string { return ${JSON.stringify(version)}; }\n`,
        };
      });
    },
  };
}

/** The npm package (name, dir) a bundled input file belongs to, or undefined for our sources. */
function packageOf(input) {
  const m = /^(.*node_modules[\\/])((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(input);
  if (!m) return undefined;
  return { name: m[2].replaceAll("\\", "/"), dir: path.join(repoRoot, m[1], m[2]) };
}

const base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Source map "mappings" → per generated line, segments of absolute numbers. */
function decodeMappings(mappings) {
  const lines = [];
  const state = [0, 0, 0, 0]; // source, original line, original column, name
  for (const line of mappings.split(";")) {
    const segments = [];
    let column = 0;
    for (const text of line ? line.split(",") : []) {
      const fields = [];
      let value = 0;
      let shift = 0;
      for (const ch of text) {
        const digit = base64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += fields[0];
      const seg = [column];
      for (let i = 1; i < fields.length; i++) {
        state[i - 1] += fields[i];
        seg.push(state[i - 1]);
      }
      segments.push(seg);
    }
    lines.push(segments);
  }
  return lines;
}

function encodeMappings(lines) {
  const vlq = (n) => {
    let v = n < 0 ? (-n << 1) | 1 : n << 1;
    let out = "";
    do {
      const digit = v & 31;
      v >>>= 5;
      out += base64[v > 0 ? digit | 32 : digit];
    } while (v > 0);
    return out;
  };
  const state = [0, 0, 0, 0];
  return lines
    .map((segments) => {
      let column = 0;
      return segments
        .map((seg) => {
          let text = vlq(seg[0] - column);
          column = seg[0];
          for (let i = 1; i < seg.length; i++) {
            text += vlq(seg[i] - state[i - 1]);
            state[i - 1] = seg[i];
          }
          return text;
        })
        .join(",");
    })
    .join(";");
}

/**
 * The map restricted to our own sources (agent/, common/, proto/gen/).
 * Node expands every mapping into an array the first time it formats a stack
 * (the first stream error, i.e. any reconnect): with the whole bundle mapped
 * that added ~24 MB RSS (VmHWM 102 MB, measured), over the agent's budget.
 * Third-party code still reads in a stack trace: identifiers are not minified,
 * so frames keep their function names, with bundle positions. Where
 * third-party code starts, a segment without a source ends the previous
 * mapping, so its frames are not attributed to our files.
 */
function firstPartyOnly(map) {
  const keep = map.sources.map((s) => !s.startsWith("node_modules/"));
  const newIndex = [];
  const sources = [];
  map.sources.forEach((s, i) => {
    if (keep[i]) {
      newIndex[i] = sources.length;
      sources.push(s);
    }
  });
  // Across lines: Node looks up the nearest preceding segment, also on an
  // earlier line, so a line starting in third-party code must end the mapping too.
  let mapped = false;
  const lines = decodeMappings(map.mappings).map((segments) => {
    const out = [];
    for (const seg of segments) {
      if (seg.length > 1 && keep[seg[1]]) {
        out.push([seg[0], newIndex[seg[1]], ...seg.slice(2)]);
        mapped = true;
      } else if (mapped) {
        out.push([seg[0]]);
        mapped = false;
      }
    }
    return out;
  });
  return { ...map, sources, mappings: encodeMappings(lines) };
}

function licenseText(dir) {
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  return file ? readFileSync(path.join(dir, file), "utf8").trim() : undefined;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (args.error) {
    process.stderr.write(`build-agent: ${args.error}\n\n${usage}`);
    return 2;
  }
  let esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    process.stderr.write(
      "build-agent: the esbuild package is not installed (run `npm install` in the repository)\n",
    );
    return 1;
  }
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8"));
  mkdirSync(args.outdir, { recursive: true });
  const outfile = path.join(args.outdir, bundleName);

  const result = await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    // package.json engines: node >= 20.19.
    target: "node20",
    // Measured with bench/agent.ts (RSS of the running agent): whitespace and
    // syntax minification save ~3 MB (V8 keeps the source text); names stay,
    // so stack traces read even without the map. `node --enable-source-maps`
    // reads the map at start: with sources embedded that peaked 18 MB higher
    // (VmHWM 84 MB, over budget), so the map names files and lines only (the
    // sources are the repository at the commit the bundle was built from).
    // See firstPartyOnly for what the map keeps.
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: "linked",
    sourcesContent: false,
    metafile: true,
    logLevel: "warning",
    // Bundled CommonJS packages (grpc-js, systeminformation) call require() for
    // node builtins, which an ES module does not have.
    banner: {
      js:
        `// understudy-agent ${pkg.version}, built by common/bin/build-agent.mjs. ` +
        "Bundled third-party licenses: understudy-agent.licenses.txt\n" +
        "import { createRequire as __understudyCreateRequire } from 'node:module';\n" +
        "const require = __understudyCreateRequire(import.meta.url);",
    },
    plugins: [fixedVersionPlugin(pkg.version)],
  });

  const mapFile = `${outfile}.map`;
  const fullMap = JSON.parse(readFileSync(mapFile, "utf8"));
  // esbuild names sources relative to the output dir, so the same build read
  // from /opt/understudy would point at /opt/agent/src/...; repository-relative
  // names resolve next to the bundle instead: a stack frame reads
  // /opt/understudy/agent/src/main.ts:139, i.e. agent/src/main.ts in the repo.
  fullMap.sources = fullMap.sources.map((s) =>
    path.relative(repoRoot, path.resolve(args.outdir, s)).split(path.sep).join("/"),
  );
  const map = firstPartyOnly(fullMap);
  writeFileSync(mapFile, JSON.stringify(map));

  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint);
  // Only what ended up in the bundle: tree-shaken-away imports ship nothing.
  const inputs = Object.entries(output.inputs).filter(([, v]) => v.bytesInOutput > 0);
  const packages = new Map();
  for (const [input] of inputs) {
    const p = packageOf(input);
    if (p) packages.set(p.name, p.dir);
  }
  const notices = [];
  for (const [name, dir] of [...packages].sort(([a], [b]) => a.localeCompare(b))) {
    const meta = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
    const text = licenseText(dir);
    notices.push(
      `${"=".repeat(78)}\n${name} ${meta.version} (${meta.license ?? "license not declared"})\n` +
        `${"=".repeat(78)}\n${text ?? `No license file in the package; its package.json declares ${meta.license ?? "nothing"}.`}\n`,
    );
  }
  writeFileSync(
    path.join(args.outdir, "understudy-agent.licenses.txt"),
    `Third-party packages bundled into ${bundleName} (understudy ${pkg.version}).\n\n${notices.join("\n")}`,
  );

  const bytes = readFileSync(outfile).length;
  process.stdout.write(
    `built ${path.relative(process.cwd(), outfile) || outfile} (${(bytes / 1024 / 1024).toFixed(2)} MB, ` +
      `${inputs.length} modules from ${packages.size} packages, understudy ${pkg.version})\n`,
  );
  if (args.analyze) {
    const byPackage = new Map();
    for (const [input, v] of inputs) {
      const key = packageOf(input)?.name ?? path.dirname(input);
      byPackage.set(key, (byPackage.get(key) ?? 0) + v.bytesInOutput);
    }
    for (const [key, b] of [...byPackage].sort((a, b) => b[1] - a[1])) {
      process.stdout.write(`  ${(b / 1024).toFixed(0).padStart(6)} KB  ${key}\n`);
    }
  }
  if (!existsSync(outfile)) return 1;
  return 0;
}

process.exitCode = await main().catch((err) => {
  // esbuild has already printed its errors with file and line.
  if (!err?.errors) process.stderr.write(`build-agent: ${err?.stack ?? err}\n`);
  return 1;
});
