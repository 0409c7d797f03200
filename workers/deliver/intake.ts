// Feeds the pipeline from the Sender's consumer without making a small batch wait: a continuous
// consume() keeps up to two batches buffered, and the pipeline takes whatever is there (up to its
// concurrency) as soon as at least one message arrived. A fixed-size fetch would hold the last
// few messages of a backlog, or a lone message at low traffic, until its expiry.
import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";

export class Intake {
  readonly #consumer: Consumer;
  #messages: ConsumerMessages | undefined;
  #size = 0;
  #buffer: JsMsg[] = [];
  #wake: (() => void) | undefined;
  #pump: Promise<void> | undefined;

  constructor(consumer: Consumer) {
    this.#consumer = consumer;
  }

  /**
   * Up to `max` buffered messages, waiting until at least one is there, `signal` aborts, or
   * `idleMs` passes (then resolving with none).
   */
  async take(max: number, signal: AbortSignal, idleMs = 1000): Promise<JsMsg[]> {
    await this.#ensure(max);
    if (this.#buffer.length === 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, idleMs);
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
      this.#wake = undefined;
      // Let messages delivered in the same burst join this batch.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return this.#buffer.splice(0, max);
  }

  /** Stops consuming and naks what is buffered, so another replica takes it at once. */
  async close(): Promise<void> {
    await this.#stop();
    for (const message of this.#buffer.splice(0)) message.nak();
  }

  async #ensure(max: number): Promise<void> {
    if (this.#messages !== undefined && this.#size === max) return;
    await this.#stop();
    this.#size = max;
    const messages = await this.#consumer.consume({ max_messages: max * 2 });
    this.#messages = messages;
    this.#pump = (async () => {
      for await (const message of messages) {
        this.#buffer.push(message);
        this.#wake?.();
      }
    })();
  }

  async #stop(): Promise<void> {
    const messages = this.#messages;
    this.#messages = undefined;
    if (messages === undefined) return;
    await messages.close().catch(() => undefined);
    await this.#pump;
  }
}
