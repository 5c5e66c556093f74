/**
 * ComponentService (proto/understudy/api/v1/component_service.proto).
 *
 * - ListComponents/GetComponent read this node's applied FSM state (any
 *   node answers; a follower may lag by the replication delay).
 *   last_seen_unix_ms comes from the leader's ingest memory and is 0 on
 *   followers, as the contract says; so does GetComponent's agent_stream
 *   (unset on followers).
 * - GetMetrics needs the leader: raw samples are not replicated. A follower
 *   answers UNAVAILABLE naming the leader (the API-wide alternative to
 *   forwarding; forwarding is not implemented yet).
 * - Drain proposes UpdateComponentStatus(DRAINING) and returns no handover
 *   ids: starting the handovers of the streams the component serves is the
 *   handover orchestrator's job and is not wired in yet. The failure
 *   detector never overrides DRAINING.
 * Bad input is INVALID_ARGUMENT naming the field; unknown ids NOT_FOUND
 * naming the id; nothing is stored on any error.
 */
import { clone } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Clock } from "../../../common/clock.ts";
import { invalidArgument, notFound } from "../../../common/errors.ts";
import type { ComponentService } from "../../../proto/gen/understudy/api/v1/component_service_pb.ts";
import {
  type Component,
  ComponentSchema,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { AgentIngest } from "../ingest/index.ts";
import { ID_PATTERN, isKnownRole, METRIC_NAME_PATTERN } from "../ingest/index.ts";
import type { ClusterHandle } from "./cluster-handle.ts";
import { commit, requireLeader } from "./writes.ts";

export const LIST_PAGE_SIZE_DEFAULT = 100;
export const LIST_PAGE_SIZE_MAX = 1000;
export const METRICS_NAMES_MAX = 64;
export const METRICS_POINTS_DEFAULT = 1000;
export const METRICS_POINTS_MAX = 10_000;
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,58}$/;
const TWO_POW_53 = 2n ** 53n;

export interface ComponentServiceDeps {
  cluster: ClusterHandle;
  ingest: Pick<AgentIngest, "component" | "lastSeenUnixMs" | "streamStatus">;
  clock: Clock;
}

function checkId(field: string, id: string): void {
  if (id === "") throw invalidArgument(field, "required");
  if (!ID_PATTERN.test(id)) {
    throw invalidArgument(
      field,
      `must be 1–64 chars of [a-z0-9-] starting with a letter or digit, got ${JSON.stringify(id.slice(0, 80))}`,
    );
  }
}

interface PageToken {
  role: number;
  status: number;
  after: string;
}

function encodeToken(t: PageToken): string {
  return Buffer.from(JSON.stringify([1, t.role, t.status, t.after]), "utf8").toString("base64url");
}

function decodeToken(token: string, role: number, status: number): string {
  const malformed = () =>
    invalidArgument(
      "page_token",
      "malformed; pass next_page_token from the previous response unchanged",
    );
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw malformed();
  }
  if (!Array.isArray(v) || v.length !== 4 || v[0] !== 1 || typeof v[3] !== "string")
    throw malformed();
  if (v[1] !== role || v[2] !== status) {
    throw invalidArgument(
      "page_token",
      "was issued for a request with a different role or status filter",
    );
  }
  return v[3];
}

const knownStatuses = new Set<number>(
  Object.values(ComponentStatus).filter((v): v is number => typeof v === "number"),
);

