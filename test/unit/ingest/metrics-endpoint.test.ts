/** Prometheus text rendering and the /metrics route over real HTTP. */
import assert from "node:assert/strict";
import { silentLogger } from "../../../common/log.ts";
import { startRpcServer } from "../../../common/rpc-server.ts";
import {
  escapeLabelValue,
  handleMetricsRequest,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheusMetrics,
} from "../../../coordinator/src/api/metrics-endpoint.ts";
import { createFailureDetector } from "../../../coordinator/src/detect/index.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { helloFor } from "./agent-conn.ts";
import { type Harness, report, sample, startHarness, until } from "./harness.ts";

const LINE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;

/** Checks the text format: every sample follows its family's HELP and TYPE. */
function parse(text: string): Map<string, string[]> {
  const families = new Map<string, string[]>();
  let current = "";
  for (const line of text.trimEnd().split("\n")) {
    const help = /^# HELP (\S+) /.exec(line);
    if (help) {
      assert.ok(!families.has(help[1]!), `family ${help[1]} declared twice`);
      current = help[1]!;
      families.set(current, []);
      continue;
    }
    const type = /^# TYPE (\S+) (gauge|counter)$/.exec(line);
    if (type) {
      assert.equal(type[1], current, "TYPE follows its HELP");
      continue;
    }
    const m = LINE.exec(line);
    assert.ok(m, `not a valid sample line: ${line}`);
    assert.equal(m[1], current, `sample ${m[1]} outside its family block`);
    families.get(current)!.push(line);
  }
  return families;
}

describe("api: Prometheus metrics endpoint", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("escapes label values", () => {
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  });

  it("renders component gauges, key metrics and ingest counters in valid text format", async () => {
    const c = h.conn();
    c.hello(helloFor("pkg-1"));
    await c.next();
    c.report(
      report(1, h.clock.nowMs(), [
        sample("cpu.load", 0.42),
        sample("fs.used_ratio", 0.3, { labels: { mount: "/" } }),
        sample("fs.used_ratio", 0.9, { labels: { mount: "/data" } }),
      ]),
    );
    await until(() => h.ingest.stats().reports === 1, "report");
    h.clock.advance(2500);
    const det = createFailureDetector({
      cluster: h.cluster,
      clock: h.clock,
      log: silentLogger,
      autoTick: false,
    });
    det.start();
    det.observe("pkg-1");
    det.tick();
    const text = renderPrometheusMetrics({
      cluster: h.cluster,
      ingest: h.ingest,
      detector: det,
      clock: h.clock,
    });
    det.close();
    const f = parse(text);
    assert.deepEqual(f.get("understudy_component_status"), [
      'understudy_component_status{component="pkg-1",role="packager",status="healthy"} 1',
    ]);
    assert.deepEqual(f.get("understudy_component_last_seen_age_seconds"), [
      'understudy_component_last_seen_age_seconds{component="pkg-1"} 2.5',
    ]);
    assert.deepEqual(f.get("understudy_component_cpu_load"), [
      'understudy_component_cpu_load{component="pkg-1"} 0.42',
    ]);
    assert.deepEqual(f.get("understudy_component_fs_used_ratio"), [
      'understudy_component_fs_used_ratio{component="pkg-1"} 0.9',
    ]);
    assert.deepEqual(f.get("understudy_ingest_reports_total"), [
      "understudy_ingest_reports_total 1",
    ]);
    assert.deepEqual(f.get("understudy_ingest_samples_total"), [
      "understudy_ingest_samples_total 3",
    ]);
    assert.deepEqual(f.get("understudy_ingest_active_streams"), [
      "understudy_ingest_active_streams 1",
    ]);
    assert.ok(
      f
        .get("understudy_ingest_rejected_total")!
        .includes('understudy_ingest_rejected_total{reason="report_invalid"} 0'),
    );
    assert.ok(f.has("understudy_ingest_skewed_reports_total"));
    assert.ok(f.has("understudy_ingest_duplicate_reports_total"));
    assert.deepEqual(f.get("understudy_ingest_held_hellos_total"), [
      "understudy_ingest_held_hellos_total 0",
    ]);
    assert.deepEqual(f.get("understudy_detector_tracked_components"), [
      "understudy_detector_tracked_components 1",
    ]);
    assert.equal(f.get("understudy_component_liveness_phi")?.length, 1);
    assert.match(text, /^# HELP understudy_component_cpu_load Host CPU busy share/m);
  });

  it("caps per-component series and counts the components dropped", () => {
    for (let i = 0; i < 5; i++)
      h.cluster.register(`org-${i}`, ComponentRole.ORIGIN, ComponentStatus.SUSPECT, "x");
    h.cluster.register('odd"one', ComponentRole.EDGE);
    const text = renderPrometheusMetrics({
      cluster: h.cluster,
      ingest: h.ingest,
      clock: h.clock,
      componentsMax: 3,
    });
    const f = parse(text);
    assert.equal(f.get("understudy_component_status")?.length, 3);
    assert.deepEqual(f.get("understudy_metrics_components_dropped"), [
      "understudy_metrics_components_dropped 3",
    ]);
  });

  it("is served at GET /metrics on the HTTP fallback; other paths fall through", async () => {
    const deps = { cluster: h.cluster, ingest: h.ingest, clock: h.clock };
    const server = await startRpcServer({
      listen: "127.0.0.1:0",
      services: [],
      fallback: (req, res) => {
        if (!handleMetricsRequest(req, res, deps)) {
          res.writeHead(404);
          res.end();
        }
      },
    });
    try {
      const ok = await fetch(`http://${server.address}/metrics`);
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
      parse(await ok.text());
      assert.equal((await fetch(`http://${server.address}/other`)).status, 404);
      assert.equal(
        (await fetch(`http://${server.address}/metrics`, { method: "POST" })).status,
        405,
      );
    } finally {
      await server.close(100);
    }
  });
});
