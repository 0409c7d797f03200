// The shared pools: one ingest pool (the HTTP API) and one engage pool (automations and
// campaigns of every namespace), sized from the operator's configuration. The engage pool's
// consumer lag is watched too, for its figures; its size stays fixed unless min < max.
import { ConsumerNames, Streams } from "#runtime";
import type { PoolSpec } from "../types.ts";
import { done } from "./types.ts";
import type { ReconcileDeps, ReconcileResult } from "./types.ts";

export interface SharedPoolSize {
  minReplicas: number;
  maxReplicas: number;
  targetLagPerReplica: number;
}

export interface SharedPoolsConfig {
  /** Where the shared pools live (the operator's own namespace in a cluster). */
  namespace: string;
  ingest: SharedPoolSize & { env: Record<string, string> };
  engage: SharedPoolSize & { env: Record<string, string> };
}

function spec(config: SharedPoolsConfig, kind: "ingest" | "engage"): PoolSpec {
  const pool = config[kind];
  return {
    namespace: config.namespace,
    name: kind,
    kind,
    env: pool.env,
    secretRefs: [],
    minReplicas: pool.minReplicas,
    maxReplicas: pool.maxReplicas,
    targetLagPerReplica: pool.targetLagPerReplica,
    configHash: "",
  };
}

export async function reconcileSharedPools(config: SharedPoolsConfig, deps: ReconcileDeps): Promise<ReconcileResult> {
  const ingest = spec(config, "ingest");
  const engage = spec(config, "engage");
  await deps.pools.apply(ingest);
  await deps.pools.apply(engage);
  deps.scaling.set({
    pool: engage,
    stream: Streams.events,
    consumer: ConsumerNames.engage,
    policy: {
      minReplicas: config.engage.minReplicas,
      maxReplicas: config.engage.maxReplicas,
      targetLagPerReplica: config.engage.targetLagPerReplica,
      stabilizationWindowMs: deps.stabilizationWindowMs,
    },
  });
  return done;
}
