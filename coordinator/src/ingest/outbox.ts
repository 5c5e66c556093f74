/**
 * Outbound side of one agent stream: what the server still has to send,
 * consumed by the bidi handler's async generator.
 *
 * Bounded: at most `messagesMax` queued messages (Welcome, Directives); the
 * Ack is a single slot holding only the newest watermark, because an older
 * watermark is implied by a newer one. Queued messages go out before the Ack.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectError } from "../../../common/errors.ts";
import type { CoordinatorMessageSchema } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";

export type OutMessage = MessageInitShape<typeof CoordinatorMessageSchema>;

export interface Outbox extends AsyncIterable<OutMessage> {
  /** Queues a message; false when full or finished. */
  push(msg: OutMessage): boolean;
  /** Sets the watermark to send (replaces one not yet sent). */
  ack(sequence: number): void;
  /** Finish after everything queued is sent. */
  end(): void;
  /** Finish now with an error (queued messages are dropped). */
  fail(err: ConnectError): void;
  readonly finished: boolean;
}

export function createOutbox(messagesMax: number): Outbox {
  const queue: OutMessage[] = [];
  let ackSeq = -1;
  let ended = false;
  let error: ConnectError | undefined;
  let wake: (() => void) | undefined;

  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  return {
    push(msg) {
      if (ended || error !== undefined || queue.length >= messagesMax) return false;
      queue.push(msg);
      signal();
      return true;
    },
    ack(sequence) {
      if (ended || error !== undefined) return;
      ackSeq = sequence;
      signal();
    },
    end() {
      ended = true;
      signal();
    },
    fail(err) {
      if (error !== undefined || ended) return;
      error = err;
      queue.length = 0;
      signal();
    },
    get finished() {
      return ended || error !== undefined;
    },
    async *[Symbol.asyncIterator]() {
      // Bounded by the stream's lifetime: each turn sends one message or waits.
      for (;;) {
        if (error !== undefined) throw error;
        const m = queue.shift();
        if (m !== undefined) {
          yield m;
          continue;
        }
        if (ackSeq >= 0) {
          const seq = ackSeq;
          ackSeq = -1;
          yield { body: { case: "ack", value: { sequence: BigInt(seq) } } };
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}
