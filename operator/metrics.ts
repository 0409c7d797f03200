// The operator's metrics, on its own Registry. Pool series are labelled by namespace and pool
// name only (bounded: one per Sender plus the shared pools).
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "#runtime";

export interface OperatorMetrics {
  registry: Registry;
  poolReplicas: Gauge<"namespace" | "pool">;
  poolLag: Gauge<"namespace" | "pool">;
  reconciles: Counter<"kind" | "result">;
  reconcileDuration: Histogram<"kind">;
}

export const ReconcileResults = ["done", "requeue", "error"] as const;

export function createOperatorMetrics(kinds: readonly string[]): OperatorMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry, "operator");
  const metrics: OperatorMetrics = {
    registry,
    poolReplicas: new Gauge({
      name: "relais_pool_replicas",
      help: "Replicas the autoscaler set for the pool.",
      labelNames: ["namespace", "pool"],
      registers: [registry],
    }),
    poolLag: new Gauge({
      name: "relais_pool_lag_messages",
      help: "Messages pending or unacknowledged on the pool's JetStream consumer.",
      labelNames: ["namespace", "pool"],
      registers: [registry],
    }),
    reconciles: new Counter({
      name: "relais_operator_reconciles_total",
      help: "Reconciliations by kind and result.",
      labelNames: ["kind", "result"],
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: "relais_operator_reconcile_duration_seconds",
      help: "Time one reconciliation took.",
      labelNames: ["kind"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
  };
  for (const kind of kinds) {
    for (const result of ReconcileResults) metrics.reconciles.inc({ kind, result }, 0);
  }
  return metrics;
}
