#!/usr/bin/env node
// Installs the system packages understudy's tests and demo need, using
// apt-get when running as root; otherwise prints the exact command to run.
// Idempotent and quiet when everything is present. `npm test` calls it first;
// `--with-bench` adds nginx, `--with-browser` adds chromium (npm run test:browser).
import { execFileSync, spawnSync } from "node:child_process";

/** binary on PATH (or absolute path) → Debian package that provides it. */
const required = [
  { bin: "nats-server", pkg: "nats-server", why: "handover notices in tests and the demo" },
  { bin: "ffmpeg", pkg: "ffmpeg", why: "encoder ingest tests (ffmpeg -method PUT)" },
];
// Optional groups, only on request: they are big or only some runs need them.
const optionalArg = [
  ...(process.argv.includes("--with-bench")
    ? [{ bin: "nginx", pkg: "nginx", why: "bench:origin baseline" }]
    : []),
  // test/support/browser.ts launches exactly this path (hls.js playback, npm run test:browser).
  ...(process.argv.includes("--with-browser")
    ? [
        {
          bin: "/usr/bin/chromium",
          pkg: "chromium",
          why: "hls.js playback test in headless Chromium",
        },
      ]
    : []),
];

function has(bin) {
  const r = spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`], {
    stdio: "ignore",
  });
  return r.status === 0;
}

const missing = [...required, ...optionalArg].filter((d) => !has(d.bin));
if (missing.length === 0) process.exit(0);

const pkgs = [...new Set(missing.map((d) => d.pkg))];
const cmd = `apt-get update && apt-get install -y ${pkgs.join(" ")}`;
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
if (!isRoot) {
  for (const d of missing) console.error(`missing: ${d.bin} (needed for ${d.why})`);
  console.error(`Install them with:\n  sudo ${cmd}`);
  process.exit(1);
}
console.error(`installing system packages: ${pkgs.join(" ")}`);
try {
  execFileSync("apt-get", ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"] });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
} catch (err) {
  console.error(`could not install ${pkgs.join(" ")}: ${err.message}\nRun by hand: ${cmd}`);
  process.exit(1);
}
const still = missing.filter((d) => !has(d.bin));
if (still.length > 0) {
  console.error(`still missing after install: ${still.map((d) => d.bin).join(", ")}`);
  process.exit(1);
}
