// Exactly what the operator may do in a cluster, as RBAC PolicyRules. The Helm chart renders these
// (a ClusterRole from clusterRules, a Role in the operator's namespace from namespaceRules), and
// test/integration/operator-rbac.test.ts runs the operator under a ServiceAccount bound to exactly
// these rules: it can do its work, and it is refused what is not listed.
import { GROUP } from "#crds";

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const kinds = ["senders", "campaigns", "automations", "sendpolicies"];

/** Rules the operator needs in every watched namespace (a ClusterRole). */
export const clusterRules: readonly PolicyRule[] = [
  // Watch the Relais kinds; patch adds and removes finalizers.
  { apiGroups: [GROUP], resources: kinds, verbs: ["get", "list", "watch", "patch", "update"] },
  { apiGroups: [GROUP], resources: kinds.map((kind) => `${kind}/status`), verbs: ["get", "patch", "update"] },
  // Owner references with blockOwnerDeletion need update on the owner's finalizers subresource.
  { apiGroups: [GROUP], resources: kinds.map((kind) => `${kind}/finalizers`), verbs: ["update"] },
  // Secrets: referenced ones are read and watched; each pool gets its link-signing token Secret.
  { apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  { apiGroups: [""], resources: ["services"], verbs: ["get", "create", "patch", "delete"] },
  { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  { apiGroups: ["apps"], resources: ["deployments/scale"], verbs: ["get", "patch", "update"] },
  { apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: ["get", "create", "patch", "delete"] },
  { apiGroups: ["monitoring.coreos.com"], resources: ["podmonitors"], verbs: ["get", "create", "patch", "delete"] },
  { apiGroups: ["keda.sh"], resources: ["scaledobjects"], verbs: ["get", "create", "patch", "delete"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
];

/** Rules the operator needs in its own namespace only (a Role): its leader-election Lease. */
export const namespaceRules: readonly PolicyRule[] = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
];
