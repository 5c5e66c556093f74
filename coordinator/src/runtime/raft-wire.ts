/**
 * Field-by-field mapping between the pure core's RaftMessage values and the
 * understudy.raft.v1 protobufs. No logic beyond numeric conversion (64-bit
 * fields are bigint on the wire, number in the core; values stay < 2^53) and
 * snapshot chunking, which only the wire needs.
 */
import { createHash } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import * as pb from "../../../proto/gen/understudy/raft/v1/raft_pb.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  ConfState,
  Entry,
  InstallSnapshot,
  InstallSnapshotResponse,
  ReadIndex,
  ReadIndexResponse,
  RequestVote,
  RequestVoteResponse,
  Snapshot,
  TimeoutNow,
} from "../raft/index.ts";

const n = (x: bigint): number => Number(x);
const b = (x: number): bigint => BigInt(x);

function entryToWire(e: Entry): MessageInitShape<typeof pb.EntrySchema> {
  return {
    term: b(e.term),
    index: b(e.index),
    type: e.type === "conf-change" ? pb.EntryType.CONF_CHANGE : pb.EntryType.NORMAL,
    data: e.data,
  };
}

function entryFromWire(e: pb.Entry): Entry {
  if (e.type !== pb.EntryType.NORMAL && e.type !== pb.EntryType.CONF_CHANGE) {
    throw new Error(`entry ${e.index}: unknown type ${e.type}`);
  }
  return {
    term: n(e.term),
    index: n(e.index),
    type: e.type === pb.EntryType.CONF_CHANGE ? "conf-change" : "normal",
    data: e.data,
  };
}

export const wire = {
  appendEntries: (m: AppendEntries): MessageInitShape<typeof pb.AppendEntriesRequestSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    leaderId: m.leaderId,
    prevLogIndex: b(m.prevLogIndex),
    prevLogTerm: b(m.prevLogTerm),
    entries: m.entries.map(entryToWire),
    leaderCommit: b(m.leaderCommit),
    readContext: b(m.readContext),
  }),
  appendEntriesFrom: (r: pb.AppendEntriesRequest): AppendEntries => ({
    kind: "AppendEntries",
    from: r.from,
    to: r.to,
    term: n(r.term),
    leaderId: r.leaderId,
    prevLogIndex: n(r.prevLogIndex),
    prevLogTerm: n(r.prevLogTerm),
    entries: r.entries.map(entryFromWire),
    leaderCommit: n(r.leaderCommit),
    readContext: n(r.readContext),
  }),
  appendEntriesResponse: (
    m: AppendEntriesResponse,
  ): MessageInitShape<typeof pb.AppendEntriesResponseSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    success: m.success,
    matchIndex: b(m.matchIndex),
    rejectHintIndex: b(m.rejectHintIndex),
    rejectHintTerm: b(m.rejectHintTerm),
    readContext: b(m.readContext),
  }),
  appendEntriesResponseFrom: (r: pb.AppendEntriesResponse): AppendEntriesResponse => ({
    kind: "AppendEntriesResponse",
    from: r.from,
    to: r.to,
    term: n(r.term),
    success: r.success,
    matchIndex: n(r.matchIndex),
    rejectHintIndex: n(r.rejectHintIndex),
    rejectHintTerm: n(r.rejectHintTerm),
    readContext: n(r.readContext),
  }),
  requestVote: (m: RequestVote): MessageInitShape<typeof pb.RequestVoteRequestSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    candidateId: m.candidateId,
    lastLogIndex: b(m.lastLogIndex),
    lastLogTerm: b(m.lastLogTerm),
    preVote: m.preVote,
    leadershipTransfer: m.leadershipTransfer,
  }),
  requestVoteFrom: (r: pb.RequestVoteRequest): RequestVote => ({
    kind: "RequestVote",
    from: r.from,
    to: r.to,
    term: n(r.term),
    candidateId: r.candidateId,
    lastLogIndex: n(r.lastLogIndex),
    lastLogTerm: n(r.lastLogTerm),
    preVote: r.preVote,
    leadershipTransfer: r.leadershipTransfer,
  }),
  requestVoteResponse: (
    m: RequestVoteResponse,
  ): MessageInitShape<typeof pb.RequestVoteResponseSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    voteGranted: m.voteGranted,
    preVote: m.preVote,
  }),
  requestVoteResponseFrom: (r: pb.RequestVoteResponse): RequestVoteResponse => ({
    kind: "RequestVoteResponse",
    from: r.from,
    to: r.to,
    term: n(r.term),
    voteGranted: r.voteGranted,
    preVote: r.preVote,
  }),
  installSnapshotResponse: (
    m: InstallSnapshotResponse,
  ): MessageInitShape<typeof pb.InstallSnapshotResponseSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    matchIndex: b(m.matchIndex),
    success: m.success,
  }),
  installSnapshotResponseFrom: (r: pb.InstallSnapshotResponse): InstallSnapshotResponse => ({
    kind: "InstallSnapshotResponse",
    from: r.from,
    to: r.to,
    term: n(r.term),
    matchIndex: n(r.matchIndex),
    success: r.success,
  }),
  timeoutNow: (m: TimeoutNow): MessageInitShape<typeof pb.TimeoutNowRequestSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    leaderId: m.leaderId,
  }),
  timeoutNowFrom: (r: pb.TimeoutNowRequest): TimeoutNow => ({
    kind: "TimeoutNow",
    from: r.from,
    to: r.to,
    term: n(r.term),
    leaderId: r.leaderId,
  }),
  readIndex: (m: ReadIndex): MessageInitShape<typeof pb.ReadIndexRequestSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    requestCtx: b(m.requestCtx),
  }),
  readIndexFrom: (r: pb.ReadIndexRequest): ReadIndex => ({
    kind: "ReadIndex",
    from: r.from,
    to: r.to,
    term: n(r.term),
    requestCtx: n(r.requestCtx),
  }),
  readIndexResponse: (
    m: ReadIndexResponse,
  ): MessageInitShape<typeof pb.ReadIndexResponseSchema> => ({
    from: m.from,
    to: m.to,
    term: b(m.term),
    requestCtx: b(m.requestCtx),
    index: b(m.index),
  }),
  readIndexResponseFrom: (r: pb.ReadIndexResponse): ReadIndexResponse => ({
    kind: "ReadIndexResponse",
    from: r.from,
    to: r.to,
    term: n(r.term),
    requestCtx: n(r.requestCtx),
    index: n(r.index),
  }),
};

