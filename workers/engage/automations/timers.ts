// Fires due automation instances. Every few hundred milliseconds, for each namespace with
// automations, claim due instances in batches (a lease in Redis: a worker that dies mid-fire is
// replaced once its lease expires) and fire them. A Runnable; `tick` is exposed for tests that
// drive time themselves.
import type { Logger, Runnable } from "#runtime";
import type { AutomationEngine } from "./engine.ts";
import { LEASE_RENEW_MS } from "./store.ts";
import type { AutomationStore } from "./store.ts";

export interface TimerDeps {
  engine: AutomationEngine;
  store: AutomationStore;
  /** The namespaces to poll (those with automations). */
  namespaces: () => Iterable<string>;
  now: () => number;
  log: Logger;
  intervalMs?: number;
  batchSize?: number;
  /** Called with the number of instances each claim fired. */
  onFired?: (count: number) => void;
}

export class TimerPoller implements Runnable {
  readonly #deps: TimerDeps;

  constructor(deps: TimerDeps) {
    this.#deps = deps;
  }

  /** Fires everything due now in every namespace; resolves with how many instances fired. */
  async tick(): Promise<number> {
    let fired = 0;
    const batch = this.#deps.batchSize ?? 500;
    for (const namespace of this.#deps.namespaces()) {
      for (;;) {
        const due = await this.#deps.store.claimDue(namespace, this.#deps.now(), batch);
        const open = new Set(due.map((instance) => instance.key));
        // Keep the claims while firing; a worker that dies stops renewing and loses them in seconds.
        const renewal = setInterval(() => {
          void this.#deps.store.renew(namespace, [...open], this.#deps.now()).catch(() => undefined);
        }, LEASE_RENEW_MS);
        try {
          await Promise.all(
            due.map((instance) =>
              this.#deps.engine
                .fire(namespace, instance)
                .catch((error: unknown) => {
                  // The lease lapses and another tick fires it again: nothing is lost.
                  this.#deps.log.warn({ err: error, namespace }, "timer fire failed; retried after its lease");
                })
                .finally(() => open.delete(instance.key)),
            ),
          );
        } finally {
          clearInterval(renewal);
        }
        this.#deps.onFired?.(due.length);
        fired += due.length;
        if (due.length < batch) break;
      }
    }
    return fired;
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
