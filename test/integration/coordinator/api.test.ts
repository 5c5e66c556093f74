/**
 * The coordinator API on a real 3-node cluster (separate processes, gRPC over
 * HTTP/2 via @grpc/grpc-js): redirects from followers, validation that
 * changes nothing, linearizable reads on followers, and the Connect JSON
 * protocol over HTTP/1.1 that the README's curl examples use.
 */
import assert from "node:assert/strict";
import { Code } from "../../../common/errors.ts";
import {
  grpcCode,
  grpcMessage,
  raftOnly,
  sharedCluster,
  streamSpec,
  testRendition,
} from "../../support/cluster.ts";

describe("coordinator API (3 real processes)", function () {
  this.timeout(60_000);
  const cluster = sharedCluster({ name: "api", config: raftOnly });

  const followers = async () => {
    const leader = await cluster().waitForLeader(10_000);
    return {
      leader,
      followers: cluster()
        .ids()
        .filter((id) => id !== leader),
    };
  };

  it("a write to a follower fails with UNAVAILABLE naming the leader and its API address", async () => {
    const { leader, followers: fs } = await followers();
    const f = fs[0]!;
    await assert.rejects(
      cluster()
        .node(f)
        .streams.createStream(
          { spec: streamSpec("redirected"), requestId: "redirect-1" },
          { timeoutMs: 3000 },
        ),
      (err: Error & { metadata?: { get(k: string): unknown[] } }) => {
        assert.equal(grpcCode(err), Code.Unavailable);
        assert.match(
          grpcMessage(err),
          new RegExp(`leader "${leader}" at ${cluster().node(leader).apiAddress}`),
        );
        assert.deepEqual(err.metadata?.get("x-understudy-leader"), [
          cluster().node(leader).apiAddress,
        ]);
        return true;
      },
    );
    // Nothing was stored: the follower did not forward the write.
    await assert.rejects(
      cluster().node(leader).streams.getStream({ streamId: "redirected" }, { timeoutMs: 3000 }),
      (err) => grpcCode(err) === Code.NotFound,
    );
  });

  it("invalid requests are INVALID_ARGUMENT naming the field and change no replica", async () => {
    const { leader } = await followers();
    const before = await cluster().waitForConverged(10_000);
    const cases: { spec: ReturnType<typeof streamSpec>; field: RegExp }[] = [
      { spec: { ...streamSpec("Bad_Id") }, field: /^spec\.id: must be 1–64 chars/ },
      {
        spec: {
          ...streamSpec("bad-width"),
          renditions: [{ ...testRendition, width: 8 }],
        },
        field: /spec\.renditions\[0\]\.width: must be 16–7680, got 8/,
      },
      {
        spec: { ...streamSpec("bad-shard"), shardDurationMs: 100 },
        field: /spec\.shard_duration_ms/,
      },
      {
        spec: { ...streamSpec("bad-rf"), replicationFactor: 9 },
        field: /spec\.replication_factor: must be 1–5, got 9/,
      },
    ];
    for (const { spec, field } of cases) {
      await assert.rejects(
        cluster()
          .node(leader)
          .streams.createStream({ spec, requestId: `bad-${spec.id}` }, { timeoutMs: 3000 }),
        (err: Error) => {
          assert.equal(grpcCode(err), Code.InvalidArgument, grpcMessage(err));
          assert.match(grpcMessage(err), field);
          return true;
        },
      );
    }
    await assert.rejects(
      cluster().node(leader).streams.listStreams({ pageSize: 5000 }, { timeoutMs: 3000 }),
      (err: Error) =>
        grpcCode(err) === Code.InvalidArgument && /^page_size: at most 1000/.test(grpcMessage(err)),
    );
    await assert.rejects(
      cluster()
        .node(leader)
        .cluster.addMember({ nodeId: "c9", address: "nowhere" }, { timeoutMs: 3000 }),
      (err: Error) =>
        grpcCode(err) === Code.InvalidArgument &&
        /^address: must be "host:port"/.test(grpcMessage(err)),
    );
    const after = await cluster().waitForConverged(10_000);
    for (const [i, s] of after.entries()) {
      assert.equal(s.applied, before[i]!.applied, `${s.nodeId}: nothing was appended`);
      assert.equal(s.stateHash, before[i]!.stateHash, `${s.nodeId}: state unchanged`);
    }
  });

  it("a linearizable read on a follower sees a write the leader acknowledged just before", async () => {
    const { leader, followers: fs } = await followers();
    for (let i = 0; i < 20; i++) {
      const id = `lin-${i}`;
      await cluster()
        .node(leader)
        .streams.createStream(
          { spec: streamSpec(id), requestId: `lin-req-${i}` },
          { timeoutMs: 5000 },
        );
      const f = fs[i % fs.length]!;
      const r = await cluster().node(f).streams.getStream({ streamId: id }, { timeoutMs: 5000 });
      assert.equal(r.stream?.spec?.id, id, `read ${i} on ${f}`);
      assert.equal(r.servedByNodeId, f);
    }
  });

  it("a retried write with the same request_id applies once; a new id for the same stream is ALREADY_EXISTS", async () => {
    const { leader } = await followers();
    const first = await cluster()
      .node(leader)
      .streams.createStream(
        { spec: streamSpec("retried"), requestId: "retry-same" },
        { timeoutMs: 5000 },
      );
    const again = await cluster()
      .node(leader)
      .streams.createStream(
        { spec: streamSpec("retried"), requestId: "retry-same" },
        { timeoutMs: 5000 },
      );
    assert.equal(again.stream?.version, first.stream?.version);
    await assert.rejects(
      cluster()
        .node(leader)
        .streams.createStream(
          { spec: streamSpec("retried"), requestId: "retry-other" },
          { timeoutMs: 5000 },
        ),
      (err) => grpcCode(err) === Code.AlreadyExists,
    );
  });

  it("speaks Connect JSON over HTTP/1.1 (the README's curl examples)", async () => {
    const { leader, followers: fs } = await followers();
    const post = (addr: string, path: string, body: unknown) =>
      fetch(`http://${addr}/${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${cluster().tokens?.tokens.admin}`,
        },
        body: JSON.stringify(body),
      });
    const st = await post(
      cluster().node(fs[0]!).apiAddress,
      "understudy.api.v1.ClusterService/GetStatus",
      {},
    );
    assert.equal(st.status, 200);
    const json = (await st.json()) as {
      node: { nodeId: string; leaderId: string; stateHash: string };
    };
    assert.equal(json.node.nodeId, fs[0]);
    assert.equal(json.node.leaderId, leader);
    assert.match(json.node.stateHash, /^[0-9a-f]{16}$/);

    const redirected = await post(
      cluster().node(fs[0]!).apiAddress,
      "understudy.api.v1.StreamService/CreateStream",
      { spec: { id: "json-1" }, requestId: "json-1" },
    );
    // Validation runs before the leader check, so this is a 400 naming the field.
    assert.equal(redirected.status, 400);
    assert.match(((await redirected.json()) as { message: string }).message, /spec\.renditions/);
  });
});
