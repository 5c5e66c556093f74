/**
 * grpc.health.v1: Check, List and Watch over a status map the owner updates
 * (e.g. a coordinator reports NOT_SERVING for its API while it has no leader).
 * "" is the server's overall status. Watch streams changes until the server
 * shuts down; the number of watchers is bounded.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../proto/gen/grpc/health/v1/health_pb.ts";

export { Status as ServingStatus };

export interface HealthService {
  readonly services: readonly (typeof Health)[];
  setStatus(service: string, status: Status): void;
  status(service: string): Status | undefined;
  register(router: ConnectRouter): void;
  /** Ends every Watch stream with NOT_SERVING (server shutdown). */
  shutdown(): void;
}

const watchersMax = 1024;

export function createHealthService(serviceNames: readonly string[]): HealthService {
  const statuses = new Map<string, Status>([["", Status.SERVING]]);
  for (const n of serviceNames) statuses.set(n, Status.SERVING);
  const watchers = new Set<(s: string) => void>();
  let down = false;

  const response = (status: Status): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status });

  const self: HealthService = {
    services: [Health],
    setStatus(service, status) {
      if (down) return;
      if (statuses.get(service) === status) return;
      statuses.set(service, status);
      for (const w of watchers) w(service);
    },
    status: (service) => statuses.get(service),
    shutdown() {
      down = true;
      for (const k of statuses.keys()) statuses.set(k, Status.NOT_SERVING);
      for (const w of [...watchers]) w("*");
    },
    register(router) {
      router.service(Health, {
        check(req) {
          const st = statuses.get(req.service);
          if (st === undefined) {
            throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
          }
          return response(st);
        },
        list() {
          const out = create(HealthListResponseSchema);
          for (const [k, v] of statuses) out.statuses[k] = response(v);
          return out;
        },
        async *watch(req, ctx) {
          if (watchers.size >= watchersMax) {
            throw new ConnectError(
              `too many health watchers (max ${watchersMax})`,
              Code.ResourceExhausted,
            );
          }
          // Bounded by construction: only the latest status matters, so a
          // slow reader sees at most one pending change (a flag, not a queue).
          let changed = true;
          let wake: (() => void) | undefined;
          const onChange = (s: string) => {
            if (s === req.service || s === "*") {
              changed = true;
              wake?.();
            }
          };
          watchers.add(onChange);
          const onAbort = () => wake?.();
          ctx.signal.addEventListener("abort", onAbort);
          try {
            let last: Status | undefined;
            while (!ctx.signal.aborted) {
              if (changed) {
                changed = false;
                const st = statuses.get(req.service) ?? Status.SERVICE_UNKNOWN;
                if (st !== last) {
                  last = st;
                  yield response(st);
                }
                if (down) return;
                continue;
              }
              await new Promise<void>((r) => {
                wake = r;
              });
              wake = undefined;
            }
          } finally {
            watchers.delete(onChange);
            ctx.signal.removeEventListener("abort", onAbort);
          }
        },
      });
    },
  };
  return self;
}
