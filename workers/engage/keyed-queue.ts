// Runs tasks concurrently, up to a limit, except that tasks with the same key run one after
// another in the order they were added: events of one profile stay in stream order while those of
// different profiles overlap.

export class KeyedQueue {
  readonly #limit: number;
  /** The last task added per key: the next one of that key starts after it. */
  readonly #tails = new Map<string, Promise<void>>();
  readonly #running = new Set<Promise<void>>();

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  /**
   * Queues `task` behind the earlier tasks of `key`; resolves once fewer than `limit` tasks are
   * pending, so a caller feeding it from a stream applies back-pressure. `task` must not reject.
   */
  async add(key: string, task: () => Promise<void>): Promise<void> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(task);
    this.#tails.set(key, run);
    this.#running.add(run);
    void run.finally(() => {
      this.#running.delete(run);
      if (this.#tails.get(key) === run) this.#tails.delete(key);
    });
    while (this.#running.size >= this.#limit) await Promise.race(this.#running);
  }

  /** Resolves when every task added so far has finished. */
  async drain(): Promise<void> {
    await Promise.all(this.#running);
  }
}
