/**
 * What an operator installs from deploy/ must work as shipped:
 * - every example config passes its command's `--check` as a real process
 *   (`node common/bin/understudy.mjs <cmd> --check --config FILE`; the NATS
 *   config through `nats-server -t`), and a copy with one field broken exits 2
 *   naming the file and the dotted field;
 * - every long-running command answers `--help` with its flags;
 * - every systemd unit runs a command that exists, validates its config in
 *   ExecStartPre with the same arguments plus `--check`, is installed from an
 *   example config of that command (whose writable paths lie inside the
 *   unit's StateDirectory, since ProtectSystem=strict makes the rest
 *   read-only), and passes a structural check (sections, known keys, the
 *   hardening every unit must keep) plus `systemd-analyze verify` where
 *   systemd-analyze exists. systemd-analyze reports unknown keys and bad
 *   values on stderr with exit code 0, so any line naming the unit fails the
 *   test; a deliberately broken copy proves that check can fail.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { findNatsServer } from "../../common/nats-server.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const examplesDir = join(repo, "deploy", "examples");
const unitsDir = join(repo, "deploy", "systemd");
const cli = join(repo, "common", "bin", "understudy.mjs");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a process to completion (killed after `timeoutMs`). */
function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `jobs` with at most `limit` at once; results in order. */
async function pool<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return results;
}

const understudyCommands = ["coordinator", "agent", "packager", "source"] as const;
type Command = (typeof understudyCommands)[number] | "nats-server";

/** The command an example is for, by its name; a file that fits none fails the test. */
function commandOf(file: string): Command {
  if (file === "nats-server.conf") return "nats-server";
  const m = /^(coordinator|agent|packager|source)(-[a-z0-9-]+)?\.yaml$/.exec(file);
  assert.ok(
    m,
    `deploy/examples/${file}: no command claims this example (name it <command>[-x].yaml)`,
  );
  return m[1] as Command;
}

/** One field per command to break, present in every example of that command. */
const breakers: Record<
  Exclude<Command, "nats-server">,
  { path: string[]; value: unknown; message: RegExp }
> = {
  coordinator: {
    path: ["raft", "tickMs"],
    value: "fast",
    message: /raft\.tickMs: expected an integer in 5\.\.1000, got "fast"/,
  },
  agent: {
    path: ["component", "role"],
    value: "mixer",
    message: /component\.role: expected one of/,
  },
  packager: {
    path: ["listen"],
    value: "nowhere",
    message: /listen: expected an address "host:port"/,
  },
  source: { path: ["encoderId"], value: "not an id", message: /encoderId: expected an id/ },
};

function setPath(doc: Record<string, unknown>, path: string[], value: unknown): void {
  let at = doc;
  for (const key of path.slice(0, -1)) {
    assert.ok(at[key] && typeof at[key] === "object", `missing ${path.join(".")}`);
    at = at[key] as Record<string, unknown>;
  }
  assert.ok(path.at(-1)! in at, `missing ${path.join(".")}`);
  at[path.at(-1)!] = value;
}

// ---------------------------------------------------------------------------
// systemd unit files

interface Unit {
  file: string;
  text: string;
  /** section → key → values in order (a key may repeat). */
  sections: Map<string, Map<string, string[]>>;
}

function parseUnit(file: string, text = readFileSync(join(unitsDir, file), "utf8")): Unit {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const where = `${file}:${i + 1}`;
    assert.ok(!line.endsWith("\\"), `${where}: line continuations are not used here`);
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section) {
      assert.ok(!sections.has(section[1]!), `${where}: section [${section[1]}] twice`);
      current = new Map();
      sections.set(section[1]!, current);
      return;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv, `${where}: not "Key=value": ${line}`);
    assert.ok(current, `${where}: key before any section`);
    const values = current.get(kv[1]!) ?? [];
    values.push(kv[2]!);
    current.set(kv[1]!, values);
  });
  return { file, text, sections };
}

