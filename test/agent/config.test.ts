import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import sinon from "sinon";
import {
  defaultBufferBytesMax,
  loadAgentConfig,
  main,
  parseAgentConfig,
} from "../../agent/src/index.ts";
import { ConfigError } from "../../common/config.ts";

const minimal = {
  component: { id: "enc-1", role: "encoder" },
  coordinator: { addresses: ["127.0.0.1:7400"] },
};

function withPatch(patch: (c: Record<string, unknown>) => void): Record<string, unknown> {
  const c = structuredClone(minimal) as Record<string, unknown>;
  patch(c);
  return c;
}

function fieldOf(value: unknown): { field: string; message: string } {
  try {
    parseAgentConfig(value);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return { field: err.field, message: err.message };
  }
  assert.fail("config was accepted");
}

describe("agent config", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-agent-config-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    sinon.restore();
  });

  it("fills defaults from a minimal config", () => {
    const c = parseAgentConfig(minimal);
    assert.equal(c.component.host, hostname());
    assert.equal(c.sampling.intervalMs, 1000);
    assert.equal(c.sampling.heartbeatIntervalMs, 250);
    assert.equal(c.sampling.source, "procfs");
    assert.deepEqual(c.sampling.filesystems, ["/"]);
    assert.equal(c.bufferBytesMax, defaultBufferBytesMax);
    assert.equal(c.dataDir, undefined);
    assert.deepEqual(c.services, {});
    assert.deepEqual(c.component.labels, { region: "", zone: "", rack: "", extra: {} });
    assert.equal(c.coordinator.backoffMaxMs, 10_000);
  });

  it("accepts the example config in deploy/examples", () => {
    const c = loadAgentConfig(join(import.meta.dirname, "../../deploy/examples/agent.yaml"));
    assert.equal(c.component.role, "origin");
    assert.equal(c.coordinator.addresses.length, 3);
    assert.equal(c.services["packager-standby"]?.unit, "understudy-packager@standby.service");
    assert.equal(c.watch?.unit, "understudy-packager.service");
  });

  const cases: [string, (c: Record<string, unknown>) => void, string, RegExp][] = [
    [
      "missing id",
      (c) => delete (c.component as Record<string, unknown>).id,
      "component.id",
      /required/,
    ],
    [
      "bad role",
      (c) => ((c.component as Record<string, unknown>).role = "transcoder"),
      "component.role",
      /one of/,
    ],
    [
      "bad id",
      (c) => ((c.component as Record<string, unknown>).id = "Enc_1"),
      "component.id",
      /id/,
    ],
    [
      "no coordinators",
      (c) => ((c.coordinator as Record<string, unknown>).addresses = []),
      "coordinator.addresses",
      /at least 1/,
    ],
    [
      "bad address",
      (c) => ((c.coordinator as Record<string, unknown>).addresses = ["nohost"]),
      "coordinator.addresses[0]",
      /host:port/,
    ],
    ["unknown field", (c) => (c.samplng = {}), "samplng", /unknown field/],
    [
      "interval too small",
      (c) => (c.sampling = { intervalMs: 10 }),
      "sampling.intervalMs",
      /100\.\.60000/,
    ],
    [
      "heartbeat longer than interval",
      (c) => (c.sampling = { intervalMs: 500, heartbeatIntervalMs: 1000 }),
      "sampling.heartbeatIntervalMs",
      /not be longer than sampling.intervalMs/,
    ],
    ["buffer too small", (c) => (c.bufferBytesMax = 10), "bufferBytesMax", /65536/],
    ["relative data dir", (c) => (c.dataDir = "data"), "dataDir", /absolute/],
    ["two watch targets", (c) => (c.watch = { pid: 1, unit: "x.service" }), "watch", /exactly one/],
    ["bad unit", (c) => (c.watch = { unit: "x; rm -rf /" }), "watch.unit", /unit name/],
    [
      "service with both",
      (c) => (c.services = { a: { unit: "a.service", argv: ["/bin/true"] } }),
      "services.a",
      /exactly one of unit, argv/,
    ],
    [
      "service with neither",
      (c) => (c.services = { a: {} }),
      "services.a",
      /exactly one of unit, argv/,
    ],
    [
      "relative argv[0]",
      (c) => (c.services = { a: { argv: ["ffmpeg", "-i", "x"] } }),
      "services.a.argv[0]",
      /absolute path/,
    ],
    [
      "pidfile on a unit",
      (c) => (c.services = { a: { unit: "a.service", pidfile: "/run/a.pid" } }),
      "services.a.pidfile",
      /argv/,
    ],
    [
      "bad service name",
      (c) => (c.services = { "a b": { unit: "a.service" } }),
      "services.a b",
      /service name/,
    ],
    [
      "probe url",
      (c) => (c.probes = { http: [{ name: "p", url: "ftp://x" }] }),
      "probes.http[0].url",
      /http\(s\) URL/,
    ],
    [
      "duplicate probe",
      (c) =>
        (c.probes = {
          http: [
            { name: "p", url: "http://a/" },
            { name: "p", url: "http://b/" },
          ],
        }),
      "probes.http[1].name",
      /duplicate/,
    ],
    [
      "reserved label key",
      (c) => ((c.component as Record<string, unknown>).labels = { extra: { zone: "a" } }),
      "component.labels.extra.zone",
      /component.labels.zone/,
    ],
    [
      "directive range",
      (c) => Object.assign(c, { directiveIntervalMsMin: 5000, directiveIntervalMsMax: 1000 }),
      "directiveIntervalMsMin",
      /must not exceed/,
    ],
  ];
  for (const [name, patch, field, problem] of cases) {
    it(`names the field: ${name}`, () => {
      const e = fieldOf(withPatch(patch));
      assert.equal(e.field, field);
      assert.match(e.message, problem);
    });
  }

  it("names the file and field when loading YAML", () => {
    const file = join(dir, "agent.yaml");
    writeFileSync(
      file,
      "component: { id: e1, role: encoder }\ncoordinator: { addresses: ['127.0.0.1:1'] }\nsampling: { intervalMs: fast }\n",
    );
    assert.throws(
      () => loadAgentConfig(file),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.file, file);
        assert.equal(err.field, "sampling.intervalMs");
        assert.ok(err.message.startsWith(`${file}: sampling.intervalMs:`), err.message);
        return true;
      },
    );
  });

  it("main returns 2 and prints the field for a bad config; --check accepts a good one", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "component: { id: e1, role: mixer }\ncoordinator: { addresses: ['127.0.0.1:1'] }\n",
    );
    const good = join(dir, "good.yaml");
    writeFileSync(
      good,
      "component: { id: e1, role: encoder }\ncoordinator: { addresses: ['127.0.0.1:1'] }\n",
    );
    const err = sinon.stub(process.stderr, "write").returns(true);
    const out = sinon.stub(process.stdout, "write").returns(true);
    const badCode = await main(["--config", bad]);
    const goodCode = await main([`--config=${good}`, "--check"]);
    const noConfig = await main([]);
    sinon.restore();
    assert.equal(badCode, 2);
    assert.match(String(err.firstCall.args[0]), /component\.role: expected one of "encoder"/);
    assert.equal(goodCode, 0);
    assert.match(String(out.firstCall.args[0]), /valid/);
    assert.equal(noConfig, 2);
  });
});
