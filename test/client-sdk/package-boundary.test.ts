/**
 * The SDK is published on its own and its core runs in browsers: no file in
 * client-sdk/src reaches outside the package, only the node entry files use
 * node:* or `nats`, and the core type-checks with DOM types and no Node types.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const src = join(root, "client-sdk", "src");
const nodeOnly = new Set(["node.ts", "node-viewers.ts", "viewers-cli.ts"]);

function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(dir, e.name), r);
      else if (e.name.endsWith(".ts")) out.push(r);
    }
  };
  walk(src, "");
  return out;
}

function imports(text: string): string[] {
  const re = /(?:import|export)\s[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
  return [...text.matchAll(re)].map((m) => (m[1] ?? m[2])!);
}

describe("client-sdk: package boundary", () => {
  it("imports nothing outside client-sdk, and node:*/nats only from the node entry", () => {
    const problems: string[] = [];
    for (const file of sources()) {
      const depth = file.split("/").length - 1;
      for (const spec of imports(readFileSync(join(src, file), "utf8"))) {
        if (spec.startsWith(".")) {
          const ups = spec.split("/").filter((p) => p === "..").length;
          if (ups > depth) problems.push(`${file}: "${spec}" leaves client-sdk/src`);
          if (!nodeOnly.has(file) && /(^|\/)(node|node-viewers)\.ts$/.test(spec)) {
            problems.push(`${file}: core imports the node entry "${spec}"`);
          }
          continue;
        }
        if (!nodeOnly.has(file) && (spec.startsWith("node:") || spec === "nats")) {
          problems.push(`${file}: core imports "${spec}"`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it("type-checks the core with DOM types and without Node types", function () {
    this.timeout(60_000);
    const tsc = join(root, "node_modules", ".bin", "tsc");
    const res = spawnSync(tsc, ["-p", join(root, "client-sdk", "tsconfig.core.json")], {
      encoding: "utf8",
    });
    assert.equal(res.status, 0, `${res.stdout}${res.stderr}`);
  });
});
