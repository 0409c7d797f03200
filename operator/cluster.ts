// `relais operator`: the operator in a cluster. Every replica serves /healthz, /readyz and /metrics
// and stands by for the leader Lease; the one that holds it runs runOperator over the Kubernetes API
// (KubernetesSource) with Deployment pools (DeploymentRunner). The metrics outlive each term as
// leader, so a standby answers its probes and reports relais_operator_leader 0.
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, connectNats, connectRedis, createLogger, startOpsServer } from "#runtime";
import type { Logger } from "#runtime";
import type { Redis } from "ioredis";
import { loadOperatorConfig } from "./config.ts";
import type { OperatorConfig } from "./config.ts";
import { createKubeClient } from "./controller/kube.ts";
import type { KubeClient } from "./controller/kube.ts";
import { sleep, systemClock } from "./controller/clock.ts";
import { LeaderElector } from "./controller/lease.ts";
import { runOperator } from "./main.ts";
import { createOperatorMetrics } from "./metrics.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { DeploymentRunner } from "./pools/deployment.ts";
import { DEFAULT_TARGET_LAG_PER_REPLICA } from "./pools/keda.ts";
import type { SharedPoolsConfig } from "./reconcilers/index.ts";
import { KubernetesSource } from "./sources/kubernetes.ts";

/** The API server from RELAIS_KUBECONFIG when set, else the pod's ServiceAccount. */
export function clusterClient(config: Pick<OperatorConfig, "kubeconfig">): KubeClient {
  const kubeConfig = new KubeConfig();
  if (config.kubeconfig === undefined) kubeConfig.loadFromCluster();
  else kubeConfig.loadFromFile(config.kubeconfig);
  return createKubeClient(kubeConfig);
}

/** RELAIS_* settings every pool needs (token and Secrets reach pods through Secrets, never here). */
function poolEnv(config: OperatorConfig): Record<string, string> {
  return { RELAIS_NATS_URL: config.natsUrl, RELAIS_REDIS_URL: config.redisUrl, RELAIS_LOG_LEVEL: config.logLevel };
}

export function deliverEnv(config: OperatorConfig): Record<string, string> {
  return {
    ...poolEnv(config),
    ...(config.publicBaseUrl !== undefined && { RELAIS_PUBLIC_BASE_URL: config.publicBaseUrl }),
  };
}

/** The ingest and engage pools, in the operator's namespace, sized from its configuration. */
export function sharedPools(config: OperatorConfig): SharedPoolsConfig {
  const env = poolEnv(config);
  return {
    namespace: config.namespace,
    ingest: {
      minReplicas: config.ingestMinReplicas,
      maxReplicas: config.ingestMaxReplicas,
      targetLagPerReplica: DEFAULT_TARGET_LAG_PER_REPLICA,
      env,
    },
    engage: {
      minReplicas: config.engageMinReplicas,
      maxReplicas: config.engageMaxReplicas,
      targetLagPerReplica: DEFAULT_TARGET_LAG_PER_REPLICA,
      env,
    },
  };
}

interface LeadOptions {
  config: OperatorConfig;
  client: KubeClient;
  nc: Awaited<ReturnType<typeof connectNats>>;
  redis: Redis;
  metrics: OperatorMetrics;
  log: Logger;
}

/** A failed run (NATS unreachable at start, say) is retried after this, while still leading. */
const RESTART_DELAY_MS = 2000;

/**
 * One term as leader: a fresh source (its informers live as long as the term) and pool runner.
 * Runs until the term ends: a run that fails is started again, so a leader never holds the Lease
 * idle.
 */
async function lead(options: LeadOptions, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await runOnce(options, signal);
    } catch (error) {
      options.log.error({ err: error }, "operator run failed, restarting");
    }
    await sleep(systemClock, RESTART_DELAY_MS, signal);
  }
}

function runOnce(options: LeadOptions, signal: AbortSignal): Promise<void> {
  const { config, client, log } = options;
  return runOperator(
    {
      source: new KubernetesSource({ client, namespaces: config.watchNamespaces, identity: config.identity, log }),
      pools: new DeploymentRunner({ client, config, namespaces: config.watchNamespaces, log }),
      nc: options.nc,
      redis: options.redis,
      log,
      deliverEnv: deliverEnv(config),
      shared: sharedPools(config),
      ...(config.watchNamespaces.length > 0 && { namespaces: config.watchNamespaces }),
      metrics: options.metrics,
      // With KEDA, its HPA owns the replicas; the operator still reads lag for status.
      scalePools: config.autoscaler === "builtin",
      autoscaleIntervalMs: config.autoscaleIntervalMs,
      stabilizationWindowMs: config.stabilizationWindowMs,
      statusIntervalMs: config.statusIntervalMs,
    },
    signal,
  );
}

/** Serves until `signal` aborts (SIGTERM); then stops leading, releases the Lease, closes. */
export async function runClusterOperator(env: Record<string, string | undefined>, signal: AbortSignal): Promise<void> {
  const config = loadOperatorConfig(env);
  // The ingest and deliver pools refuse to start without it: say so here, once.
  if (config.tokenSecret === undefined) {
    throw new ConfigError("RELAIS_TOKEN_SECRET: required by relais operator (it signs recipients' links)");
  }
  const log = createLogger({ name: "relais-operator", level: config.logLevel });
  const client = clusterClient(config);
  const nc = await connectNats(config.natsUrl, `relais-operator-${config.identity}`);
  // Status figures (automation counters, campaign runs, pauses) are read where the workers keep them.
  const redis = connectRedis(config.redisUrl, `relais-operator-${config.identity}`, (error) => {
    log.warn({ err: error }, "redis connection error");
  });
  const metrics = createOperatorMetrics();
  const ops = await startOpsServer({
    registry: metrics.registry,
    isReady: () => !signal.aborted && !nc.isClosed(),
    host: config.host,
    port: config.port,
  });
  log.info({ url: ops.url, identity: config.identity, lease: config.leaseName }, "operator standing by for the lease");
  const elector = new LeaderElector({
    client,
    namespace: config.namespace,
    name: config.leaseName,
    identity: config.identity,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.leaseRenewDeadlineMs,
    retryPeriodMs: config.leaseRetryPeriodMs,
    lead: (leading) => lead({ config, client, nc, redis, metrics, log }, leading),
    onLeadershipChange: (leading) => {
      metrics.leader.set(leading ? 1 : 0);
    },
    log,
  });
  try {
    await elector.run(signal);
  } finally {
    await ops.close();
    await nc.drain();
    await redis.quit();
    log.info("operator stopped");
  }
}
