// The ingest process's configuration: RELAIS_* environment variables, parsed once.
import { z } from "zod";
import { jsonString, parseConfig } from "#runtime";

const apiKeyEntry = z.strictObject({
  keyId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
  secretSha256: z.string().regex(/^[0-9a-f]{64}$/, { error: "must be the hex SHA-256 of the key's secret" }),
});

export const ingestConfigSchema = z.strictObject({
  natsUrl: z.string().default("nats://127.0.0.1:4222"),
  redisUrl: z.string().default("redis://127.0.0.1:6379"),
  host: z.string().default("0.0.0.0"),
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  /** API keys of local mode: [{keyId, namespace, secretSha256}]. The operator supplies them in a cluster. */
  apiKeys: jsonString(z.array(apiKeyEntry)).default([]),
  /** Signs and verifies recipients' links; shared with the deliver pools. */
  tokenSecret: z.string().min(32, { error: "must be at least 32 characters" }),
  rateLimitPerSecond: z.coerce.number().positive().default(1000),
  rateLimitBurst: z.coerce.number().positive().default(2000),
  /** Inactive profiles are deleted after this many days, per namespace: {"shop": 365}. */
  retentionDays: jsonString(z.record(z.string(), z.number().positive())).default({}),
  purgeIntervalMs: z.coerce.number().int().positive().default(60_000),
  purgeBatchSize: z.coerce.number().int().positive().max(10_000).default(500),
  shutdownTimeoutMs: z.coerce.number().int().positive().default(10_000),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type IngestConfig = z.output<typeof ingestConfigSchema>;

export function loadIngestConfig(env: Record<string, string | undefined>): Readonly<IngestConfig> {
  return parseConfig(ingestConfigSchema, env);
}