/** Keys whose value is a boolean. */
const booleanKeys = [
  "DynamicUser",
  "NoNewPrivileges",
  "ProtectHome",
  "PrivateTmp",
  "PrivateDevices",
  "ProtectKernelTunables",
  "ProtectKernelModules",
  "ProtectKernelLogs",
  "ProtectControlGroups",
  "ProtectClock",
  "ProtectHostname",
  "RestrictNamespaces",
  "RestrictRealtime",
  "RestrictSUIDSGID",
  "LockPersonality",
  "RemoveIPC",
];

/** Every key these units may use, per section: a typo is an unknown key. */
const knownKeys: Record<string, string[]> = {
  Unit: [
    "Description",
    "Documentation",
    "After",
    "Wants",
    "Requires",
    "Before",
    "StartLimitIntervalSec",
    "StartLimitBurst",
  ],
  Service: [
    "Type",
    "User",
    "Group",
    "ExecStartPre",
    "ExecStart",
    "Restart",
    "RestartSec",
    "RestartPreventExitStatus",
    "TimeoutStopSec",
    "StateDirectory",
    "StateDirectoryMode",
    "LoadCredential",
    "ReadWritePaths",
    "UMask",
    "LimitNOFILE",
    "ProtectSystem",
    "ProtectProc",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "RestrictAddressFamilies",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "CPUQuota",
    "MemoryMax",
    "TasksMax",
    "Nice",
    ...booleanKeys,
  ],
  Install: ["WantedBy"],
};

/** Settings every unit keeps, whatever it runs. */
const requiredService: Record<string, RegExp> = {
  Type: /^exec$/,
  Restart: /^(on-failure|always)$/,
  RestartSec: /^\d+(ms|s)?$/,
  TimeoutStopSec: /^\d+(s|min)?$/,
  NoNewPrivileges: /^yes$/,
  ProtectSystem: /^strict$/,
  ProtectHome: /^yes$/,
  PrivateTmp: /^yes$/,
  PrivateDevices: /^yes$/,
  CapabilityBoundingSet: /^$/,
  AmbientCapabilities: /^$/,
  RestrictAddressFamilies:
    /^(AF_UNIX|AF_INET|AF_INET6|AF_NETLINK)( (AF_UNIX|AF_INET|AF_INET6|AF_NETLINK))*$/,
  SystemCallArchitectures: /^native$/,
  SystemCallFilter: /^@system-service$/,
  UMask: /^0027$/,
};

function one(unit: Unit, section: string, key: string): string {
  const values = unit.sections.get(section)?.get(key);
  assert.ok(values, `${unit.file}: [${section}] ${key}= is missing`);
  assert.equal(
    values.length,
    1,
    `${unit.file}: [${section}] ${key}= appears ${values.length} times`,
  );
  return values[0]!;
}

interface Invocation {
  /** The understudy command the unit runs. */
  command: string;
  /** `--config` path (may contain %i). */
  config: string;
  /** Arguments after the node flags and the script. */
  args: string[];
}

/** Splits `/usr/bin/node [--flags] SCRIPT [command] args...` as the units write it. */
function invocation(unit: Unit, line: string): Invocation {
  const words = line.split(/\s+/);
  assert.equal(words[0], "/usr/bin/node", `${unit.file}: runs ${words[0]}, expected /usr/bin/node`);
  let i = 1;
  while (words[i]?.startsWith("--")) i++;
  const script = words[i++]!;
  let command: string;
  if (script === "/opt/understudy/common/bin/understudy.mjs") {
    command = words[i++]!;
  } else if (script === "/opt/understudy/understudy-agent.mjs") {
    // The bundle common/bin/build-agent.mjs makes: the agent command alone.
    const build = readFileSync(join(repo, "common", "bin", "build-agent.mjs"), "utf8");
    assert.match(build, /const bundleName = "understudy-agent\.mjs"/);
    command = "agent";
  } else {
    assert.fail(
      `${unit.file}: runs ${script}, neither the release tree's CLI nor the agent bundle`,
    );
  }
  const args = words.slice(i);
  const c = args.indexOf("--config");
  assert.ok(c >= 0 && args[c + 1], `${unit.file}: no --config FILE in "${line}"`);
  return { command, config: args[c + 1]!, args };
}

