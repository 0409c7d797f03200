// The seams of the operator (docs/architecture.md): where resources come from (the Kubernetes API
// or a folder of manifests) and where pools run (Deployments or child processes). Reconcilers and
// the autoscaler see only these interfaces, so the same code runs in a cluster and in local mode.
import type { Condition, RelaisResource } from "#crds";

export type ResourceKind = RelaisResource["kind"];
export const ResourceKinds: readonly ResourceKind[] = ["Sender", "Campaign", "Automation", "SendPolicy"];

/** Names one resource; the work queue's key. */
export interface ObjectKey {
  kind: ResourceKind;
  namespace: string;
  name: string;
}

export function keyString(key: ObjectKey): string {
  return `${key.kind}/${key.namespace}/${key.name}`;
}

/** What a reconciler writes to `.status`: conditions always, plus the kind's own figures. */
export interface StatusUpdate {
  observedGeneration: number;
  conditions: Condition[];
  [field: string]: unknown;
}

export interface EventRecord {
  type: "Normal" | "Warning";
  /** CamelCase, from ConditionReasons where one fits. */
  reason: string;
  message: string;
}

/**
 * Where resources come from. Level-triggered: `watch` only says which key changed; the reconciler
 * reads the current state with `get` and converges to it, so a missed or repeated notification
 * costs nothing.
 */
export interface ResourceSource {
  list(kind: ResourceKind): Promise<RelaisResource[]>;
  /** The resource as it is now; undefined once it is gone (finalizers done). */
  get(key: ObjectKey): Promise<RelaisResource | undefined>;
  /** Calls onChange for every add, update or delete until the signal aborts. */
  watch(kind: ResourceKind, onChange: (key: ObjectKey) => void, signal: AbortSignal): Promise<void>;
  writeStatus(key: ObjectKey, status: StatusUpdate): Promise<void>;
  addFinalizer(key: ObjectKey, finalizer: string): Promise<void>;
  removeFinalizer(key: ObjectKey, finalizer: string): Promise<void>;
  recordEvent(key: ObjectKey, event: EventRecord): Promise<void>;
  /** A Secret's data, decoded; undefined when it does not exist. Values never reach logs or status. */
  readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** Every Secret labelled `label: value`, decoded (API-key Secrets: relais.dev/api-key=true). */
  listSecrets(label: string, value: string): Promise<SecretObject[]>;
  /** Calls onChange with the namespace and name of every Secret that changes. */
  watchSecrets(onChange: (namespace: string, name: string) => void, signal: AbortSignal): Promise<void>;
}

export interface SecretObject {
  namespace: string;
  name: string;
  data: Record<string, string>;
}

export type PoolKind = "ingest" | "engage" | "deliver";

export interface PoolRef {
  namespace: string;
  /** `deliver-<sender>`, `ingest` or `engage`. */
  name: string;
}

/** One pool as the reconcilers want it; the runner makes it so (idempotently). */
export interface PoolSpec extends PoolRef {
  kind: PoolKind;
  /** RELAIS_* settings the pool's processes get. No secret values: those go in secretRefs. */
  env: Record<string, string>;
  /** Secrets the pool mounts (Kubernetes) or reads from the environment (local mode). */
  secretRefs: string[];
  /** The resource that owns the pool (deleting it removes the pool); none for shared pools. */
  owner?: ObjectKey & { uid?: string };
  minReplicas: number;
  maxReplicas: number;
  /** Rolls the pool when it changes (a Sender edit). */
  configHash: string;
  /** Queued messages one replica should have (a Sender's pool.targetLagPerReplica); KEDA's lagThreshold. */
  targetLagPerReplica?: number;
}

export interface PoolState {
  desiredReplicas: number;
  readyReplicas: number;
}

/** Where pools run. */
export interface PoolRunner {
  apply(spec: PoolSpec): Promise<void>;
  scale(pool: PoolRef, replicas: number): Promise<void>;
  state(pool: PoolRef): Promise<PoolState | undefined>;
  delete(pool: PoolRef): Promise<void>;
  /**
   * Optional: names the owning resource of a pool whose size or ready replicas changed, until
   * `signal` aborts, so the owner's status follows its pods without waiting for the resync.
   */
  watch?(onChange: (owner: ObjectKey) => void, signal: AbortSignal): Promise<void>;
}
