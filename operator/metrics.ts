// The operator's metrics: the controller's (reconcile counts and durations, queue depth, leader;
// controller/metrics.ts) and the pools' figures, on one Registry. Pool series are labelled by
// namespace and pool name only (bounded: one per Sender plus the shared pools). In a cluster the
// Registry outlives each term as leader, so a standby serves the same series (leader 0).
import { Gauge, Registry } from "prom-client";
import { registerProcessMetrics } from "#runtime";
import { createControllerMetrics, ReconcileResults } from "./controller/metrics.ts";
import type { ControllerMetrics } from "./controller/metrics.ts";
import { WorkKeys } from "./reconcilers/index.ts";

export interface OperatorMetrics extends ControllerMetrics {
  registry: Registry;
  poolReplicas: Gauge<"namespace" | "pool">;
  poolLag: Gauge<"namespace" | "pool">;
}

/** A Registry with the process metrics and every operator metric, each known label set at 0. */
export function createOperatorMetrics(): OperatorMetrics {
  const target = new Registry();
  registerProcessMetrics(target, "operator");
  const controller = createControllerMetrics(target);
  // Work keys beyond the resource kinds (createControllerMetrics starts those).
  for (const kind of [WorkKeys.apiKeys, WorkKeys.sharedPools]) {
    for (const result of Object.values(ReconcileResults)) controller.reconciles.inc({ kind, result }, 0);
  }
  return {
    ...controller,
    registry: target,
    poolReplicas: new Gauge({
      name: "relais_pool_replicas",
      help: "Replicas of the pool: as the autoscaler set them, or as found when KEDA scales it.",
      labelNames: ["namespace", "pool"],
      registers: [target],
    }),
    poolLag: new Gauge({
      name: "relais_pool_lag_messages",
      help: "Messages pending or unacknowledged on the pool's JetStream consumer.",
      labelNames: ["namespace", "pool"],
      registers: [target],
    }),
  };
}
