/**
 * Scripted planner scenarios (after etcd's datadriven tests). A scenario file
 * is a list of blocks:
 *
 *   # comment
 *   command arg...
 *   ----
 *   expected output (may be several lines)
 *   <blank line>
 *
 * Commands run against a real FSM; `plan` runs one planRound, applies its
 * commands in order (each must succeed) and prints the resulting state, so a
 * file reads as the history of a stream. `runScenario` returns the file with
 * the actual outputs; UPDATE_SCENARIOS=1 rewrites it (review the diff).
 *
 * Commands:
 *   packager ID zone=Z [region=R] [max-streams=N] [egress-bps=N]
 *   encoder ID [max-streams=N]
 *   stream ID rf=N renditions=ID:BPS,... [anti] [zones=Z,...] [regions=R,...]
 *   status ID healthy|suspect|unknown|down|draining|drained
 *   demand STREAM RENDITION=SESSIONS,...
 *   plan shard=N                            one round at currentShard N
 *
 * `plan` prints, per stream: the proposed commands with their expected
 * epochs (the schedule version for set-segment-schedule), the status (and
 * its message), the segment-duration decision, the replicated segment
 * schedule (`schedule DURATION@MSN/SHARD ...`) once it has changed, every
 * assignment row (`RENDITION FIRST..LAST PRIMARY+REPLICAS`, open rows end in
 * `..`) and every shard range (`shards FIRST..LAST ENCODER -> TARGETS`).
 */
import {
  assignmentRowsFromProto,
  planRound,
  roundInputFromFsm,
  type StreamRuntime,
  shardRangesFromProto,
} from "../../../coordinator/src/plan/index.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { createFsmHarness } from "./fsm-harness.ts";

interface Block {
  readonly comments: string[];
  readonly command: string;
}

function parseBlocks(source: string, file: string): Block[] {
  const blocks: Block[] = [];
  const lines = source.split("\n");
  let k = 0;
  while (k < lines.length) {
    const comments: string[] = [];
    while (k < lines.length && (lines[k]?.startsWith("#") || lines[k]?.trim() === "")) {
      if (lines[k]?.startsWith("#")) comments.push(lines[k] as string);
      k++;
    }
    if (k >= lines.length) {
      if (comments.length > 0) blocks.push({ comments, command: "" });
      break;
    }
    const command = (lines[k++] as string).trim();
    if (lines[k] !== "----") throw new Error(`${file}:${k + 1}: expected ---- after "${command}"`);
    k++;
    while (k < lines.length && lines[k]?.trim() !== "") k++;
    blocks.push({ comments, command });
  }
  return blocks;
}

const statuses: Record<string, ComponentStatus> = {
  healthy: ComponentStatus.HEALTHY,
  suspect: ComponentStatus.SUSPECT,
  unknown: ComponentStatus.UNKNOWN,
  down: ComponentStatus.DOWN,
  draining: ComponentStatus.DRAINING,
  drained: ComponentStatus.DRAINED,
};

function keyValues(args: readonly string[]): Map<string, string> {
  return new Map(
    args.map((a) => {
      const i = a.indexOf("=");
      return i < 0 ? [a, "true"] : [a.slice(0, i), a.slice(i + 1)];
    }),
  );
}

