// `relais local`'s configuration: RELAIS_* environment variables, parsed once.
import { z } from "zod";
import { parseConfig } from "#runtime";

const flag = z.enum(["true", "false"]).transform((value) => value === "true");

export const localConfigSchema = z.strictObject({
  /** The ingest API's port; a free one is used when it is taken. */
  ingestPort: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The operator's /metrics, /healthz, /readyz; a free one is used when it is taken. */
  operatorPort: z.coerce.number().int().min(0).max(65535).default(9400),
  /** Load demo profiles and events once the pools are up. */
  demo: flag.default(true),
  demoProfiles: z.coerce.number().int().min(1).max(10_000).default(50),
  /** Signs recipients' links; a random one per run when unset. */
  tokenSecret: z.string().min(32, { error: "must be at least 32 characters" }).optional(),
  autoscaleIntervalMs: z.coerce.number().int().min(100).default(2000),
  stabilizationWindowMs: z.coerce.number().int().min(0).default(60_000),
  statusIntervalMs: z.coerce.number().int().min(100).default(5000),
  /** How often the terminal shows progress. */
  progressIntervalMs: z.coerce.number().int().min(100).default(5000),
  /** Level of the pools' logs (in .relais-status/logs) and of the operator's own. */
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("warn"),
});
export type LocalConfig = z.output<typeof localConfigSchema>;

export function loadLocalConfig(env: Record<string, string | undefined>): Readonly<LocalConfig> {
  return parseConfig(localConfigSchema, env);
}
