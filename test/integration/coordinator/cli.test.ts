/**
 * `understudy coordinator` as an operator meets it: a bad config exits 2 with
 * a message naming the file and the dotted field, before anything is created
 * or bound; an empty data dir without bootstrap/join is refused (exit 1);
 * usage errors exit 2 and --help works.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { ConfigError } from "../../../common/config.ts";
import { loadCoordinatorConfig } from "../../../coordinator/src/runtime/config.ts";
import { raftOnly, runCli } from "../../support/cluster.ts";

describe("understudy coordinator CLI: config errors and refusals", function () {
  this.timeout(60_000);
  // Made here, not in before(): the cases below are built when the suite is defined.
  const dir = mkdtempSync(join(tmpdir(), "understudy-cli-"));
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  // raftOnly: these cases are about the node's own fields, not the
  // prediction model the leader loads.
  const good = () => ({
    nodeId: "c1",
    dataDir: join(dir, "data-c1"),
    peerListen: "127.0.0.1:0",
    apiListen: "127.0.0.1:0",
    bootstrap: [{ id: "c1", peerAddress: "127.0.0.1:7101", apiAddress: "127.0.0.1:7001" }],
    ...raftOnly,
  });

  const cases: { name: string; cfg: Record<string, unknown>; message: RegExp; spawn?: true }[] = [
    {
      name: "tick out of range",
      spawn: true,
      cfg: { ...good(), raft: { tickMs: 2 } },
      message: /raft\.tickMs: expected an integer in 5\.\.1000, got number 2/,
    },
    {
      name: "unknown field (a typo)",
      cfg: { ...good(), raft: { electionTick: 6 } },
      message: /raft\.electionTick: unknown field \(allowed: .*electionTicks/,
    },
    {
      name: "missing nodeId",
      cfg: { ...good(), nodeId: undefined },
      message: /nodeId: is required \(a node id/,
    },
    {
      name: "bad address",
      cfg: { ...good(), apiListen: "localhost" },
      message: /apiListen: expected an address "host:port", got "localhost"/,
    },
    {
      name: "bootstrap without this node",
      cfg: {
        ...good(),
        bootstrap: [{ id: "c2", peerAddress: "127.0.0.1:7102", apiAddress: "127.0.0.1:7002" }],
      },
      message: /bootstrap: must include this node \("c1"\)/,
    },
    {
      name: "join together with bootstrap",
      spawn: true,
      cfg: { ...good(), join: true },
      message: /join: cannot be true together with bootstrap/,
    },
    {
      name: "duplicate member id",
      cfg: {
        ...good(),
        bootstrap: [
          { id: "c1", peerAddress: "127.0.0.1:7101", apiAddress: "127.0.0.1:7001" },
          { id: "c1", peerAddress: "127.0.0.1:7102", apiAddress: "127.0.0.1:7002" },
        ],
      },
      message: /bootstrap\[1\]\.id: duplicate member id "c1"/,
    },
    {
      name: "granularity thresholds out of order",
      cfg: {
        ...good(),
        placement: { granularity: { lowSessionsExit: 50, highSessionsExit: 40 } },
      },
      message: /placement\.granularity\.highSessionsExit: must be an integer in 51\.\./,
    },
  ];

  const write = (k: (typeof cases)[number]) => {
    const file = join(dir, `${k.name.replace(/\W+/g, "-")}.yaml`);
    writeFileSync(file, stringify(k.cfg));
    return file;
  };

  // Each process start costs seconds (tsx compiles the coordinator), so two
  // cases run as real processes (a schema error and a cross-field error) and
  // the rest go through the same loader in-process.
  for (const k of cases.filter((x) => x.spawn)) {
    it(`exits 2 naming the file and field: ${k.name}`, async () => {
      const file = write(k);
      const r = await runCli(["coordinator", "--config", file]);
      assert.equal(r.code, 2, `exit 2, got ${r.code}: ${r.stderr}`);
      assert.ok(r.stderr.includes(file), `stderr names the file: ${r.stderr}`);
      assert.match(r.stderr, k.message);
      assert.equal(r.stdout, "", "nothing on stdout (no listening line)");
      assert.ok(!existsSync(k.cfg.dataDir as string), "no data dir was created");
    });
  }

  for (const k of cases.filter((x) => !x.spawn)) {
    it(`rejects naming the file and field: ${k.name}`, () => {
      const file = write(k);
      assert.throws(
        () => loadCoordinatorConfig(file),
        (err: Error) =>
          err instanceof ConfigError &&
          err.message.startsWith(`${file}: `) &&
          k.message.test(err.message),
      );
    });
  }

  it("refuses an empty data dir that neither bootstraps nor joins (exit 1)", async () => {
    const file = join(dir, "no-bootstrap.yaml");
    writeFileSync(file, stringify({ ...good(), bootstrap: undefined }));
    const r = await runCli(["coordinator", "--config", file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /holds no cluster state: set `bootstrap` .* or `join: true`/);
  });

  it("usage errors exit 2; --help exits 0", async () => {
    const [missing, unknown, help] = await Promise.all([
      runCli(["coordinator"]),
      runCli(["coordinator", "--confg", "x.yaml"]),
      runCli(["coordinator", "--help"]),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config FILE is required/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--confg/);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--check-data/);
  });

  it("deploy/examples/coordinator-{1,2,3}.yaml load and mention every config field", () => {
    const examples = [1, 2, 3].map((i) =>
      fileURLToPath(new URL(`../../../deploy/examples/coordinator-${i}.yaml`, import.meta.url)),
    );
    const cfgs = examples.map((f) => loadCoordinatorConfig(f));
    assert.deepEqual(
      cfgs.map((x) => [x.nodeId, x.bootstrap?.length]),
      [
        ["c1", 3],
        ["c2", 3],
        ["c3", 3],
      ],
    );
    // The schema names its fields in the unknown-field error: ask each section.
    const allowed = (section: string): string[] => {
      const file = join(dir, `probe-${section || "top"}.yaml`);
      const probe: Record<string, unknown> = { ...good() };
      if (section) probe[section] = { zzz: 1 };
      else probe.zzz = 1;
      writeFileSync(file, stringify(probe));
      try {
        loadCoordinatorConfig(file);
      } catch (err) {
        const m = /unknown field \(allowed: ([^)]*)\)/.exec((err as Error).message);
        if (m) return m[1]!.split(", ");
      }
      throw new Error(`no field list for section "${section}"`);
    };
    const top = allowed("");
    const sections = top.filter((f) =>
      ["raft", "api", "nats", "predict", "placement", "handover", "log"].includes(f),
    );
    for (const file of examples) {
      const text = readFileSync(file, "utf8");
      for (const field of [...top, ...sections.flatMap(allowed)]) {
        assert.match(text, new RegExp(`\\b${field}:`), `${file} documents "${field}"`);
      }
    }
  });
});
