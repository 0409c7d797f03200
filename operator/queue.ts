// A keyed work queue: a key added many times is reconciled once; one key never runs twice at
// once (added while running, it runs again after); a failing key is retried with exponential
// backoff and jitter. Small on purpose: the seam is `WorkQueue`, so a richer queue can replace it.

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
}

export function createWorkQueue(options: QueueOptions): WorkQueue {
  const ready: string[] = [];
  const queued = new Set<string>();
  const running = new Set<string>();
  const dirty = new Set<string>();
  const failures = new Map<string, number>();
  const timers = new Map<string, NodeJS.Timeout>();
  let wake: () => void = () => undefined;

  const enqueue = (key: string): void => {
    if (running.has(key)) {
      dirty.add(key);
      return;
    }
    if (queued.has(key)) return;
    queued.add(key);
    ready.push(key);
    wake();
  };

  const add = (key: string, afterMs = 0): void => {
    if (afterMs <= 0) {
      enqueue(key);
      return;
    }
    if (timers.has(key)) return;
    timers.set(
      key,
      setTimeout(() => {
        timers.delete(key);
        enqueue(key);
      }, afterMs),
    );
  };

  const backoff = (key: string): number => {
    const count = (failures.get(key) ?? 0) + 1;
    failures.set(key, count);
    const ms = Math.min(options.maxBackoffMs, options.baseBackoffMs * 2 ** (count - 1));
    return ms / 2 + Math.random() * (ms / 2);
  };

  const process = async (key: string, handler: (key: string) => Promise<WorkResult>): Promise<void> => {
    running.add(key);
    try {
      const result = await handler(key);
      failures.delete(key);
      if (result.kind === "requeue") add(key, result.afterMs);
    } catch (error) {
      options.onError?.(key, error);
      add(key, backoff(key));
    } finally {
      running.delete(key);
      if (dirty.delete(key)) enqueue(key);
    }
  };

  return {
    add,
    get depth() {
      return queued.size + running.size;
    },
    async run(handler, signal) {
      const inFlight = new Set<Promise<void>>();
      const stop = (): void => {
        wake();
      };
      signal.addEventListener("abort", stop, { once: true });
      while (!signal.aborted) {
        const key = inFlight.size < options.concurrency ? ready.shift() : undefined;
        if (key === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (inFlight.size > 0) void Promise.race(inFlight).then(resolve);
          });
          continue;
        }
        queued.delete(key);
        const task = process(key, handler).finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
      for (const timer of timers.values()) clearTimeout(timer);
      await Promise.all(inFlight);
    },
  };
}
