/**
 * ClientService over real gRPC on a real coordinator node: a valid report is
 * acknowledged with the next interval and counts as demand for its
 * rendition; bad reports get INVALID_ARGUMENT naming the field, unknown
 * streams NOT_FOUND, and neither changes what the node holds.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { ClientService } from "../../proto/gen/understudy/api/v1/client_service_pb.ts";
import { rendition360p, streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

describe("ClientService (real coordinator, real gRPC)", function () {
  this.timeout(20_000);
  it("acknowledges valid reports and refuses bad ones naming the field", async () => {
    const node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
    });
    const c = createGrpcClient(ClientService, node.apiServer.address);
    try {
      await node.cluster.propose({
        op: {
          case: "createStream",
          value: {
            spec: {
              ...streamSpec("live-1"),
              renditions: [{ ...rendition360p, bandwidthBps: 1n }],
              replicationFactor: 1,
            },
          },
        },
      });
      const ok = await c.report({
        report: {
          sessionId: "s-1",
          streamId: "live-1",
          renditionId: "360p",
          bufferMs: 1800,
          stallCount: 0,
        },
      });
      assert.equal(ok.nextReportIntervalMs, 5000);
      const bad = (report: object, field: RegExp) =>
        assert.rejects(
          c.report({ report }),
          (e: grpc.ServiceError) =>
            e.code === grpc.status.INVALID_ARGUMENT && field.test(e.details),
        );
      await bad({ sessionId: "no spaces allowed", streamId: "live-1" }, /report\.session_id/);
      await bad({ sessionId: "s-2", streamId: "Live!" }, /report\.stream_id/);
      await bad(
        { sessionId: "s-2", streamId: "live-1", renditionId: "BAD RENDITION" },
        /report\.rendition_id/,
      );
      await bad(
        { sessionId: "s-2", streamId: "live-1", cpuLoadRatio: Number.NaN },
        /report\.cpu_load_ratio/,
      );
      await assert.rejects(
        c.report({}),
        (e: grpc.ServiceError) =>
          e.code === grpc.status.INVALID_ARGUMENT && /report: required/.test(e.details),
      );
      await assert.rejects(
        c.report({ report: { sessionId: "s-3", streamId: "nope" } }),
        (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
      );
    } finally {
      c.close();
      await node.cleanup();
    }
  });
});
