// The front door of operator/: the reconcilers, the autoscaler, the seams and local mode.
export { runOperator } from "./main.ts";
export { Autoscaler } from "./autoscaler/autoscaler.ts";
export { decide, recommend } from "./autoscaler/decide.ts";
export { scaleTargets } from "./autoscaler/targets.ts";
export { createOperatorMetrics } from "./metrics.ts";
export { createWorkQueue } from "./queue.ts";
export { API_KEY_LABEL, deliverPool, FINALIZER, reconcile, WorkKeys } from "./reconcilers/index.ts";
export { FolderSource, loadManifests } from "./sources/folder.ts";
export { ProcessPoolRunner } from "./pools/process.ts";
export { keyString, ResourceKinds } from "./types.ts";

export type { OperatorOptions } from "./main.ts";
export type { PoolFigures } from "./autoscaler/autoscaler.ts";
export type { Recommendation, ScaleDecision, ScaleInput, ScalePolicy } from "./autoscaler/decide.ts";
export type { ScaleTarget, ScaleTargets } from "./autoscaler/targets.ts";
export type { OperatorMetrics } from "./metrics.ts";
export type { QueueOptions, WorkQueue, WorkResult } from "./queue.ts";
export type { ReconcileDeps, ReconcileResult, SharedPoolsConfig, SharedPoolSize } from "./reconcilers/index.ts";
export type { FolderSourceOptions, LoadedManifests, ManifestProblem, SecretManifest } from "./sources/folder.ts";
export type { ProcessPoolOptions } from "./pools/process.ts";
export type {
  EventRecord,
  ObjectKey,
  PoolKind,
  PoolRef,
  PoolRunner,
  PoolSpec,
  PoolState,
  ResourceKind,
  ResourceSource,
  SecretObject,
  StatusUpdate,
} from "./types.ts";
export { runLocal, LOCAL_NAMESPACE } from "./local/run.ts";
export { demoEvents, demoProfiles, expectedReminders } from "./local/demo.ts";
export type { LocalOptions, LocalServices } from "./local/run.ts";
