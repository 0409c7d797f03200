// The compiled configuration the operator publishes to the NATS KV bucket `relais-config`, keyed
// <namespace>.<Kind>.<name>. Workers watch it, so they need no Kubernetes credentials, and a change
// applies without a restart.
import type { KV } from "@nats-io/kv";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { automationSpecSchema, campaignSpecSchema, sendPolicySpecSchema, senderSpecSchema } from "#crds";

export const CONFIG_BUCKET = "relais-config";

export const ConfigKinds = {
  Sender: "Sender",
  Campaign: "Campaign",
  Automation: "Automation",
  SendPolicy: "SendPolicy",
} as const;
export type ConfigKind = (typeof ConfigKinds)[keyof typeof ConfigKinds];

export const ConfigKeys = {
  of: (namespace: string, kind: ConfigKind, name: string): string => `${namespace}.${kind}.${name}`,
  /** Every key of a namespace, for a KV watch. */
  namespace: (namespace: string): string => `${namespace}.>`,
} as const;

/** A KV key back to its parts; names may contain dots, so only the first two dots split. */
export function parseConfigKey(key: string): { namespace: string; kind: ConfigKind; name: string } | undefined {
  const first = key.indexOf(".");
  const second = key.indexOf(".", first + 1);
  if (first < 1 || second < 0) return undefined;
  const kind = key.slice(first + 1, second);
  if (!(kind in ConfigKinds)) return undefined;
  return { namespace: key.slice(0, first), kind: kind as ConfigKind, name: key.slice(second + 1) };
}

const envelope = <T extends z.ZodType>(spec: T) =>
  z.strictObject({
    /** metadata.generation of the resource this was compiled from. */
    generation: z.int().min(0),
    /** metadata.labels: SendPolicy selectors match them. */
    labels: z.record(z.string(), z.string()).optional(),
    spec,
  });

export const senderConfigSchema = envelope(senderSpecSchema);
export const campaignConfigSchema = envelope(campaignSpecSchema);
export const automationConfigSchema = envelope(automationSpecSchema);
export const sendPolicyConfigSchema = envelope(sendPolicySpecSchema);
export type SenderConfig = z.infer<typeof senderConfigSchema>;
export type CampaignConfig = z.infer<typeof campaignConfigSchema>;
export type AutomationConfig = z.infer<typeof automationConfigSchema>;
export type SendPolicyConfig = z.infer<typeof sendPolicyConfigSchema>;

export const configSchemas = {
  Sender: senderConfigSchema,
  Campaign: campaignConfigSchema,
  Automation: automationConfigSchema,
  SendPolicy: sendPolicyConfigSchema,
} as const;

/** Opens (creating if needed) the config bucket. */
export async function openConfigBucket(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).create(CONFIG_BUCKET, { history: 1 });
}

/**
 * API keys of the ingest pool, one KV entry per key: `<namespace>.ApiKey.<keyId>` → the SHA-256 of
 * its secret. Not a ConfigKind (no CR behind it), so parseConfigKey ignores these entries.
 */
export const ApiKeyKeys = {
  of: (namespace: string, keyId: string): string => `${namespace}.ApiKey.${keyId}`,
  /** Every API key of every namespace, for a KV watch. */
  all: "*.ApiKey.>",
} as const;

export const apiKeyEntrySchema = z.strictObject({
  keyId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
  secretSha256: z.string().regex(/^[0-9a-f]{64}$/, { error: "must be the hex SHA-256 of the key's secret" }),
});
export type ApiKeyEntry = z.infer<typeof apiKeyEntrySchema>;
