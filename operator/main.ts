// runOperator: watches feed a keyed work queue, the queue feeds the reconcilers, the autoscaler
// and a resync timer run beside them. The same wiring serves a cluster (Kubernetes source,
// Deployment pools) and local mode (folder source, process pools).
import { jetstreamManager } from "@nats-io/jetstream";
import type { Redis } from "ioredis";
import type { NatsConnection } from "@nats-io/transport-node";
import type { SenderSpec } from "#crds";
import { ensureStreams, openConfigBucket, startOpsServer } from "#runtime";
import type { Logger } from "#runtime";
import { Autoscaler } from "./autoscaler/autoscaler.ts";
import { scaleTargets } from "./autoscaler/targets.ts";
import { createOperatorMetrics } from "./metrics.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { createWorkQueue } from "./queue.ts";
import type { WorkQueue } from "./queue.ts";
import { parseWorkKey, reconcile, WorkKeys } from "./reconcilers/index.ts";
import type { ReconcileDeps, SharedPoolsConfig } from "./reconcilers/index.ts";
import { keyString, ResourceKinds } from "./types.ts";
import type { PoolRunner, ResourceSource } from "./types.ts";

export interface OperatorOptions {
  source: ResourceSource;
  pools: PoolRunner;
  nc: NatsConnection;
  log: Logger;
  /** RELAIS_* settings of every deliver pool (NATS, Redis, token secret, public URL, CA file). */
  deliverEnv: Record<string, string>;
  /** The shared ingest and engage pools; none when they run elsewhere. */
  shared?: SharedPoolsConfig;
  /** Only these namespaces' API keys are managed; all when absent. */
  namespaces?: readonly string[];
  /** Local mode: where every Sender's email goes instead (a local SMTP sink). */
  senderOverride?: (spec: SenderSpec) => SenderSpec;
  autoscaleIntervalMs?: number;
  stabilizationWindowMs?: number;
  /** Status figures (replicas, lag) and a full resync, on this timer rather than per message. */
  statusIntervalMs?: number;
  /** Where /metrics, /healthz, /readyz listen; none without (a caller serving `metrics` itself). */
  ops?: { host: string; port: number; onListening?: (url: string) => void };
  /** Where the workers keep status figures (counters, campaign runs, pauses); none: no figures. */
  redis?: Redis;
  /**
   * Metrics created by the caller, which outlive this run (a standby keeps serving them); a new
   * set when absent, and then this operator is the only one (relais_operator_leader 1).
   */
  metrics?: OperatorMetrics;
  /** False when something else scales the pools (KEDA): lag is still read, for status. */
  scalePools?: boolean;
  /** Replaces the built-in queue (the controller's rate-limited queue in a cluster). */
  queue?: WorkQueue;
  now?: () => Date;
}

const defaults = { autoscaleIntervalMs: 2000, stabilizationWindowMs: 60_000, statusIntervalMs: 10_000 } as const;

async function enqueueAll(source: ResourceSource, queue: WorkQueue): Promise<void> {
  for (const kind of ResourceKinds) {
    for (const resource of await source.list(kind)) {
      queue.add(keyString({ kind, namespace: resource.metadata.namespace ?? "default", name: resource.metadata.name }));
    }
  }
  queue.add(WorkKeys.apiKeys);
  queue.add(WorkKeys.sharedPools);
}

/** Campaigns and Automations naming this Sender: their checks depend on it. */
async function enqueueDependents(
  source: ResourceSource,
  queue: WorkQueue,
  namespace: string,
  sender: string,
): Promise<void> {
  for (const kind of ["Campaign", "Automation"] as const) {
    for (const resource of await source.list(kind)) {
      if (resource.kind !== "Campaign" && resource.kind !== "Automation") continue;
      if (resource.spec.senderRef.name !== sender) continue;
      if ((resource.metadata.namespace ?? "default") === namespace) {
        queue.add(keyString({ kind, namespace, name: resource.metadata.name }));
      }
    }
  }
}

async function enqueueSenders(source: ResourceSource, queue: WorkQueue, namespace: string): Promise<void> {
  for (const sender of await source.list("Sender")) {
    if ((sender.metadata.namespace ?? "default") === namespace) {
      queue.add(keyString({ kind: "Sender", namespace, name: sender.metadata.name }));
    }
  }
}