function int(kv: Map<string, string>, key: string, fallback?: number): number {
  const v = kv.get(key);
  if (v === undefined) {
    if (fallback === undefined) throw new Error(`missing ${key}=`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${key}=${v} is not an integer`);
  return n;
}

const list = (v: string | undefined) => (v ? v.split(",") : []);

class Interpreter {
  private readonly h = createFsmHarness();
  private readonly demand = new Map<string, Map<string, number>>();

  run(command: string): string {
    const [verb, ...args] = command.split(/\s+/);
    const kv = keyValues(args.slice(1));
    const id = args[0] ?? "";
    switch (verb) {
      case "packager":
        this.h.register(
          id,
          ComponentRole.PACKAGER,
          { region: kv.get("region") ?? "eu", zone: kv.get("zone") ?? "" },
          {
            maxStreams: int(kv, "max-streams", 10),
            egressBps: BigInt(int(kv, "egress-bps", 10_000_000_000)),
          },
        );
        return "ok";
      case "encoder":
        this.h.register(id, ComponentRole.ENCODER, {}, { maxStreams: int(kv, "max-streams", 4) });
        return "ok";
      case "stream":
        this.h.createStream(id, {
          renditions: list(kv.get("renditions")).map((r) => {
            const [rid, bps] = r.split(":");
            return [rid as string, BigInt(bps ?? "1000000")] as const;
          }),
          replicationFactor: int(kv, "rf"),
          zoneAntiAffinity: kv.has("anti"),
          allowedZones: list(kv.get("zones")),
          allowedRegions: list(kv.get("regions")),
        });
        return "ok";
      case "status": {
        const status = statuses[args[1] ?? ""];
        if (status === undefined) throw new Error(`unknown status "${args[1]}"`);
        this.h.setStatus(id, status);
        return "ok";
      }
      case "demand":
        this.demand.set(
          id,
          new Map(
            list(args[1]).map((x) => {
              const [rid, n] = x.split("=");
              return [rid as string, Number(n)];
            }),
          ),
        );
        return "ok";
      case "plan":
        return this.plan(int(keyValues(args), "shard"));
      default:
        throw new Error(`unknown command "${verb}"`);
    }
  }

  private plan(currentShard: number): string {
    const runtime = (streamId: string): StreamRuntime => ({
      currentShard,
      sessionsByRendition: this.demand.get(streamId),
    });
    const fsm = this.h.fsm;
    const round = planRound(roundInputFromFsm(fsm, runtime));
    const out: string[] = [];
    for (const s of round.streams) {
      for (const c of s.commands) {
        const r = this.h.propose(c);
        if (!r.ok) throw new Error(`${c.kind} of ${s.streamId} failed: ${r.message}`);
      }
      const stream = fsm.stream(s.streamId);
      const proposed =
        s.commands
          .map((c) => `${c.kind}@${c.expectedScheduleVersion ?? c.expectedEpoch}`)
          .join(" ") || "nothing";
      out.push(`${s.streamId} epoch=${stream?.epoch} proposed: ${proposed}`);
      if (s.skipped) out.push(`  skipped: ${s.skipped}`);
      out.push(`  ${s.status}${s.statusMessage ? `: ${s.statusMessage}` : ""}`);
      const g = s.granularity;
      if (g?.kind === "change") {
        out.push(
          `  segments: ${g.segmentDurationMs} ms from msn ${g.effectiveMsn} (shard ${g.effectiveShard}): ${g.reason}`,
        );
      } else if (g) {
        out.push(`  segments: keep ${g.segmentDurationMs} ms: ${g.reason}`);
      }
      const schedule = stream?.segmentSchedule ?? [];
      if (schedule.length > 1) {
        out.push(
          `  schedule ${schedule.map((e) => `${e.segmentDurationMs}@${e.sinceMsn}/${e.sinceShard}`).join(" ")}`,
        );
      }
      for (const r of assignmentRowsFromProto(fsm.assignments(s.streamId))) {
        out.push(
          `  ${r.renditionId} ${r.firstMsn}..${r.lastMsn ?? ""} ${[r.primary, ...r.replicas].join("+")}`,
        );
      }
      for (const r of shardRangesFromProto(fsm.shardMap(s.streamId)?.ranges)) {
        out.push(
          `  shards ${r.firstShard}..${r.lastShard ?? ""} ${r.encoderId} -> ${r.replicaPackagerIds.join(",")}`,
        );
      }
    }
    return out.join("\n");
  }
}

export function runScenario(source: string, file: string): string {
  const interp = new Interpreter();
  const out: string[] = [];
  for (const block of parseBlocks(source, file)) {
    out.push(...block.comments);
    if (!block.command) continue;
    let actual: string;
    try {
      actual = interp.run(block.command);
    } catch (err) {
      actual = `error: ${(err as Error).message}`;
    }
    out.push(block.command, "----", actual, "");
  }
  return `${out.join("\n").trimEnd()}\n`;
}
