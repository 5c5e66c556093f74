/**
 * Scripted Raft scenarios (after etcd's datadriven interaction tests). A
 * scenario file is a list of blocks:
 *
 *   # comment
 *   command arg...
 *   ----
 *   expected output (may be several lines)
 *   <blank line>
 *
 * `runScenario` executes the commands against a harness Cluster and returns
 * the file rewritten with the actual outputs, so a test compares the two and
 * UPDATE_SCENARIOS=1 rewrites the file (review the diff before committing).
 *
 * Commands:
 *   cluster ID... [key=value...]   new cluster (keys: preVote, checkQuorum,
 *                                  electionTicks, heartbeatTicks, maxInflightMsgs,
 *                                  maxSizePerMsgBytes, seed)
 *   campaign ID                    ID starts an election; messages are delivered
 *   propose ID DATA                ID proposes DATA; messages are delivered
 *   conf ID TYPE NODE              ID proposes a membership change
 *   transfer ID TARGET             leadership transfer
 *   read ID CTX                    ReadIndex request
 *   tick ID N | tick-all N         ticks (tick-all delivers after each round)
 *   deliver                        delivers queued messages until quiet
 *   isolate ID | partition A,B | heal
 *   drop-appends-to ID             drop AppendEntries carrying entries to ID
 *   compact ID                     snapshot ID's FSM at its applied index and compact
 *   restart ID | start ID          restart from ID's storage / start a new empty node
 *   status | log ID | applied ID | progress ID | reads ID
 * Commands that deliver messages print each delivery, one per line.
 */
import {
  type ConfChangeType,
  entrySizeBytes,
  type NodeId,
  type RaftMessage,
} from "../../../coordinator/src/raft/index.ts";
import { bytes, Cluster, type ConfigOverrides, text } from "./harness.ts";

export function formatMessage(m: RaftMessage): string {
  const head = `${m.from}->${m.to} `;
  switch (m.kind) {
    case "AppendEntries": {
      const ents = m.entries.map((e) => `${e.index}@${e.term}`).join(",");
      const read = m.readContext > 0 ? ` read=${m.readContext}` : "";
      return `${head}AppendEntries term=${m.term} prev=${m.prevLogIndex}@${m.prevLogTerm} entries=[${ents}] commit=${m.leaderCommit}${read}`;
    }
    case "AppendEntriesResponse": {
      const read = m.readContext > 0 ? ` read=${m.readContext}` : "";
      return m.success
        ? `${head}AppendEntriesResponse term=${m.term} ok match=${m.matchIndex}${read}`
        : `${head}AppendEntriesResponse term=${m.term} reject prev=${m.matchIndex} hint=${m.rejectHintIndex}@${m.rejectHintTerm}${read}`;
    }
    case "RequestVote":
      return `${head}${m.preVote ? "PreVote" : "RequestVote"} term=${m.term} last=${m.lastLogIndex}@${m.lastLogTerm}${m.leadershipTransfer ? " transfer" : ""}`;
    case "RequestVoteResponse":
      return `${head}${m.preVote ? "PreVoteResponse" : "RequestVoteResponse"} term=${m.term} ${m.voteGranted ? "granted" : "rejected"}`;
    case "InstallSnapshot": {
      const meta = m.snapshot.metadata;
      return `${head}InstallSnapshot term=${m.term} snapshot=${meta.index}@${meta.term} voters=${meta.conf.voters.join(",")}`;
    }
    case "InstallSnapshotResponse":
      return `${head}InstallSnapshotResponse term=${m.term} ${m.success ? "ok" : "refused"} match=${m.matchIndex}`;
    case "TimeoutNow":
      return `${head}TimeoutNow term=${m.term}`;
    case "ReadIndex":
      return `${head}ReadIndex term=${m.term} ctx=${m.requestCtx}`;
    case "ReadIndexResponse":
      return `${head}ReadIndexResponse term=${m.term} index=${m.index} ctx=${m.requestCtx}`;
  }
}

interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string;
}

function parseBlocks(source: string, file: string): Block[] {
  const blocks: Block[] = [];
  const lines = source.split("\n");
  let k = 0;
  while (k < lines.length) {
    const comments: string[] = [];
    while (k < lines.length && (lines[k]!.startsWith("#") || lines[k]!.trim() === "")) {
      if (lines[k]!.startsWith("#")) comments.push(lines[k]!);
      k++;
    }
    if (k >= lines.length) {
      if (comments.length > 0) blocks.push({ comments, command: "", expected: "" });
      break;
    }
    const command = lines[k++]!.trim();
    if (lines[k] !== "----") throw new Error(`${file}:${k + 1}: expected ---- after "${command}"`);
    k++;
    const out: string[] = [];
    while (k < lines.length && lines[k]!.trim() !== "") out.push(lines[k++]!);
    blocks.push({ comments, command, expected: out.join("\n") });
  }
  return blocks;
}

const boolKeys = new Set(["preVote", "checkQuorum"]);
const numberKeys = new Set([
  "electionTicks",
  "heartbeatTicks",
  "maxInflightMsgs",
  "maxSizePerMsgBytes",
  "seed",
]);

class Interpreter {
  private cluster: Cluster | undefined;
  private trace: string[] = [];

  run(command: string): string {
    this.trace = [];
    const [verb, ...args] = command.split(/\s+/);
    const result = this.exec(verb!, args);
    return [...this.trace, ...(result ? [result] : [])].join("\n") || "ok";
  }

