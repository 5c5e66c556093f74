/**
 * An agent's Hello names where its service serves viewers (base_url) and its
 * control RPC (control_address); the coordinator records both on the
 * component (handover notices and PackagerService calls need them), refuses
 * malformed ones naming the field, and keeps what is registered when an agent
 * does not send them.
 */
import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { type AgentConn, helloFor } from "./agent-conn.ts";
import { type Harness, startHarness, until } from "./harness.ts";

async function welcomed(c: AgentConn, hello: ReturnType<typeof helloFor>) {
  c.hello(hello);
  const m = await c.next();
  assert.equal(m.body.case, "welcome");
}

describe("ingest: origin addresses from Hello", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("records base_url and control_address on registration", async () => {
    const c = h.conn();
    await welcomed(
      c,
      helloFor("pkg-1", "a1", {
        baseUrl: "http://127.0.0.1:8080",
        controlAddress: "127.0.0.1:9090",
      }),
    );
    await until(() => h.cluster.fsm.component("pkg-1") !== undefined, "registration");
    const comp = h.cluster.fsm.component("pkg-1");
    assert.equal(comp?.baseUrl, "http://127.0.0.1:8080");
    assert.equal(comp?.controlAddress, "127.0.0.1:9090");
    c.close();
  });

  it("refuses a malformed base_url or control_address naming the field, registering nothing", async () => {
    for (const [field, extra] of [
      ["hello.base_url", { baseUrl: "ftp://nope" }],
      ["hello.control_address", { controlAddress: "no port" }],
    ] as const) {
      const c = h.conn();
      c.hello(helloFor("pkg-2", "a2", extra));
      const end = await c.ended();
      assert.equal(end.code, status.INVALID_ARGUMENT);
      assert.match(end.details, new RegExp(field.replace(".", "\\.")));
      assert.equal(h.cluster.fsm.component("pkg-2"), undefined);
    }
  });
});
