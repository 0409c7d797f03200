// Every few seconds: read each watched pool's consumer lag from JetStream, decide, and scale
// through the PoolRunner. One slow or missing consumer never stops the others' round.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { Logger } from "#runtime";
import type { OperatorMetrics } from "../metrics.ts";
import type { PoolRef, PoolRunner } from "../types.ts";
import { decide } from "./decide.ts";
import type { Recommendation } from "./decide.ts";
import type { ScaleTarget, ScaleTargets } from "./targets.ts";
import { delay } from "#runtime";

export interface AutoscalerOptions {
  jsm: JetStreamManager;
  pools: PoolRunner;
  targets: ScaleTargets;
  metrics: OperatorMetrics;
  log: Logger;
  intervalMs: number;
  /** False: read lag and report figures, never scale (KEDA scales the pools). Default true. */
  scale?: boolean;
  now?: () => number;
}

export interface PoolFigures {
  pool: PoolRef;
  lag: number;
  replicas: number;
}

export class Autoscaler {
  readonly #options: AutoscalerOptions;
  readonly #history = new Map<string, Recommendation[]>();
  readonly #figures = new Map<string, PoolFigures>();

  constructor(options: AutoscalerOptions) {
    this.#options = options;
  }

  /** The last lag and replicas seen for a pool, for status. */
  figures(pool: PoolRef): PoolFigures | undefined {
    return this.#figures.get(`${pool.namespace}/${pool.name}`);
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.round();
      await delay(this.#options.intervalMs, signal);
    }
  }

  /** One pass over every watched pool. */
  async round(): Promise<void> {
    const targets = this.#options.targets.all();
    const seen = new Set(targets.map((target) => `${target.pool.namespace}/${target.pool.name}`));
    for (const [id, figures] of this.#figures) {
      if (seen.has(id)) continue;
      // A deleted pool's series go too, rather than showing its last size forever.
      const labels = { namespace: figures.pool.namespace, pool: figures.pool.name };
      this.#options.metrics.poolLag.remove(labels);
      this.#options.metrics.poolReplicas.remove(labels);
      this.#history.delete(id);
      this.#figures.delete(id);
    }
    await Promise.all(
      targets.map(async (target) => {
        await this.#scaleOne(target).catch((error: unknown) => {
          this.#options.log.warn(
            { err: error, pool: target.pool.name, namespace: target.pool.namespace },
            "autoscale failed",
          );
        });
      }),
    );
  }

  async #lag(target: ScaleTarget): Promise<number> {
    try {
      const info = await this.#options.jsm.consumers.info(target.stream, target.consumer);
      return info.num_pending + info.num_ack_pending;
    } catch {
      // No consumer yet: nothing queued for it.
      return 0;
    }
  }

  async #scaleOne(target: ScaleTarget): Promise<void> {
    const { pools } = this.#options;
    const id = `${target.pool.namespace}/${target.pool.name}`;
    const [lag, state] = await Promise.all([this.#lag(target), pools.state(target.pool)]);
    if (state === undefined) return;
    if (this.#options.scale === false) {
      this.#report(target.pool, lag, state.desiredReplicas);
      return;
    }
    const decision = decide({
      policy: target.policy,
      lag,
      current: state.desiredReplicas,
      history: this.#history.get(id) ?? [],
      now: (this.#options.now ?? Date.now)(),
    });
    this.#history.set(id, decision.history);
    if (decision.replicas !== state.desiredReplicas) {
      this.#options.log.info(
        {
          namespace: target.pool.namespace,
          pool: target.pool.name,
          lag,
          from: state.desiredReplicas,
          to: decision.replicas,
        },
        "scaling pool",
      );
      await pools.scale(target.pool, decision.replicas);
    }
    this.#report(target.pool, lag, decision.replicas);
  }

  #report(pool: PoolRef, lag: number, replicas: number): void {
    const labels = { namespace: pool.namespace, pool: pool.name };
    this.#options.metrics.poolLag.set(labels, lag);
    this.#options.metrics.poolReplicas.set(labels, replicas);
    this.#figures.set(`${pool.namespace}/${pool.name}`, { pool, lag, replicas });
  }
}
