/**
 * A model of a player's forward buffer (the SDK fetches real media but does
 * not decode it). Media time is added as objects arrive and drains in real
 * time (times the playback rate) while playing.
 *
 * States: "startup" until the buffer first reaches `startThresholdMs`;
 * "playing"; "stalled" when the buffer hits 0 while playing (a stall: counted,
 * and its duration accumulates until the buffer is back at
 * `resumeThresholdMs`). Startup waiting is not a stall.
 *
 * Pure: time comes from the Clock passed in; call `update()` whenever the
 * caller wants an up-to-date level (every method does).
 */
import type { Clock } from "./clock.ts";

export type PlaybackState = "startup" | "playing" | "stalled";

export interface PlaybackBufferOptions {
  clock: Clock;
  /** Buffer needed to start playing, ms. */
  startThresholdMs: number;
  /** Buffer needed to resume after a stall, ms. */
  resumeThresholdMs: number;
  /** Bound on remembered object positions (for `playingMsn`). */
  positionsMax?: number;
}

export interface PlaybackSnapshot {
  state: PlaybackState;
  levelMs: number;
  stallCount: number;
  /** Total stall time, including a stall in progress, ms. */
  stallMs: number;
  /** Media time added since the start, ms. */
  addedMs: number;
  /** Media time played, ms. */
  playedMs: number;
  /** Time from creation to the first frame, ms (undefined before). */
  startupMs?: number;
  playbackRate: number;
}

export interface PlaybackBuffer {
  /** Adds `durationMs` of media of segment `msn`. */
  add(durationMs: number, msn: number): void;
  update(): void;
  levelMs(): number;
  state(): PlaybackState;
  /** Sets the drain rate (e.g. 0.9 to build buffer); applies from now. */
  setPlaybackRate(rate: number): void;
  /** True (once) if a stall happened since the previous call: CMCD `bs`. */
  takeStarvation(): boolean;
  /** MSN of the media playing now (undefined before the first frame). */
  playingMsn(): number | undefined;
  snapshot(): PlaybackSnapshot;
  /**
   * Playback ended (the session closed or ran out its duration): one last
   * update, then the model stops; level, state and stall totals keep their
   * values. Without it a buffer read after the end would keep draining and
   * count a stall that no viewer saw.
   */
  end(): void;
}

export function createPlaybackBuffer(opts: PlaybackBufferOptions): PlaybackBuffer {
  const { clock } = opts;
  const positionsMax = opts.positionsMax ?? 256;
  const createdMs = clock.monotonicMs();
  let state: PlaybackState = "startup";
  let level = 0;
  let lastMs = createdMs;
  let rate = 1;
  let stallCount = 0;
  let stallMsDone = 0;
  let stallStartMs = 0;
  let addedMs = 0;
  let startupMs: number | undefined;
  let starved = false;
  let ended = false;
  // (msn, cumulative media start) of recent objects, ascending.
  const positions: { msn: number; startMs: number }[] = [];

  const update = () => {
    if (ended) return;
    const now = clock.monotonicMs();
    const elapsed = now - lastMs;
    lastMs = now;
    if (state !== "playing" || elapsed <= 0) return;
    const drain = elapsed * rate;
    if (drain < level) {
      level -= drain;
      return;
    }
    // The buffer ran dry during this interval: the stall began when it hit 0.
    stallStartMs = now - (drain - level) / rate;
    level = 0;
    state = "stalled";
    stallCount++;
    starved = true;
  };

  return {
    add(durationMs, msn) {
      update();
      if (ended || !(durationMs > 0)) return;
      const last = positions[positions.length - 1];
      if (!last || last.msn !== msn) {
        positions.push({ msn, startMs: addedMs });
        if (positions.length > positionsMax) positions.shift();
      }
      addedMs += durationMs;
      level += durationMs;
      const now = lastMs;
      if (state === "startup" && level >= opts.startThresholdMs) {
        state = "playing";
        startupMs = now - createdMs;
      } else if (state === "stalled" && level >= opts.resumeThresholdMs) {
        state = "playing";
        stallMsDone += now - stallStartMs;
      }
    },
    update,
    levelMs() {
      update();
      return level;
    },
    state() {
      update();
      return state;
    },
    setPlaybackRate(r) {
      update();
      if (r > 0 && Number.isFinite(r)) rate = r;
    },
    takeStarvation() {
      update();
      const s = starved || state === "stalled";
      starved = false;
      return s;
    },
    playingMsn() {
      update();
      if (startupMs === undefined) return undefined;
      const played = addedMs - level;
      let msn: number | undefined;
      for (const p of positions) {
        if (p.startMs <= played) msn = p.msn;
        else break;
      }
      return msn ?? positions[0]?.msn;
    },
    end() {
      update();
      ended = true;
    },
    snapshot() {
      update();
      return {
        state,
        levelMs: level,
        stallCount,
        stallMs: stallMsDone + (state === "stalled" ? lastMs - stallStartMs : 0),
        addedMs,
        playedMs: addedMs - level,
        ...(startupMs !== undefined ? { startupMs } : {}),
        playbackRate: rate,
      };
    },
  };
}
