// The engage process's configuration: RELAIS_* environment variables, parsed once.
import { z } from "zod";
import { parseConfig } from "#runtime";

export const engageConfigSchema = z.strictObject({
  natsUrl: z.string().default("nats://127.0.0.1:4222"),
  redisUrl: z.string().default("redis://127.0.0.1:6379"),
  /** Where /metrics, /healthz and /readyz listen. */
  host: z.string().default("0.0.0.0"),
  port: z.coerce.number().int().min(0).max(65535).default(9091),
  /** How often due timers are looked for; they fire within this of their due time. */
  timerIntervalMs: z.coerce.number().int().min(10).max(1000).default(200),
  /** How often each campaign is looked at for a due or resumable run. */
  campaignTickMs: z.coerce.number().int().min(10).max(60_000).default(1000),
  /** Profiles a campaign planner reads, decides and publishes together. */
  campaignChunkSize: z.coerce.number().int().min(1).max(10_000).default(1000),
  /** Runs whose report is kept per campaign. */
  campaignRunsKept: z.coerce.number().int().min(1).max(1000).default(20),
  /** How long a dead replica's campaign run waits before another replica resumes it. */
  campaignLeaseMs: z.coerce.number().int().min(300).max(600_000).default(15_000),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type EngageConfig = z.output<typeof engageConfigSchema>;

export function loadEngageConfig(env: Record<string, string | undefined>): Readonly<EngageConfig> {
  return parseConfig(engageConfigSchema, env);
}
