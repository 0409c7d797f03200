// The deliver process's configuration: RELAIS_* environment variables, parsed once. One process
// serves one Sender of one namespace; the Sender's own settings come from the config KV.
import { z } from "zod";
import { parseConfig } from "#runtime";

export const deliverConfigSchema = z.strictObject({
  natsUrl: z.string().default("nats://127.0.0.1:4222"),
  redisUrl: z.string().default("redis://127.0.0.1:6379"),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: "must be a Kubernetes namespace name" }),
  sender: z.string().min(1).max(253),
  /** Where /metrics, /healthz and /readyz listen. */
  host: z.string().default("0.0.0.0"),
  port: z.coerce.number().int().min(0).max(65535).default(9090),
  /** Signs recipients' links; the same value as the ingest pool's. */
  tokenSecret: z.string().min(32, { error: "must be at least 32 characters" }),
  /** Public base URL of the ingest service, for unsubscribe, open and click links. */
  publicBaseUrl: z.url({ error: "must be a URL such as https://engage.example.com" }).default("http://127.0.0.1:8080"),
  /** Folder of mounted Secrets (<dir>/<secret>/<key>); the environment is tried too. */
  secretsDir: z.string().optional(),
  /** PEM file of extra CAs trusted for SMTP TLS and push services (a private relay's CA). */
  caFile: z.string().optional(),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type DeliverConfig = z.output<typeof deliverConfigSchema>;

export function loadDeliverConfig(env: Record<string, string | undefined>): Readonly<DeliverConfig> {
  return parseConfig(deliverConfigSchema, env);
}
