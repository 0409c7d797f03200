// A keyed work queue as controller-runtime's: a key waits at most once (adding it again while it
// waits is a no-op), is never handed to two workers at once (a key added while it is being
// reconciled runs again once that reconcile ends), backs off exponentially with jitter while its
// reconcile fails, and comes back after `requeueAfterMs` when the reconciler asks. Every re-add that
// the queue schedules itself (errors, requeue-after) also passes a token bucket, so a storm of
// failures cannot turn into a storm of API calls. A periodic resync re-adds every known key, which
// is what makes level-triggered reconcilers converge even after a missed notification.
import { sleep, systemClock } from "./clock.ts";
import type { Clock, TimerHandle } from "./clock.ts";

/** What a handler returns: done, or come back after a delay. Throwing means "failed, back off". */
export type HandlerResult = { requeueAfterMs?: number } | undefined;

export interface WorkQueueOptions {
  /** Reconciles one key. Rejecting backs the key off; resolving resets its backoff. */
  handler: (key: string) => Promise<HandlerResult>;
  /** Keys reconciled at once (different keys; one key never runs twice at once). */
  concurrency?: number;
  /** First retry delay after a failure; doubles per consecutive failure up to maxBackoffMs. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Token bucket over queue-scheduled re-adds (failures and requeue-after). */
  requeueRatePerSecond?: number;
  requeueBurst?: number;
  /** Re-adds every key `resyncKeys` returns, this often. 0 disables. */
  resyncMs?: number;
  resyncKeys?: () => Iterable<string>;
  clock?: Clock;
  /** In [0, 1); the jitter source. */
  random?: () => number;
  /** Told the number of ready keys whenever it changes. */
  onDepth?: (depth: number) => void;
  /** Told how each handler call ended, for metrics and logs. */
  onResult?: (report: {
    key: string;
    outcome: "success" | "requeue" | "error";
    durationMs: number;
    error?: unknown;
  }) => void;
}

/** The delay before retry `failures` (1 = first failure): exponential, capped, jittered in [50 %, 100 %]. */
export function backoffMs(failures: number, options: { baseMs: number; maxMs: number; random: () => number }): number {
  const exponential = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(failures - 1, 52));
  return Math.round(exponential * (0.5 + options.random() / 2));
}

/** A token bucket on an injectable clock: `reserve()` takes a token and says how long to wait for it. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;

  constructor(options: { ratePerSecond: number; burst: number; clock: Clock }) {
    this.#rate = options.ratePerSecond;
    this.#burst = options.burst;
    this.#clock = options.clock;
    this.#tokens = options.burst;
    this.#last = options.clock.now();
  }

  /** Takes one token (possibly borrowed from the future); resolves the ms until it is really there. */
  reserve(): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#rate) * 1000);
  }
}

export class WorkQueue {
  readonly #options: WorkQueueOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #bucket: TokenBucket;
  /** Ready keys in arrival order, and the same set for de-duplication. */
  #ready: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  /** Keys added while being processed: they run again when their reconcile ends. */
  readonly #dirty = new Set<string>();
  /** Delayed re-adds, one per key (the earliest wins). */
  readonly #delayed = new Map<string, { due: number; timer: TimerHandle }>();
  readonly #failures = new Map<string, number>();
  #waiters: (() => void)[] = [];
  #stopped = false;

  constructor(options: WorkQueueOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#bucket = new TokenBucket({
      ratePerSecond: options.requeueRatePerSecond ?? 10,
      burst: options.requeueBurst ?? 100,
      clock: this.#clock,
    });
  }

  /** Ready keys (neither running nor delayed). */
  get depth(): number {
    return this.#ready.length;
  }

  /** Consecutive failures of `key` so far. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Queues `key` now. A no-op while it already waits; deferred while it is being reconciled. */
  add(key: string): void {
    if (this.#stopped) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#ready.push(key);
    this.#reportDepth();
    this.#waiters.shift()?.();
  }

  /** Queues `key` after `ms` (at once if ms <= 0). An earlier pending re-add of the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const due = this.#clock.now() + ms;
    const existing = this.#delayed.get(key);
    if (existing !== undefined) {
      if (existing.due <= due) return;
      existing.timer.cancel();
    }
    const timer = this.#clock.after(ms, () => {
      this.#delayed.delete(key);
      this.add(key);
    });
    this.#delayed.set(key, { due, timer });
  }

  /** Re-adds `key` after `ms`, but no sooner than the requeue token bucket allows. */
  addRateLimited(key: string, ms: number): void {
    this.addAfter(key, Math.max(ms, this.#bucket.reserve()));
  }

  /** Forgets the failure count of `key` (its next failure starts from the base delay again). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /**
   * Runs `concurrency` workers until `signal` aborts, then waits for reconciles in flight and
   * resolves. Keys still waiting are dropped: a new leader (or the next start) lists them again.
   */
  async run(signal: AbortSignal): Promise<void> {
    const onAbort = (): void => {
      this.#stop();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) this.#stop();
    const workers = Array.from({ length: this.#options.concurrency ?? 4 }, () => this.#work());
    const resync = this.#resync(signal);
    await Promise.all([...workers, resync]);
    signal.removeEventListener("abort", onAbort);
  }

  /** Read afresh after an await (type narrowing would assume it unchanged). */
  #isStopped(): boolean {
    return this.#stopped;
  }

  #stop(): void {
    this.#stopped = true;
    for (const { timer } of this.#delayed.values()) timer.cancel();
    this.#delayed.clear();
    this.#ready = [];
    this.#queued.clear();
    this.#dirty.clear();
    this.#reportDepth();
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #resync(signal: AbortSignal): Promise<void> {
    const every = this.#options.resyncMs ?? 0;
    const keys = this.#options.resyncKeys;
    if (every <= 0 || keys === undefined) return;
    while (!this.#stopped) {
      await sleep(this.#clock, every, signal);
      if (this.#isStopped()) return;
      for (const key of keys()) this.add(key);
    }
  }

  async #next(): Promise<string | undefined> {
    while (!this.#stopped) {
      const key = this.#ready.shift();
      if (key !== undefined) {
        this.#queued.delete(key);
        this.#processing.add(key);
        this.#reportDepth();
        return key;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return undefined;
  }

  async #work(): Promise<void> {
    for (let key = await this.#next(); key !== undefined; key = await this.#next()) {
      await this.#process(key);
    }
  }

  async #process(key: string): Promise<void> {
    const started = this.#clock.now();
    const report = this.#options.onResult;
    try {
      const result = await this.#options.handler(key);
      this.#failures.delete(key);
      const requeueAfterMs = result?.requeueAfterMs;
      report?.({
        key,
        outcome: requeueAfterMs === undefined ? "success" : "requeue",
        durationMs: this.#clock.now() - started,
      });
      this.#done(key);
      if (requeueAfterMs !== undefined) this.addRateLimited(key, requeueAfterMs);
    } catch (error) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      report?.({ key, outcome: "error", durationMs: this.#clock.now() - started, error });
      this.#done(key);
      this.addRateLimited(
        key,
        backoffMs(failures, {
          baseMs: this.#options.baseBackoffMs ?? 100,
          maxMs: this.#options.maxBackoffMs ?? 300_000,
          random: this.#random,
        }),
      );
    }
  }

  #done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  #reportDepth(): void {
    this.#options.onDepth?.(this.#ready.length);
  }
}