export function createComponentService(
  deps: ComponentServiceDeps,
): Partial<ServiceImpl<typeof ComponentService>> {
  const { cluster, ingest, clock } = deps;

  /** Copy with last_seen from the leader's memory (0 on followers). */
  const present = (c: Component, leader: boolean): Component => {
    const out = clone(ComponentSchema, c);
    out.lastSeenUnixMs = leader ? BigInt(Math.round(ingest.lastSeenUnixMs(c.id))) : 0n;
    return out;
  };

  const registered = (id: string): Component => {
    const c = cluster.fsm.component(id);
    if (c === undefined) throw notFound("component", id);
    return c;
  };

  return {
    listComponents(req) {
      if (req.pageSize > LIST_PAGE_SIZE_MAX) {
        throw invalidArgument(
          "page_size",
          `must be 0–${LIST_PAGE_SIZE_MAX} (0 = ${LIST_PAGE_SIZE_DEFAULT}), got ${req.pageSize}`,
        );
      }
      if (req.role !== 0 && !isKnownRole(req.role)) {
        throw invalidArgument("role", `unknown role ${req.role}`);
      }
      if (!knownStatuses.has(req.status))
        throw invalidArgument("status", `unknown status ${req.status}`);
      const size = req.pageSize === 0 ? LIST_PAGE_SIZE_DEFAULT : req.pageSize;
      const after = req.pageToken === "" ? "" : decodeToken(req.pageToken, req.role, req.status);
      let all = cluster.fsm.components();
      for (let i = 1; i < all.length; i++) {
        if (all[i - 1]!.id > all[i]!.id) {
          all = [...all].sort((a, b) => (a.id < b.id ? -1 : 1));
          break;
        }
      }
      const leader = cluster.leadership().isLeader;
      const page: Component[] = [];
      let more = false;
      for (const c of all) {
        if (c.id <= after) continue;
        if (req.role !== 0 && c.role !== req.role) continue;
        if (req.status !== 0 && c.status !== req.status) continue;
        if (page.length === size) {
          more = true;
          break;
        }
        page.push(present(c, leader));
      }
      const last = page[page.length - 1];
      return {
        components: page,
        nextPageToken:
          more && last ? encodeToken({ role: req.role, status: req.status, after: last.id }) : "",
      };
    },

    getComponent(req) {
      checkId("component_id", req.componentId);
      const leader = cluster.leadership().isLeader;
      const component = present(registered(req.componentId), leader);
      const v = leader ? ingest.streamStatus(req.componentId) : undefined;
      if (v === undefined) return { component };
      return {
        component,
        agentStream: {
          streaming: v.streaming,
          agentInstanceId: v.instanceId,
          connectedUnixMs: BigInt(Math.round(v.connectedUnixMs)),
          firstLiveReportUnixMs: BigInt(Math.round(v.firstLiveReportUnixMs)),
          streamsWelcomed: BigInt(v.streamsWelcomed),
          firstSequence: BigInt(v.firstSequence),
          lastSequence: BigInt(v.lastSequence),
          reportsIngested: BigInt(v.reportsIngested),
          replayedReports: BigInt(v.replayedReports),
          duplicateReports: BigInt(v.duplicateReports),
          gapReports: BigInt(v.gapReports),
          droppedSamples: BigInt(v.droppedSamples),
          lateSamples: BigInt(v.lateSamples),
        },
      };
    },

    getMetrics(req) {
      checkId("component_id", req.componentId);
      if (req.names.length > METRICS_NAMES_MAX) {
        throw invalidArgument("names", `at most ${METRICS_NAMES_MAX}, got ${req.names.length}`);
      }
      req.names.forEach((n, i) => {
        if (!METRIC_NAME_PATTERN.test(n)) {
          throw invalidArgument(
            `names[${i}]`,
            `must be a metric name ([a-z][a-z0-9_.]{0,127}), got ${JSON.stringify(n.slice(0, 80))}`,
          );
        }
      });
      if (req.fromUnixMs < 0n || req.fromUnixMs >= TWO_POW_53) {
        throw invalidArgument(
          "from_unix_ms",
          `must be 0 or a unix time in ms, got ${req.fromUnixMs}`,
        );
      }
      if (req.toUnixMs < 0n || req.toUnixMs >= TWO_POW_53) {
        throw invalidArgument("to_unix_ms", `must be 0 or a unix time in ms, got ${req.toUnixMs}`);
      }
      if (req.fromUnixMs > 0n && req.toUnixMs > 0n && req.toUnixMs <= req.fromUnixMs) {
        throw invalidArgument(
          "to_unix_ms",
          `must be > from_unix_ms (${req.fromUnixMs}), got ${req.toUnixMs}`,
        );
      }
      if (req.maxPoints > METRICS_POINTS_MAX) {
        throw invalidArgument(
          "max_points",
          `must be 0–${METRICS_POINTS_MAX} (0 = ${METRICS_POINTS_DEFAULT}), got ${req.maxPoints}`,
        );
      }
      requireLeader(cluster);
      registered(req.componentId);
      const store = ingest.component(req.componentId);
      if (store === undefined) return { series: [], heldFromUnixMs: 0n };
      const res = store.query(
        {
          names: req.names,
          fromMs: Number(req.fromUnixMs),
          toMs: req.toUnixMs === 0n ? Number.POSITIVE_INFINITY : Number(req.toUnixMs),
          maxPoints: req.maxPoints === 0 ? METRICS_POINTS_DEFAULT : req.maxPoints,
        },
        clock.nowMs(),
      );
      return {
        heldFromUnixMs: BigInt(Math.round(res.heldFromMs)),
        series: res.series.map((s) => ({
          name: s.name,
          unit: s.unit,
          labels: { ...s.labels },
          points: s.points.map((p) => ({
            timestampUnixMs: BigInt(Math.round(p.tMs)),
            value: p.value,
          })),
        })),
      };
    },

    async drain(req) {
      checkId("component_id", req.componentId);
      if (req.reason.length > 512)
        throw invalidArgument("reason", `at most 512 chars, got ${req.reason.length}`);
      if (req.requestId !== "" && !REQUEST_ID_PATTERN.test(req.requestId)) {
        throw invalidArgument("request_id", "must be 1–58 chars of [A-Za-z0-9._:-]");
      }
      requireLeader(cluster);
      const c = registered(req.componentId);
      // Idempotent: draining or drained already.
      if (c.status === ComponentStatus.DRAINING || c.status === ComponentStatus.DRAINED) {
        return { handoverIds: [] };
      }
      // Handover wiring comes later: the orchestrator will begin a handover
      // for every stream this component serves and return their ids here.
      await commit(
        cluster,
        {
          op: {
            case: "updateComponentStatus",
            value: {
              componentId: req.componentId,
              status: ComponentStatus.DRAINING,
              reason: `drain: ${req.reason || "operator request"}`,
              atUnixMs: BigInt(Math.round(clock.nowMs())),
            },
          },
        },
        req.requestId === "" ? undefined : `drain:${req.requestId}`,
      );
      return { handoverIds: [] };
    },
  };
}