/**
 * The structural and consistency checks of one unit (assertions naming the
 * file): sections and known keys, the hardening every unit keeps, the command
 * it runs and the example configs it is installed from.
 */
function checkUnit(unit: Unit): void {
  const file = unit.file;
  for (const [section, keys] of unit.sections) {
    const known = knownKeys[section];
    assert.ok(known, `${file}: unknown section [${section}]`);
    for (const [key, values] of keys) {
      assert.ok(known.includes(key), `${file}: [${section}] ${key}= is not a key these units use`);
      if (booleanKeys.includes(key)) {
        for (const v of values) assert.match(v, /^(yes|no|true|false)$/, `${file}: ${key}=${v}`);
      }
    }
  }
  assert.deepEqual([...unit.sections.keys()], ["Unit", "Service", "Install"], file);
  one(unit, "Unit", "Description");
  for (const key of ["After", "Wants"]) {
    assert.match(one(unit, "Unit", key), /\bnetwork-online\.target\b/, `${file}: ${key}=`);
  }
  assert.match(one(unit, "Unit", "StartLimitBurst"), /^\d+$/);
  assert.equal(one(unit, "Install", "WantedBy"), "multi-user.target");
  for (const [key, want] of Object.entries(requiredService)) {
    assert.match(one(unit, "Service", key), want, `${file}: ${key}=`);
  }
  const service = unit.sections.get("Service")!;
  assert.ok(
    service.has("User") || service.get("DynamicUser")?.[0] === "yes",
    `${file}: runs as root (set User= or DynamicUser=yes)`,
  );

  const start = invocation(unit, one(unit, "Service", "ExecStart"));
  const pre = invocation(unit, one(unit, "Service", "ExecStartPre"));
  assert.ok(
    (understudyCommands as readonly string[]).includes(start.command),
    `${file}: runs "understudy ${start.command}", not a long-running command`,
  );
  assert.equal(pre.command, start.command, `${file}: ExecStartPre checks another command`);
  assert.deepEqual(
    pre.args,
    [...start.args, "--check"],
    `${file}: ExecStartPre is not ExecStart + --check`,
  );
  assert.match(
    start.config,
    /^\/etc\/understudy\/[a-z%-]+\.yaml$/,
    `${file}: --config ${start.config}`,
  );
  if (start.command !== "agent") {
    assert.match(one(unit, "Service", "LimitNOFILE"), /^\d+$/, `${file}: LimitNOFILE=`);
    assert.equal(
      one(unit, "Service", "RestartPreventExitStatus"),
      "2",
      `${file}: exit 2 is a config error`,
    );
  }

  // Every example the unit names exists; its install lines put an example
  // of this command at the path ExecStart reads.
  for (const m of unit.text.matchAll(/deploy\/(examples|systemd)\/([\w@.-]+)/g)) {
    assert.ok(
      existsSync(join(repo, "deploy", m[1]!, m[2]!)),
      `${file} names deploy/${m[1]}/${m[2]}, which does not exist`,
    );
  }
  const configRe = new RegExp(`^${start.config.replace(".", "\\.").replace("%i", "[a-z0-9-]+")}$`);
  const installs = [
    ...unit.text.matchAll(/install [^\n]*deploy\/examples\/(\S+) (\/etc\/understudy\/\S+)/g),
  ]
    .map((m) => ({ example: m[1]!, target: m[2]! }))
    .filter((x) => configRe.test(x.target));
  assert.ok(installs.length > 0, `${file}: no install line puts an example at ${start.config}`);
  const stateDirs = (service.get("StateDirectory") ?? []).flatMap((v) => v.split(/\s+/));
  const writable = [
    ...stateDirs.map((d) => `/var/lib/${d}`),
    ...(service.get("ReadWritePaths") ?? []).flatMap((v) => v.split(/\s+/)),
  ];
  for (const { example, target } of installs) {
    assert.equal(
      commandOf(example),
      start.command,
      `${file} installs ${example} for "${start.command}"`,
    );
    if (target !== start.config) continue; // a template instance: its header says what to edit
    // ProtectSystem=strict: what the config writes must be inside the unit's writable paths.
    const doc = parse(readFileSync(join(examplesDir, example), "utf8")) as {
      dataDir?: string;
      storage?: { diskDir?: string };
    };
    for (const p of [doc.dataDir, doc.storage?.diskDir]) {
      if (p === undefined) continue;
      assert.ok(
        writable.some((w) => p === w || p.startsWith(`${w}/`)),
        `${file}: ${example} writes ${p}, outside its writable paths ${writable.join(", ") || "(none)"}`,
      );
    }
  }
  if (start.command === "coordinator") {
    assert.ok(stateDirs.length > 0, `${file}: the coordinator's WAL needs a StateDirectory`);
  }
}

