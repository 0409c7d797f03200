// Publishes to JetStream and awaits each message's PubAck with none of the per-request cost of
// `js.publish`: no request object, timer or (discarded) Error per message, one subscription for
// every ack, one sweep for timeouts. Measured on the timer backlog after a restart (the chaos test
// test/chaos/engage-timers.test.ts under --cpu-prof): js.publish's request machinery was about a
// fifth of the engage process's CPU there. The protocol is JetStream's own: a publish with a reply
// subject is answered by a PubAck ({stream, seq, duplicate?}) or an error ({error: {code,
// description}}), or by a 503 status when no stream listens on the subject.
import { createInbox, headers } from "@nats-io/transport-node";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";

const OPEN_BRACE = "{".charCodeAt(0);
const LETTER_S = "s".charCodeAt(0);
const LETTER_T = "t".charCodeAt(0);

interface Waiting {
  resolve: () => void;
  reject: (error: Error) => void;
  deadline: number;
}

export class AckedPublisher {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<string, Waiting>();
  readonly #subscription: Subscription;
  readonly #sweep: NodeJS.Timeout;
  #next = 0;
  #closed = false;

  constructor(nc: NatsConnection, timeoutMs = 5000) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#prefix = `${createInbox()}.`;
    this.#subscription = nc.subscribe(`${this.#prefix}*`, {
      callback: (error, message) => {
        if (error === null) this.#answer(message);
      },
    });
    this.#sweep = setInterval(
      () => {
        this.#expire(Date.now());
      },
      Math.min(1000, timeoutMs),
    );
    this.#sweep.unref();
  }

  /** Resolves once the stream stored the message (or knew its id already); rejects on an error or timeout. */
  publish(subject: string, data: string, messageId: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("JetStream publish failed: publisher closed"));
    const token = (this.#next++).toString(36);
    const header = headers();
    header.set("Nats-Msg-Id", messageId);
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(token, { resolve, reject, deadline: Date.now() + this.#timeoutMs });
      try {
        this.#nc.publish(subject, data, { reply: `${this.#prefix}${token}`, headers: header });
      } catch (error) {
        this.#waiting.delete(token);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Rejects what still waits and stops listening. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    this.#subscription.unsubscribe();
    this.#expire(Number.POSITIVE_INFINITY, "publisher closed");
  }

  #answer(message: Msg): void {
    const token = message.subject.slice(this.#prefix.length);
    const waiting = this.#waiting.get(token);
    if (waiting === undefined) return;
    this.#waiting.delete(token);
    if (message.headers?.hasError === true) {
      waiting.reject(new Error(`JetStream publish failed: ${message.headers.code} ${message.headers.description}`));
      return;
    }
    // A PubAck is {"stream":...}; an error comes first in the body ({"error":...}). Most answers
    // are acks: tell them by their first bytes, without decoding and parsing JSON.
    const data = message.data;
    if (data[0] === OPEN_BRACE && data[2] === LETTER_S && data[3] === LETTER_T) {
      waiting.resolve();
      return;
    }
    try {
      const ack = message.json<{ stream?: string; error?: { code: number; description: string } }>();
      if (ack.error !== undefined) waiting.reject(new Error(`JetStream publish failed: ${ack.error.description}`));
      else if (ack.stream === undefined) waiting.reject(new Error("JetStream publish failed: no stream in the ack"));
      else waiting.resolve();
    } catch (error) {
      waiting.reject(error instanceof Error ? error : new Error("JetStream publish failed: unreadable ack"));
    }
  }

  #expire(now: number, reason = "no PubAck in time"): void {
    // Insertion order is deadline order: stop at the first one still in time.
    for (const [token, waiting] of this.#waiting) {
      if (waiting.deadline > now) break;
      this.#waiting.delete(token);
      waiting.reject(new Error(`JetStream publish failed: ${reason}`));
    }
  }
}
