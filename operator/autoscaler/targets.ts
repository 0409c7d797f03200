// The pools the autoscaler watches: each with the JetStream consumer whose lag drives it and its
// policy. Reconcilers set and remove entries; the autoscaler reads them every round.
import type { PoolRef } from "../types.ts";
import type { ScalePolicy } from "./decide.ts";

export interface ScaleTarget {
  pool: PoolRef;
  stream: string;
  consumer: string;
  policy: ScalePolicy;
}

export interface ScaleTargets {
  set(target: ScaleTarget): void;
  remove(pool: PoolRef): void;
  all(): ScaleTarget[];
}

const id = (pool: PoolRef): string => `${pool.namespace}/${pool.name}`;

export function scaleTargets(): ScaleTargets {
  const targets = new Map<string, ScaleTarget>();
  return {
    set(target) {
      targets.set(id(target.pool), target);
    },
    remove(pool) {
      targets.delete(id(pool));
    },
    all: () => [...targets.values()],
  };
}