function every(ms: number, signal: AbortSignal, tick: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => void tick(), ms);
    signal.addEventListener(
      "abort",
      () => {
        clearInterval(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** The reconcilers' optional inputs, set only when given (exactOptionalPropertyTypes). */
function optionalDeps(options: OperatorOptions): Partial<ReconcileDeps> {
  return {
    ...(options.senderOverride !== undefined && { senderOverride: options.senderOverride }),
    ...(options.namespaces !== undefined && { namespaces: options.namespaces }),
    ...(options.redis !== undefined && { redis: options.redis }),
  };
}

/** Serves until `signal` aborts; then stops the watches, lets running reconciles finish, resolves. */
export async function runOperator(options: OperatorOptions, signal: AbortSignal): Promise<void> {
  const { source, log } = options;
  const settings = { ...defaults, ...options };
  const jsm = await jetstreamManager(options.nc);
  await ensureStreams(jsm);
  const kv = await openConfigBucket(options.nc);
  const metrics = options.metrics ?? createOperatorMetrics();
  if (options.metrics === undefined) metrics.leader.set(1);
  const targets = scaleTargets();
  const autoscaler = new Autoscaler({
    jsm,
    pools: options.pools,
    targets,
    metrics,
    log,
    intervalMs: settings.autoscaleIntervalMs,
    scale: options.scalePools ?? true,
  });
  const deps: ReconcileDeps = {
    source,
    pools: options.pools,
    kv,
    jsm,
    scaling: targets,
    log,
    now: options.now ?? (() => new Date()),
    deliverEnv: options.deliverEnv,
    stabilizationWindowMs: settings.stabilizationWindowMs,
    poolLag: (pool) => autoscaler.figures(pool)?.lag,
    ...optionalDeps(options),
  };
  const queue =
    options.queue ??
    createWorkQueue({
      concurrency: 16,
      baseBackoffMs: 500,
      maxBackoffMs: 60_000,
      onError: (key, error) => {
        log.warn({ err: error, key }, "reconcile failed, retrying");
      },
      onDepth: (depth) => {
        metrics.queueDepth.set(depth);
      },
    });
  const ops =
    options.ops === undefined
      ? undefined
      : await startOpsServer({ registry: metrics.registry, isReady: () => !signal.aborted, ...options.ops });
  if (ops !== undefined) options.ops?.onListening?.(ops.url);

  const handler = async (key: string) => {
    const kind = parseWorkKey(key)?.kind ?? key;
    const stopTimer = metrics.reconcileDuration.startTimer({ kind });
    try {
      const result = await reconcile(key, deps, options.shared);
      metrics.reconciles.inc({ kind, result: result.kind === "done" ? "success" : "requeue" });
      return result;
    } catch (error) {
      metrics.reconciles.inc({ kind, result: "error" });
      throw error;
    } finally {
      stopTimer();
    }
  };
  const onResource = (key: { kind: string; namespace: string; name: string }): void => {
    queue.add(`${key.kind}/${key.namespace}/${key.name}`);
    if (key.kind === "Sender") void enqueueDependents(source, queue, key.namespace, key.name);
  };
  const onSecret = (namespace: string): void => {
    queue.add(WorkKeys.apiKeys);
    void enqueueSenders(source, queue, namespace);
  };
  const quiet = (task: Promise<void>, what: string): Promise<void> =>
    task.catch((error: unknown) => {
      log.error({ err: error }, `${what} ended`);
    });
  log.info("operator started");
  await enqueueAll(source, queue);
  await Promise.all([
    ...ResourceKinds.map((kind) => quiet(source.watch(kind, onResource, signal), `${kind} watch`)),
    quiet(source.watchSecrets(onSecret, signal), "secret watch"),
    quiet(
      options.pools.watch?.((owner) => {
        queue.add(keyString(owner));
      }, signal) ?? Promise.resolve(),
      "pool watch",
    ),
    queue.run(handler, signal),
    autoscaler.run(signal),
    every(settings.statusIntervalMs, signal, () => enqueueAll(source, queue).catch(() => undefined)),
  ]);
  await ops?.close();
  // Figures of pools this replica no longer scales would go stale (a standby reports none).
  metrics.poolReplicas.reset();
  metrics.poolLag.reset();
  metrics.queueDepth.set(0);
  log.info("operator stopped");
}
