// The work queue seam runOperator uses: a key added many times is reconciled once; one key never
// runs twice at once (added while running, it runs again after); a failing key is retried with
// exponential backoff and jitter. The implementation is the controller's queue
// (controller/workqueue.ts, as controller-runtime's), behind this small interface.
import { WorkQueue as ControllerQueue } from "./controller/workqueue.ts";

export type WorkResult = { kind: "done" } | { kind: "requeue"; afterMs: number };

export interface WorkQueue {
  /** Schedules `key` now, or after `afterMs`. */
  add(key: string, afterMs?: number): void;
  /** Keys waiting or running. */
  readonly depth: number;
  /** Runs `handler` for each key until `signal` aborts; resolves once running handlers finished. */
  run(handler: (key: string) => Promise<WorkResult>, signal: AbortSignal): Promise<void>;
}

export interface QueueOptions {
  concurrency: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  onError?: (key: string, error: unknown) => void;
  /** Told the number of keys ready to run whenever it changes (a metric). */
  onDepth?: (depth: number) => void;
}

export function createWorkQueue(options: QueueOptions): WorkQueue {
  // The handler arrives with run(); keys may be added before that and simply wait.
  let handler: ((key: string) => Promise<WorkResult>) | undefined;
  const queue = new ControllerQueue({
    concurrency: options.concurrency,
    baseBackoffMs: options.baseBackoffMs,
    maxBackoffMs: options.maxBackoffMs,
    handler: async (key) => {
      if (handler === undefined) return { requeueAfterMs: 100 };
      const result = await handler(key);
      return result.kind === "requeue" ? { requeueAfterMs: result.afterMs } : undefined;
    },
    onResult: (report) => {
      if (report.outcome === "error") options.onError?.(report.key, report.error);
    },
    ...(options.onDepth !== undefined && { onDepth: options.onDepth }),
  });
  return {
    add(key, afterMs = 0) {
      queue.addAfter(key, afterMs);
    },
    get depth() {
      return queue.depth;
    },
    async run(next, signal) {
      handler = next;
      await queue.run(signal);
    },
  };
}
