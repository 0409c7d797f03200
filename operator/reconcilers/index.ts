// The driver: one work key → the reconciler of its kind. Keys are "Sender/<ns>/<name>" (and the
// same for Campaign and Automation), "ApiKeys" and "SharedPools".
import { keyString } from "../types.ts";
import type { ObjectKey, ResourceKind } from "../types.ts";
import { reconcileApiKeys } from "./api-keys.ts";
import { reconcileMessageResource } from "./message.ts";
import { reconcileSendPolicy } from "./send-policy.ts";
import { reconcileSender } from "./sender.ts";
import { reconcileSharedPools } from "./shared-pools.ts";
import type { SharedPoolsConfig } from "./shared-pools.ts";
import type { ReconcileDeps, ReconcileResult } from "./types.ts";

export const WorkKeys = { apiKeys: "ApiKeys", sharedPools: "SharedPools", of: keyString } as const;

export function parseWorkKey(key: string): ObjectKey | undefined {
  const [kind, namespace, ...rest] = key.split("/");
  if (kind !== "Sender" && kind !== "Campaign" && kind !== "Automation" && kind !== "SendPolicy") return undefined;
  if (namespace === undefined || rest.length === 0) return undefined;
  return { kind: kind satisfies ResourceKind, namespace, name: rest.join("/") };
}

/** Reconciles one key; rejects for a retryable failure (the queue backs off). */
export async function reconcile(
  key: string,
  deps: ReconcileDeps,
  shared: SharedPoolsConfig | undefined,
): Promise<ReconcileResult> {
  if (key === WorkKeys.apiKeys) return reconcileApiKeys(deps);
  if (key === WorkKeys.sharedPools) {
    return shared === undefined ? { kind: "done" } : reconcileSharedPools(shared, deps);
  }
  const object = parseWorkKey(key);
  if (object === undefined) return { kind: "done" };
  switch (object.kind) {
    case "Sender":
      return reconcileSender(object, deps);
    case "SendPolicy":
      return reconcileSendPolicy(object, deps);
    case "Campaign":
    case "Automation":
      return reconcileMessageResource(object, deps);
  }
}

export { API_KEY_LABEL } from "./api-keys.ts";
export { deliverPool } from "./sender.ts";
export { FINALIZER } from "./types.ts";
export type { SharedPoolsConfig, SharedPoolSize } from "./shared-pools.ts";
export type { ReconcileDeps, ReconcileResult } from "./types.ts";
