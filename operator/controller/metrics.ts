// The operator's controller metrics, on the operator's Registry. The Helm chart's alerts use these
// exact names: keep them.
import { Counter, Gauge, Histogram } from "prom-client";
import type { Registry } from "prom-client";
import { ResourceKinds } from "../types.ts";

export const ReconcileResults = { success: "success", error: "error", requeue: "requeue" } as const;
export type ReconcileResult = (typeof ReconcileResults)[keyof typeof ReconcileResults];

export interface ControllerMetrics {
  reconciles: Counter<"kind" | "result">;
  reconcileDuration: Histogram<"kind">;
  queueDepth: Gauge;
  leader: Gauge;
}

/** Registers the controller metrics on `registry`, every known label set at 0. */
export function createControllerMetrics(registry: Registry): ControllerMetrics {
  const registers = [registry];
  const reconciles = new Counter({
    name: "relais_operator_reconcile_total",
    help: "Reconciles finished, by kind and result (success, requeue, error).",
    labelNames: ["kind", "result"] as const,
    registers,
  });
  const reconcileDuration = new Histogram({
    name: "relais_operator_reconcile_duration_seconds",
    help: "Time one reconcile took, by kind.",
    labelNames: ["kind"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  for (const kind of ResourceKinds) {
    reconcileDuration.zero({ kind });
    for (const result of Object.values(ReconcileResults)) reconciles.inc({ kind, result }, 0);
  }
  const queueDepth = new Gauge({
    name: "relais_operator_queue_depth",
    help: "Keys waiting in the work queue (ready, not yet being reconciled).",
    registers,
  });
  const leader = new Gauge({
    name: "relais_operator_leader",
    help: "1 while this replica holds the leader Lease, else 0.",
    registers,
  });
  queueDepth.set(0);
  leader.set(0);
  return { reconciles, reconcileDuration, queueDepth, leader };
}

/**
 * The work queue's hooks that feed these metrics. Keys are `<Kind>/<namespace>/<name>`
 * (keyString); the kind label is the key's first part, so its values stay a closed set.
 */
export function queueMetricsHooks(metrics: ControllerMetrics): {
  onDepth: (depth: number) => void;
  onResult: (report: { key: string; outcome: ReconcileResult; durationMs: number }) => void;
} {
  return {
    onDepth: (depth) => {
      metrics.queueDepth.set(depth);
    },
    onResult: ({ key, outcome, durationMs }) => {
      const kind = key.split("/", 1)[0] ?? "";
      metrics.reconciles.inc({ kind, result: outcome });
      metrics.reconcileDuration.observe({ kind }, durationMs / 1000);
    },
  };
}