  private get c(): Cluster {
    if (!this.cluster) throw new Error("no cluster: start with `cluster ID...`");
    return this.cluster;
  }

  private exec(verb: string, args: string[]): string {
    const c = verb === "cluster" ? undefined : this.c;
    switch (verb) {
      case "cluster": {
        const ids = args.filter((a) => !a.includes("="));
        const overrides: Record<string, unknown> = {};
        let seed = 1;
        for (const kv of args.filter((a) => a.includes("="))) {
          const [key, value] = kv.split("=") as [string, string];
          if (boolKeys.has(key)) overrides[key] = value === "true";
          else if (key === "maxSizePerMsgBytes" && value.endsWith("entry")) {
            overrides[key] = entrySizeBytes({
              index: 0,
              term: 0,
              type: "normal",
              data: new Uint8Array(1),
            });
          } else if (numberKeys.has(key)) {
            if (key === "seed") seed = Number(value);
            else overrides[key] = Number(value);
          } else throw new Error(`unknown cluster option ${key}`);
        }
        this.cluster = new Cluster(ids, overrides as ConfigOverrides, seed);
        this.cluster.onDeliver = (m, dropped) =>
          this.trace.push(`${dropped ? "DROP " : ""}${formatMessage(m)}`);
        return "ok";
      }
      case "campaign":
        c!.raw(args[0]!).campaign();
        c!.deliver();
        return this.status();
      case "propose": {
        const r = c!.raw(args[0]!).propose(bytes(args[1] ?? ""));
        c!.deliver();
        return r.ok ? `proposed at ${r.index}@${r.term}` : `refused: ${r.error.kind}`;
      }
      case "conf": {
        const r = c!.raw(args[0]!).proposeConfChange({
          type: args[1] as ConfChangeType,
          nodeId: args[2]!,
        });
        c!.deliver();
        return r.ok
          ? `proposed at ${r.index}@${r.term}`
          : `refused: ${r.error.kind}: ${r.error.message}`;
      }
      case "transfer": {
        const r = c!.raw(args[0]!).transferLeadership(args[1]!);
        c!.deliver();
        return r.ok ? this.status() : `refused: ${r.error.kind}`;
      }
      case "read": {
        const r = c!.raw(args[0]!).readIndex(Number(args[1]));
        c!.deliver();
        return r.ok ? this.reads(args[0]!) : `refused: ${r.error.kind}`;
      }
      case "tick":
        for (let k = 0; k < Number(args[1] ?? 1); k++) {
          c!.raw(args[0]!).tick();
          c!.deliver();
        }
        return this.status();
      case "tick-all":
        c!.tickAll(Number(args[0] ?? 1));
        return this.status();
      case "deliver":
        c!.deliver();
        return "";
      case "isolate":
        c!.isolate(args[0]!);
        return "ok";
      case "partition": {
        const side = new Set(args[0]!.split(","));
        c!.dropIf = (m) => side.has(m.from) !== side.has(m.to);
        return "ok";
      }
      case "drop-appends-to": {
        const id = args[0]!;
        c!.dropIf = (m) => m.kind === "AppendEntries" && m.to === id && m.entries.length > 0;
        return "ok";
      }
      case "heal":
        c!.heal();
        return "ok";
      case "compact":
        return `compacted ${args[0]} to ${c!.compact(args[0]!)}`;
      case "restart":
        c!.start(args[0]!, c!.get(args[0]!).storage);
        c!.settle();
        return this.status();
      case "start":
        c!.start(args[0]!);
        c!.settle();
        return "ok";
      case "status":
        return this.status();
      case "log": {
        const s = c!.get(args[0]!).storage;
        const lines = [`first ${s.firstIndex()} last ${s.lastIndex()}`];
        if (s.lastIndex() >= s.firstIndex()) {
          for (const e of s.entries(s.firstIndex(), s.lastIndex() + 1, Number.POSITIVE_INFINITY)) {
            lines.push(
              `${e.index}@${e.term} ${e.type} ${e.type === "normal" ? JSON.stringify(text(e.data)) : text(e.data)}`,
            );
          }
        }
        return lines.join("\n");
      }
      case "applied":
        return JSON.stringify(c!.appliedData(args[0]!));
      case "progress": {
        const st = c!.raw(args[0]!).status();
        return [...st.progress]
          .map(
            ([id, p]) =>
              `${id}: ${p.state} match=${p.match} next=${p.next}${p.inflight ? ` inflight=${p.inflight}` : ""}${p.isLearner ? " learner" : ""}${p.pendingSnapshot ? ` pendingSnapshot=${p.pendingSnapshot}` : ""}`,
          )
          .join("\n");
      }
      case "reads":
        return this.reads(args[0]!);
      default:
        throw new Error(`unknown command ${verb}`);
    }
  }

  private reads(id: NodeId): string {
    const rs = this.c.get(id).readStates;
    return `read states of ${id}: ${rs.map((r) => `ctx=${r.requestCtx} index=${r.index}`).join(", ") || "none"}`;
  }

  private status(): string {
    return [...this.c.nodes.values()]
      .map((n) => {
        const s = n.node.status();
        const lead = s.role === "leader" ? "" : ` leader=${s.leader || "none"}`;
        return `${n.id}: ${s.role} term=${s.term}${lead} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}`;
      })
      .join("\n");
  }
}

/** Runs a scenario file's source; returns the source with actual outputs. */
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
