// The front door of operator/: the seams (ResourceSource, PoolRunner), the reconcilers, the
// autoscaler and local mode, the controller machinery (informer, work queue, leader election,
// metrics) and their Kubernetes implementations.
export { ResourceKinds, keyString } from "./types.ts";
export { loadOperatorConfig, operatorConfigSchema } from "./config.ts";
export { ManualClock, sleep, systemClock } from "./controller/clock.ts";
export { Informer, objectKey } from "./controller/informer.ts";
export {
  ContentTypes,
  KubeApiError,
  METADATA_ONLY_LIST,
  apiVersionOf,
  createKubeClient,
  isNotFound,
  resourcePath,
} from "./controller/kube.ts";
export { LeaderElector, leaseType } from "./controller/lease.ts";
export { ReconcileResults, createControllerMetrics, queueMetricsHooks } from "./controller/metrics.ts";
export { TokenBucket, WorkQueue, backoffMs } from "./controller/workqueue.ts";
export {
  KubernetesSource,
  REPORTING_CONTROLLER,
  ResourceInvalidError,
  eventType,
  resourceTypes,
  secretType,
} from "./sources/kubernetes.ts";
export {
  CONFIG_HASH_ANNOTATION,
  DeploymentRunner,
  FIELD_MANAGER,
  Labels,
  SECRETS_DIR,
  deploymentType,
  objectName,
  pdbType,
  podMonitorType,
  serviceType,
  tokenSecretName,
} from "./pools/deployment.ts";
export { DEFAULT_TARGET_LAG_PER_REPLICA, poolConsumer, scaledObject, scaledObjectType } from "./pools/keda.ts";
export { clusterRules, namespaceRules } from "./rbac.ts";

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
export type { OperatorConfig, PoolResources } from "./config.ts";
export type { Clock, TimerHandle } from "./controller/clock.ts";
export type { InformerEvent, InformerEventType, InformerOptions, InformerStats } from "./controller/informer.ts";
export type {
  KubeClient,
  KubeList,
  KubeObject,
  KubeRequest,
  ObjectMeta,
  OwnerReference,
  ResourceType,
} from "./controller/kube.ts";
export type { LeaderElectorOptions } from "./controller/lease.ts";
export type { ControllerMetrics, ReconcileResult } from "./controller/metrics.ts";
export type { HandlerResult, WorkQueueOptions } from "./controller/workqueue.ts";
export type { KubernetesSourceOptions } from "./sources/kubernetes.ts";
export type { DeploymentRunnerConfig, DeploymentRunnerOptions } from "./pools/deployment.ts";
export type { ScaledObjectOptions } from "./pools/keda.ts";
export type { PolicyRule } from "./rbac.ts";
export { runOperator } from "./main.ts";
export { clusterClient, deliverEnv, runClusterOperator, sharedPools } from "./cluster.ts";
export { Autoscaler } from "./autoscaler/autoscaler.ts";
export { decide, recommend } from "./autoscaler/decide.ts";
export { scaleTargets } from "./autoscaler/targets.ts";
export { createOperatorMetrics } from "./metrics.ts";
export { createWorkQueue } from "./queue.ts";
export { API_KEY_LABEL, deliverPool, FINALIZER, reconcile, WorkKeys } from "./reconcilers/index.ts";
export { FolderSource, loadManifests } from "./sources/folder.ts";
export { ProcessPoolRunner } from "./pools/process.ts";

export type { OperatorOptions } from "./main.ts";
export type { PoolFigures } from "./autoscaler/autoscaler.ts";
export type { Recommendation, ScaleDecision, ScaleInput, ScalePolicy } from "./autoscaler/decide.ts";
export type { ScaleTarget, ScaleTargets } from "./autoscaler/targets.ts";
export type { OperatorMetrics } from "./metrics.ts";
export type { QueueOptions, WorkQueue as KeyQueue, WorkResult } from "./queue.ts";
export type {
  ReconcileDeps,
  ReconcileResult as ReconcileOutcome,
  SharedPoolsConfig,
  SharedPoolSize,
} from "./reconcilers/index.ts";
export type { FolderSourceOptions, LoadedManifests, ManifestProblem, SecretManifest } from "./sources/folder.ts";
export type { ProcessPoolOptions } from "./pools/process.ts";
export { runLocal, LOCAL_NAMESPACE } from "./local/run.ts";
export { demoEvents, demoProfiles, expectedReminders } from "./local/demo.ts";
export type { LocalOptions, LocalServices } from "./local/run.ts";
