// Fires due automation instances. Every few hundred milliseconds, for each namespace with
// automations, claim due instances in batches (a lease in Redis: a worker that dies mid-fire is
// replaced once its lease expires), each batch claimed and decided by one script, and send it. Claims overlap the fires of
// earlier batches (up to `concurrency` batches in flight), so a backlog (timers due while no
// process ran) drains at the rate of the batch scripts and the publishes, not of round trips.
// A Runnable; `tick` is exposed for tests that drive time themselves.
import type { Logger, Runnable } from "#runtime";
import type { AutomationEngine } from "./engine.ts";
import { LEASE_MS, LEASE_RENEW_MS } from "./store.ts";
import type { AutomationStore } from "./store.ts";

export interface TimerDeps {
  engine: AutomationEngine;
  store: AutomationStore;
  /** The namespaces to poll (those with automations). */
  namespaces: () => Iterable<string>;
  now: () => number;
  log: Logger;
  intervalMs?: number;
  /** Instances per claim (default 1000, at most 2000: the claim script unpacks them in one call). */
  batchSize?: number;
  /** Claimed batches being fired at once (default 4). */
  concurrency?: number;
  /** Called with the number of instances each claim fired. */
  onFired?: (count: number) => void;
}

export class TimerPoller implements Runnable {
  readonly #deps: TimerDeps;
  /** Batches claimed and not yet sent, by namespace, with their claim time: their leases are renewed. */
  readonly #open = new Map<string, Map<readonly string[], number>>();

  constructor(deps: TimerDeps) {
    this.#deps = deps;
  }

  /** Fires everything due now in every namespace; resolves with how many instances fired. */
  async tick(): Promise<number> {
    // Keep the claims while firing; a worker that dies stops renewing and loses them in seconds.
    const renewal = setInterval(() => {
      this.#renew();
    }, LEASE_RENEW_MS);
    try {
      let fired = 0;
      for (const namespace of this.#deps.namespaces()) fired += await this.#drain(namespace);
      return fired;
    } finally {
      clearInterval(renewal);
    }
  }

  /** Claims and fires batches until a claim comes back short, `concurrency` batches in flight. */
  async #drain(namespace: string): Promise<number> {
    const batch = Math.min(this.#deps.batchSize ?? 1000, 2000);
    const concurrency = this.#deps.concurrency ?? 4;
    const open = new Map<readonly string[], number>();
    this.#open.set(namespace, open);
    const inFlight = new Set<Promise<void>>();
    let fired = 0;
    try {
      for (;;) {
        const { keys, sending } = await this.#deps.engine.fireDue(namespace, batch);
        if (keys.length === 0) break;
        open.set(keys, this.#deps.now());
        const firing = sending
          .then(
            () => undefined,
            (error: unknown) => {
              // The leases lapse and a later claim fires them again: nothing is lost.
              this.#deps.log.warn({ err: error, namespace }, "timer fire failed; retried after its lease");
            },
          )
          .finally(() => {
            open.delete(keys);
            inFlight.delete(firing);
          });
        inFlight.add(firing);
        this.#deps.onFired?.(keys.length);
        fired += keys.length;
        if (keys.length < batch) break;
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    } finally {
      this.#open.delete(namespace);
    }
    return fired;
  }

  /** Renews the batches whose lease could end before the next renewal; most are sent well before. */
  #renew(): void {
    const now = this.#deps.now();
    for (const [namespace, open] of this.#open) {
      const keys = [...open].filter(([, claimedAt]) => now - claimedAt >= LEASE_MS - 2 * LEASE_RENEW_MS);
      if (keys.length === 0) continue;
      for (const [batch] of keys) open.set(batch, now);
      void this.#deps.store
        .renew(
          namespace,
          keys.flatMap(([batch]) => batch),
          now,
        )
        .catch(() => undefined);
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const interval = this.#deps.intervalMs ?? 200;
    while (!signal.aborted) {
      await this.tick().catch((error: unknown) => {
        this.#deps.log.warn({ err: error }, "timer tick failed");
      });
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }
}
