/**
 * The simulator's state machine: it folds every applied entry (index, term,
 * type, payload) into a 32-bit FNV-1a hash, so two nodes have the same hash at
 * index i exactly when (barring collisions) they applied the same sequence up
 * to i, whether entry by entry or through snapshots.
 */
import type { Entry } from "../../coordinator/src/raft/index.ts";

export interface FsmState {
  readonly appliedIndex: number;
  readonly hash: number;
  /** Normal entries with a payload (client commands) applied so far. */
  readonly commands: number;
}

export const initialFsmState: FsmState = { appliedIndex: 0, hash: 0x811c9dc5, commands: 0 };

function fold(hash: number, value: number): number {
  let h = hash;
  for (let shift = 0; shift < 32; shift += 8) {
    h ^= (value >>> shift) & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function entryFingerprint(e: Entry): number {
  let h = fold(0x811c9dc5, e.type === "normal" ? 1 : 2);
  for (const byte of e.data) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function applyEntry(state: FsmState, e: Entry): FsmState {
  if (e.index !== state.appliedIndex + 1) {
    throw new Error(`fsm applies index ${e.index} after ${state.appliedIndex}`);
  }
  const hash = fold(fold(fold(state.hash, e.index), e.term), entryFingerprint(e));
  const commands = state.commands + (e.type === "normal" && e.data.byteLength > 0 ? 1 : 0);
  return { appliedIndex: e.index, hash, commands };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeFsm(state: FsmState): Uint8Array {
  return encoder.encode(JSON.stringify(state));
}

export function decodeFsm(data: Uint8Array): FsmState {
  if (data.byteLength === 0) return initialFsmState;
  return JSON.parse(decoder.decode(data)) as FsmState;
}
