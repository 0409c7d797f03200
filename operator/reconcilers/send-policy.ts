// SendPolicy → its config in the KV, where every deliver pool of the namespace reads it (the
// policy stage in workers/deliver/policy). Nothing to compile beyond the schema, so it is Ready
// once published; deleting it removes the KV entry (no finalizer needed: a policy that lingers a
// moment after deletion only holds sends a moment longer).
import { ConditionReasons, ConditionTypes } from "#crds";
import { ConfigKeys } from "#runtime";
import type { ObjectKey } from "../types.ts";
import { setConditions, statusChanged } from "./conditions.ts";
import { policyFigures } from "./figures.ts";
import { putConfig } from "./kv.ts";
import { metaOf } from "./meta.ts";
import { done } from "./types.ts";
import type { ReconcileDeps, ReconcileResult } from "./types.ts";

export async function reconcileSendPolicy(key: ObjectKey, deps: ReconcileDeps): Promise<ReconcileResult> {
  const configKey = ConfigKeys.of(key.namespace, "SendPolicy", key.name);
  const resource = await deps.source.get(key);
  if (resource?.kind !== "SendPolicy") {
    await deps.kv.delete(configKey);
    return done;
  }
  const meta = metaOf(resource);
  await putConfig(deps.kv, configKey, {
    generation: meta.generation,
    ...(resource.metadata.labels !== undefined && { labels: resource.metadata.labels }),
    spec: resource.spec,
  });
  const conditions = setConditions(
    resource.status?.conditions,
    [
      {
        type: ConditionTypes.Ready,
        status: "True",
        reason: ConditionReasons.Reconciled,
        message: resource.spec.freeze
          ? "Published; sends are frozen."
          : "Published to every deliver pool of the namespace.",
      },
    ],
    { generation: meta.generation, now: deps.now() },
  );
  const figures = deps.redis === undefined ? {} : await policyFigures(deps.redis, key.namespace, key.name);
  const next = { ...resource.status, observedGeneration: meta.generation, conditions, ...figures };
  if (statusChanged(resource.status, next)) await deps.source.writeStatus(key, next);
  return done;
}