/** Bound on one InstallSnapshot chunk on the wire. */
export const snapshotChunkBytes = 1024 * 1024;

export function* snapshotChunks(
  m: InstallSnapshot,
  addresses: Record<string, string>,
): Generator<MessageInitShape<typeof pb.InstallSnapshotChunkSchema>> {
  const data = m.snapshot.data;
  const sha256 = createHash("sha256").update(data).digest();
  const conf = m.snapshot.metadata.conf;
  let offset = 0;
  do {
    const end = Math.min(data.length, offset + snapshotChunkBytes);
    const done = end >= data.length;
    yield {
      from: m.from,
      to: m.to,
      term: b(m.term),
      leaderId: m.leaderId,
      lastIncludedIndex: b(m.snapshot.metadata.index),
      lastIncludedTerm: b(m.snapshot.metadata.term),
      conf:
        offset === 0
          ? {
              voters: [...conf.voters],
              learners: [...conf.learners],
              votersOutgoing: [...conf.votersOutgoing],
              addresses,
            }
          : undefined,
      offsetBytes: b(offset),
      data: data.subarray(offset, end),
      done,
      sha256: done ? sha256 : new Uint8Array(0),
    };
    offset = end;
  } while (offset < data.length);
}

/** Largest snapshot a receiver assembles (the FSM state is small; this bounds memory). */
export const snapshotBytesMax = 512 * 1024 * 1024;

/**
 * Reassembles a chunk stream into one InstallSnapshot message. Throws an Error
 * whose message says what was wrong (out-of-order offset, mismatched header,
 * checksum, size bound); the RPC layer maps it to FAILED_PRECONDITION.
 */
export async function assembleSnapshot(
  chunks: AsyncIterable<pb.InstallSnapshotChunk>,
): Promise<{ msg: InstallSnapshot; addresses: Record<string, string> }> {
  const parts: Uint8Array[] = [];
  let received = 0;
  let first: pb.InstallSnapshotChunk | undefined;
  let conf: ConfState | undefined;
  let addresses: Record<string, string> = {};
  for await (const c of chunks) {
    if (!first) {
      first = c;
      if (!c.conf) throw new Error("first InstallSnapshot chunk has no conf");
      conf = {
        voters: c.conf.voters,
        learners: c.conf.learners,
        votersOutgoing: c.conf.votersOutgoing,
      };
      addresses = { ...c.conf.addresses };
    } else if (c.lastIncludedIndex !== first.lastIncludedIndex || c.term !== first.term) {
      throw new Error("InstallSnapshot chunks of different snapshots on one stream");
    }
    if (Number(c.offsetBytes) !== received) {
      throw new Error(`InstallSnapshot chunk at offset ${c.offsetBytes}, expected ${received}`);
    }
    received += c.data.length;
    if (received > snapshotBytesMax) {
      throw new Error(`snapshot larger than ${snapshotBytesMax} bytes`);
    }
    parts.push(c.data);
    if (c.done) {
      const data = Buffer.concat(parts);
      const sum = createHash("sha256").update(data).digest();
      if (c.sha256.length > 0 && !sum.equals(Buffer.from(c.sha256))) {
        throw new Error("snapshot checksum mismatch");
      }
      const snapshot: Snapshot = {
        metadata: {
          index: n(first.lastIncludedIndex),
          term: n(first.lastIncludedTerm),
          conf: conf as ConfState,
        },
        data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      };
      return {
        msg: {
          kind: "InstallSnapshot",
          from: first.from,
          to: first.to,
          term: n(first.term),
          leaderId: first.leaderId,
          snapshot,
        },
        addresses,
      };
    }
  }
  throw new Error("InstallSnapshot stream ended before the last chunk");
}
