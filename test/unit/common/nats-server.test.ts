import assert from "node:assert/strict";
import { connect, StringCodec } from "nats";
import { startNatsServer } from "../../../common/nats-server.ts";

describe("common/nats-server (real nats-server process)", () => {
  it("starts on a free loopback port, carries a message, and stops", async () => {
    const server = await startNatsServer();
    try {
      assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
      const nc = await connect({ servers: server.url });
      const sc = StringCodec();
      const sub = nc.subscribe("understudy.test");
      nc.publish("understudy.test", sc.encode("hello"));
      for await (const m of sub) {
        assert.equal(sc.decode(m.data), "hello");
        break;
      }
      await nc.close();
    } finally {
      await server.stop();
    }
    // After stop, nothing listens on that port any more.
    await assert.rejects(connect({ servers: server.url, reconnect: false, timeout: 500 }));
  });

  it("restarts on the same port after a SIGKILL", async () => {
    const first = await startNatsServer();
    await first.kill();
    const second = await startNatsServer({ port: first.port });
    try {
      assert.equal(second.port, first.port);
    } finally {
      await second.stop();
    }
  });

  it("names the install command when the binary is missing", async () => {
    const saved = process.env.NATS_SERVER_BIN;
    process.env.NATS_SERVER_BIN = "/nonexistent/nats-server";
    try {
      await assert.rejects(startNatsServer(), /ENOENT|nats-server/);
    } finally {
      if (saved === undefined) delete process.env.NATS_SERVER_BIN;
      else process.env.NATS_SERVER_BIN = saved;
    }
  });
});
