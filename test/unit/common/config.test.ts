import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfigFile, s } from "../../../common/config.ts";

const schema = s.object({
  nodeId: s.string({ minLength: 1 }),
  listen: s.hostPort(),
  heartbeatIntervalMs: s.default(s.number({ min: 1, max: 10_000, integer: true }), 50),
  peers: s.array(s.object({ id: s.string(), address: s.hostPort() }), { minItems: 1 }),
  mode: s.default(s.literal("origin", "edge"), "origin"),
  labels: s.optional(s.record(s.string())),
});

function write(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "understudy-config-"));
  const file = join(dir, "c.yaml");
  writeFileSync(file, text);
  return file;
}

function errorOf(text: string): ConfigError {
  try {
    loadConfigFile(schema, write(text));
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail("config was accepted");
}

describe("common/config", () => {
  it("parses a valid file and applies defaults", () => {
    const cfg = loadConfigFile(
      schema,
      write(
        "nodeId: c1\nlisten: 127.0.0.1:7000\npeers:\n  - { id: c2, address: '127.0.0.1:7001' }\n",
      ),
    );
    assert.deepEqual(cfg, {
      nodeId: "c1",
      listen: "127.0.0.1:7000",
      heartbeatIntervalMs: 50,
      peers: [{ id: "c2", address: "127.0.0.1:7001" }],
      mode: "origin",
    });
  });

  it("names the nested field and the file on a wrong type", () => {
    const err = errorOf(
      "nodeId: c1\nlisten: 127.0.0.1:7000\npeers:\n  - { id: c2, address: 'nohost' }\n",
    );
    assert.equal(err.field, "peers[0].address");
    assert.match(err.message, /c\.yaml: peers\[0\]\.address: expected an address "host:port"/);
  });

  it("rejects out-of-range numbers, unknown fields, bad enums, missing fields and bad YAML", () => {
    assert.equal(
      errorOf("nodeId: c1\nlisten: a:1\nheartbeatIntervalMs: 0\npeers: [{id: x, address: 'a:2'}]")
        .field,
      "heartbeatIntervalMs",
    );
    const unknown = errorOf("nodeId: c1\nlisten: a:1\npeers: [{id: x, address: 'a:2'}]\nlisen: 3");
    assert.equal(unknown.field, "lisen");
    assert.match(unknown.message, /unknown field/);
    assert.equal(
      errorOf("nodeId: c1\nlisten: a:1\nmode: cdn\npeers: [{id: x, address: 'a:2'}]").field,
      "mode",
    );
    assert.match(
      errorOf("listen: a:1\npeers: [{id: x, address: 'a:2'}]").message,
      /nodeId: is required/,
    );
    assert.match(errorOf("nodeId: [unclosed").message, /not valid YAML/);
    assert.match(errorOf("nodeId: c1\nlisten: a:1\npeers: []").message, /peers: needs at least 1/);
  });
});
