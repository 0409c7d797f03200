// Conditions per Kubernetes API conventions: lastTransitionTime moves only when the status does,
// so writing the same observation twice changes nothing.
import type { Condition, ConditionReason, ConditionType } from "#crds";

export interface Observation {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: ConditionReason;
  message: string;
}

export function setConditions(
  previous: readonly Condition[] | undefined,
  observations: readonly Observation[],
  options: { generation: number; now: Date },
): Condition[] {
  return observations.map((observation) => {
    const before = previous?.find((condition) => condition.type === observation.type);
    const lastTransitionTime =
      before !== undefined && before.status === observation.status
        ? before.lastTransitionTime
        : options.now.toISOString();
    return { ...observation, observedGeneration: options.generation, lastTransitionTime };
  });
}

/** True when `next` says something `previous` did not (times aside), so a status write is due. */
export function statusChanged(previous: unknown, next: Record<string, unknown>): boolean {
  return JSON.stringify(previous ?? {}) !== JSON.stringify(next);
}