const unitFiles = readdirSync(unitsDir).filter((f) => f.endsWith(".service"));
const exampleFiles = readdirSync(examplesDir).sort();

describe("deploy/: example configs and systemd units", function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), "understudy-deploy-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("has units and examples to check", () => {
    for (const f of [
      "understudy-agent.service",
      "understudy-coordinator.service",
      "understudy-packager.service",
      "understudy-packager@.service",
      "understudy-source.service",
    ]) {
      assert.ok(unitFiles.includes(f), `deploy/systemd/${f} is missing`);
    }
    for (const f of [
      "packager-origin.yaml",
      "packager-edge.yaml",
      "source.yaml",
      "coordinator.yaml",
    ]) {
      assert.ok(exampleFiles.includes(f), `deploy/examples/${f} is missing`);
    }
  });

  it("every example passes --check; a copy with a broken field exits 2 naming file and field", async () => {
    const jobs: (() => Promise<void>)[] = [];
    for (const file of exampleFiles) {
      const command = commandOf(file);
      const path = join(examplesDir, file);
      if (command === "nats-server") {
        let nats: string;
        try {
          nats = findNatsServer();
        } catch (err) {
          assert.fail(`nats-server is needed to check deploy/examples/${file}: ${err}`);
        }
        jobs.push(async () => {
          const good = await run(nats, ["-t", "-c", path]);
          assert.equal(good.code, 0, `${file}: ${good.stderr}${good.stdout}`);
          const broken = join(dir, file);
          const text = readFileSync(path, "utf8");
          assert.match(text, /^listen: \S+:4222$/m);
          writeFileSync(broken, text.replace(/^listen: (\S+):4222$/m, "listen: $1:notaport"));
          const bad = await run(nats, ["-t", "-c", broken]);
          assert.notEqual(bad.code, 0, `${file} broken: nats-server accepted it`);
          assert.match(bad.stderr + bad.stdout, /line \d+/);
        });
        continue;
      }
      jobs.push(async () => {
        const good = await run(process.execPath, [cli, command, "--check", "--config", path]);
        assert.equal(good.code, 0, `${file}: understudy ${command} --check: ${good.stderr}`);
        assert.equal(good.stdout.trim(), `${path}: valid`);
      });
      jobs.push(async () => {
        const b = breakers[command];
        const doc = parse(readFileSync(path, "utf8")) as Record<string, unknown>;
        setPath(doc, b.path, b.value);
        const broken = join(dir, file);
        writeFileSync(broken, stringify(doc));
        const bad = await run(process.execPath, [cli, command, "--check", "--config", broken]);
        assert.equal(bad.code, 2, `${file} broken: exit ${bad.code}, stderr: ${bad.stderr}`);
        assert.ok(
          bad.stderr.includes(`${broken}: `),
          `${file} broken: file not named: ${bad.stderr}`,
        );
        assert.match(bad.stderr, b.message);
        assert.doesNotMatch(bad.stdout, /valid/);
      });
    }
    await pool(jobs, 4);
  });

  it("every command answers --help with its flags; long-running ones list --config and --check", async () => {
    const top = await run(process.execPath, [cli, "--help"]);
    assert.equal(top.code, 0, top.stderr);
    const listed = [...top.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!);
    for (const c of understudyCommands)
      assert.ok(listed.includes(c), `${c} not in understudy --help`);
    const commands = listed.filter((c) => c !== "help" && c !== "version");
    const helps = await pool(
      commands.map((c) => () => run(process.execPath, [cli, c, "--help"])),
      4,
    );
    commands.forEach((c, i) => {
      const h = helps[i]!;
      assert.equal(h.code, 0, `understudy ${c} --help: exit ${h.code}: ${h.stderr}`);
      assert.match(h.stdout, /--[a-z]/, `understudy ${c} --help lists no flags`);
      if ((understudyCommands as readonly string[]).includes(c)) {
        assert.match(h.stdout, /--config FILE/, `understudy ${c} --help`);
        assert.match(h.stdout, /--check\b/, `understudy ${c} --help`);
      }
    });
  });

  for (const file of unitFiles) {
    it(`${file}: runs an existing command on a config installed from its examples, hardened`, () => {
      checkUnit(parseUnit(file));
    });
  }

  it("the structural check rejects a misspelt key (what is left where systemd-analyze is missing)", () => {
    const text = readFileSync(join(unitsDir, "understudy-source.service"), "utf8");
    checkUnit(parseUnit("understudy-source.service", text));
    const typo = text.replace("ProtectHome=yes", "ProtectHomee=yes");
    assert.throws(
      () => checkUnit(parseUnit("understudy-source.service", typo)),
      /ProtectHomee= is not a key these units use/,
    );
    const weak = text.replace("NoNewPrivileges=yes", "NoNewPrivileges=no");
    assert.throws(
      () => checkUnit(parseUnit("understudy-source.service", weak)),
      /NoNewPrivileges=/,
    );
  });

  it("understudy-packager@.service is understudy-packager.service with the instance's names", () => {
    const strip = (text: string) => text.slice(text.indexOf("[Unit]")).replace(/^#.*\n/gm, "");
    const plain = strip(readFileSync(join(unitsDir, "understudy-packager.service"), "utf8"));
    const template = strip(readFileSync(join(unitsDir, "understudy-packager@.service"), "utf8"));
    assert.equal(
      template,
      plain
        .replace(
          "Description=understudy packager-node (origin",
          "Description=understudy packager-node %i (origin",
        )
        .replaceAll("/etc/understudy/packager.yaml", "/etc/understudy/packager-%i.yaml")
        .replace(/^StateDirectory=understudy-packager$/m, "StateDirectory=understudy-packager-%i"),
    );
  });

  const analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => existsSync(p));
  if (!analyze) {
    it("systemd-analyze is not installed here: only the structural checks above vouch for the units", () => {
      for (const file of unitFiles) checkUnit(parseUnit(file));
    });
  } else {
    describe("systemd-analyze verify", () => {
      const verify = async (path: string, name: string): Promise<string[]> => {
        const r = await run(analyze, ["verify", "--man=no", path]);
        const lines = (r.stdout + r.stderr).split("\n").filter((l) => l.includes(name));
        if (r.code !== 0) lines.push(`exit ${r.code}: ${r.stderr}`);
        return lines;
      };
      /** A copy to verify: a template through an instance name; node where this machine has it. */
      const stage = (file: string, text: string): { path: string; name: string } => {
        const d = mkdtempSync(join(dir, "unit-"));
        const node = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
        writeFileSync(join(d, file), text.replaceAll("/usr/bin/node", node));
        if (!file.includes("@.")) return { path: join(d, file), name: file };
        const instance = file.replace("@.", "@origin.");
        symlinkSync(join(d, file), join(d, instance));
        return { path: join(d, instance), name: basename(file, ".service").replace("@", "") };
      };

      // It exits 0 on unknown keys and bad values: only its output tells.
      for (const file of ["understudy-source.service", "understudy-packager@.service"]) {
        it(`reports a misspelt key in ${file} (so a clean result means something)`, async () => {
          const text = readFileSync(join(unitsDir, file), "utf8");
          const { path, name } = stage(
            file,
            text.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomee=yes"),
          );
          assert.notDeepEqual(await verify(path, name), []);
        });
      }

      for (const file of unitFiles) {
        it(`${file} verifies without a warning`, async () => {
          const { path, name } = stage(file, readFileSync(join(unitsDir, file), "utf8"));
          assert.deepEqual(await verify(path, name), []);
        });
      }
    });
  }
});
