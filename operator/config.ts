// The operator's configuration: RELAIS_* environment variables, parsed once (docs/configuration.md).
import { hostname } from "node:os";
import { z } from "zod";
import { ConfigError, jsonString, parseConfig } from "#runtime";

const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, {
  error: "must be a Kubernetes quantity such as 100m or 256Mi",
});

const resourcesSchema = z.strictObject({
  requests: z.strictObject({ cpu: quantity.optional(), memory: quantity.optional() }).default({}),
  limits: z.strictObject({ cpu: quantity.optional(), memory: quantity.optional() }).default({}),
});
export type PoolResources = z.output<typeof resourcesSchema>;

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: "must be a Kubernetes namespace name" });

export const operatorConfigSchema = z.strictObject({
  /** A kubeconfig file; in a pod the ServiceAccount is used when absent. */
  kubeconfig: z.string().optional(),
  /** Where /metrics, /healthz and /readyz listen. */
  host: z.string().default("0.0.0.0"),
  port: z.coerce.number().int().min(0).max(65535).default(9092),
  /** NATS and Redis as the pools reach them (passed to every pool). */
  natsUrl: z.string().default("nats://127.0.0.1:4222"),
  redisUrl: z.string().default("redis://127.0.0.1:6379"),
  /** The one image every pool runs; its command selects the pool. */
  image: z.string().min(1).default("ghcr.io/relais-dev/relais:0.1.0"),
  imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"),
  /** Namespace of the operator's Lease and of the shared ingest and engage pools. */
  namespace: dnsLabel.default("relais-system"),
  /** Namespaces whose resources are reconciled, comma-separated; empty: every namespace. */
  watchNamespaces: z
    .string()
    .transform((text) =>
      text
        .split(",")
        .map((part) => part.trim())
        .filter((part) => part !== ""),
    )
    .pipe(z.array(dnsLabel))
    .default([]),
  leaseName: z.string().min(1).max(253).default("relais-operator"),
  leaseDurationMs: z.coerce.number().int().min(1000).default(15_000),
  leaseRenewDeadlineMs: z.coerce.number().int().min(500).default(10_000),
  leaseRetryPeriodMs: z.coerce.number().int().min(100).default(2_000),
  /** This replica's name in the Lease: the pod name (the hostname in a pod). */
  identity: z
    .string()
    .min(1)
    .default(() => hostname()),
  /** builtin: the operator scales pools on consumer lag; keda: it emits KEDA ScaledObjects instead. */
  autoscaler: z.enum(["builtin", "keda"]).default("builtin"),
  /** host:port of NATS' monitoring endpoint, for KEDA's nats-jetstream trigger. */
  natsMonitoringEndpoint: z.string().min(1).default("nats.relais-system.svc.cluster.local:8222"),
  /** Container resources per pool kind, JSON: {"deliver":{"requests":{"cpu":"100m"}}}. */
  poolResources: jsonString(
    z.strictObject({
      ingest: resourcesSchema.optional(),
      engage: resourcesSchema.optional(),
      deliver: resourcesSchema.optional(),
    }),
  ).default({}),
  /** Signs recipients' links; the operator hands it to the ingest and deliver pools in a Secret. */
  tokenSecret: z.string().min(32, { error: "must be at least 32 characters" }).optional(),
  /** Seconds a pool's pod gets to drain on SIGTERM. */
  terminationGracePeriodSeconds: z.coerce.number().int().min(1).max(3600).default(30),
  /** The shared pools' sizes: ingest serves HTTP (fixed between its bounds), engage scales on lag. */
  ingestMinReplicas: z.coerce.number().int().min(0).max(1000).default(2),
  ingestMaxReplicas: z.coerce.number().int().min(0).max(1000).default(2),
  engageMinReplicas: z.coerce.number().int().min(0).max(1000).default(1),
  engageMaxReplicas: z.coerce.number().int().min(0).max(1000).default(10),
  /** Where recipients reach the ingest API (links, unsubscribe, push subscriptions), given to deliver pools. */
  publicBaseUrl: z.url({ error: "must be a URL such as https://engage.example.com" }).optional(),
  /** How often consumer lag is read and pools scaled (builtin autoscaler). */
  autoscaleIntervalMs: z.coerce.number().int().min(100).default(2000),
  /** A pool scales down only to the highest replica count recommended over this window. */
  stabilizationWindowMs: z.coerce.number().int().min(0).default(60_000),
  /** How often status figures are refreshed and every resource re-reconciled (resync). */
  statusIntervalMs: z.coerce.number().int().min(100).default(60_000),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type OperatorConfig = z.output<typeof operatorConfigSchema>;

export function loadOperatorConfig(env: Record<string, string | undefined>): Readonly<OperatorConfig> {
  const config = parseConfig(operatorConfigSchema, env);
  for (const pool of ["ingest", "engage"] as const) {
    if (config[`${pool}MinReplicas`] > config[`${pool}MaxReplicas`]) {
      const name = pool.toUpperCase();
      throw new ConfigError(`RELAIS_${name}_MIN_REPLICAS: must not exceed RELAIS_${name}_MAX_REPLICAS`);
    }
  }
  if (config.leaseRenewDeadlineMs >= config.leaseDurationMs) {
    throw new ConfigError("RELAIS_LEASE_RENEW_DEADLINE_MS: must be shorter than RELAIS_LEASE_DURATION_MS");
  }
  return config;
}
