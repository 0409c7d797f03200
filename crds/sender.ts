// Sender: a channel (email or Web Push) and the delivery pool that sends through it.
import { z } from "zod";
import { conditionsSchema, observedGeneration } from "./conditions.ts";
import { ageColumn, readyColumn } from "./kind.ts";
import type { KindDefinition } from "./kind.ts";
import { duration, secretKeyRef, withRules } from "./schema.ts";

export const Channels = { email: "email", webpush: "webpush" } as const;
export type Channel = (typeof Channels)[keyof typeof Channels];

const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, { error: "must be a hostname or IP address" });

const mailbox = z
  .strictObject({
    address: z.email({ error: "must be an email address" }).max(254).describe("The email address."),
    name: z.string().max(256).optional().describe('Display name, e.g. "Acme Shop".'),
  })
  .describe("A mailbox: address and optional display name.");

const smtpSchema = z
  .strictObject({
    host: hostname.describe("SMTP server hostname or IP address."),
    port: z.int().min(1).max(65535).default(587).describe("SMTP server port. Defaults to 587 (submission)."),
    tls: z
      .enum(["none", "starttls", "implicit"])
      .default("starttls")
      .describe(
        "none: plain text; starttls: upgrade after connecting (port 587); implicit: TLS from the start (port 465).",
      ),
    authSecretRef: z
      .strictObject({ name: z.string().min(1).max(253).describe("Name of the Secret, in the same namespace.") })
      .optional()
      .describe('Secret with keys "username" and "password" for SMTP AUTH. No authentication when absent.'),
    maxConnections: z
      .int()
      .min(1)
      .max(100)
      .default(5)
      .describe("Pooled SMTP connections per worker replica. Defaults to 5."),
  })
  .describe("Send through an SMTP server.");

const sparkpostSchema = z
  .strictObject({
    endpoint: z
      .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
      .max(2048)
      .default("https://api.sparkpost.com")
      .describe("Base URL of the SparkPost-compatible Transmissions API."),
    apiKeySecretRef: secretKeyRef("Secret holding the API key.", "apiKey"),
  })
  .describe("Send through an HTTP relay speaking SparkPost's Transmissions API.");

const transportSchema = withRules(
  z.strictObject({ smtp: smtpSchema.optional(), sparkpost: sparkpostSchema.optional() }),
  "How email leaves: exactly one of smtp or sparkpost.",
  [{ rule: "has(self.smtp) != has(self.sparkpost)", message: "set exactly one of smtp or sparkpost" }],
);

const domainThrottleSchema = z
  .strictObject({
    domain: hostname.describe('Recipient domain, e.g. "gmail.com".'),
    perSecond: z.int().min(1).max(100000).describe("Most messages per second to this domain, across the pool."),
  })
  .describe("A per-domain send rate.");

const emailSchema = z
  .strictObject({
    from: mailbox.describe("The From mailbox."),
    replyTo: mailbox.optional().describe("The Reply-To mailbox."),
    transport: transportSchema,
    dkim: z
      .strictObject({
        domain: hostname.describe("The signing domain (d=)."),
        selector: z
          .string()
          .min(1)
          .max(63)
          .regex(/^[A-Za-z0-9_-]+$/, { error: "must be a DNS label" })
          .describe("The DKIM selector (s=)."),
        privateKeySecretRef: secretKeyRef("Secret holding the PEM private key.", "privateKey"),
      })
      .optional()
      .describe("DKIM-sign every message."),
    listUnsubscribe: z
      .boolean()
      .default(true)
      .describe("Add List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 one-click) headers. Defaults to true."),
    tracking: z
      .strictObject({
        opens: z.boolean().default(false).describe("Add an open-tracking pixel."),
        clicks: z.boolean().default(false).describe("Rewrite links to count clicks."),
      })
      .prefault({})
      .describe("Open and click tracking."),
    domainThrottles: withRules(
      z.array(domainThrottleSchema).max(64),
      "Per-domain rates shared by the pool, e.g. to stay under a mailbox provider's limits.",
      [{ rule: "self.all(x, self.exists_one(y, y.domain == x.domain))", message: "list each domain once" }],
    ).optional(),
  })
  .describe("Email channel settings. Required when channel is email.");

const webpushSchema = z
  .strictObject({
    vapid: z
      .strictObject({
        subject: z
          .string()
          .regex(/^(mailto:|https:\/\/)/, { error: "must be a mailto: or https: URL" })
          .max(2048)
          .describe("Contact for push services (RFC 8292): a mailto: or https: URL."),
        keysSecretRef: z
          .strictObject({ name: z.string().min(1).max(253).describe("Name of the Secret, in the same namespace.") })
          .describe('Secret with keys "publicKey" and "privateKey" (base64url, as web-push generates them).'),
      })
      .describe("VAPID identification of the application server."),
    ttl: duration("How long a push service keeps an undelivered notification. Defaults to 24h.").default("24h"),
    urgency: z
      .enum(["very-low", "low", "normal", "high"])
      .default("normal")
      .describe("Urgency header (RFC 8030): very-low, low, normal or high."),
    topic: z
      .string()
      .max(32)
      .regex(/^[A-Za-z0-9_-]+$/, { error: "must use base64url characters" })
      .optional()
      .describe("Topic header: a newer notification with the same topic replaces an undelivered one."),
  })
  .describe("Web Push channel settings. Required when channel is webpush.");

const poolSchema = withRules(
  z.strictObject({
    minReplicas: z.int().min(0).max(1000).default(1).describe("Fewest replicas; 0 lets an idle pool scale to zero."),
    maxReplicas: z.int().min(1).max(1000).default(10).describe("Most replicas the autoscaler may run."),
    replicas: z
      .int()
      .min(0)
      .max(1000)
      .optional()
      .describe(
        "Fixed replica count, set by kubectl scale or an external autoscaler; when absent the operator scales on lag.",
      ),
    targetLagPerReplica: z
      .int()
      .min(1)
      .default(1000)
      .describe("Queued messages one replica should have; replicas = ceil(lag / this)."),
    concurrency: z.int().min(1).max(1000).default(16).describe("Messages one replica sends at once."),
    resources: z
      .strictObject({
        requests: z
          .record(z.string(), z.union([z.int(), z.string()]))
          .optional()
          .describe("Minimum resources, e.g. cpu: 100m."),
        limits: z
          .record(z.string(), z.union([z.int(), z.string()]))
          .optional()
          .describe("Maximum resources, e.g. memory: 256Mi."),
      })
      .optional()
      .describe("Compute resources of each replica's container."),
  }),
  "The delivery pool: replicas that autoscale on queue lag.",
  [
    {
      // The API server also checks the rule against the default ({}), before nested defaults apply.
      rule: "!has(self.minReplicas) || !has(self.maxReplicas) || self.maxReplicas >= self.minReplicas",
      message: "maxReplicas must be greater than or equal to minReplicas",
      fieldPath: ".maxReplicas",
    },
  ],
);

const retrySchema = withRules(
  z.strictObject({
    maxAttempts: z.int().min(1).max(100).default(5).describe("Attempts before a message fails for good."),
    initialBackoff: duration("Wait before the first retry; doubles each attempt.").default("10s"),
    maxBackoff: duration("Longest wait between retries.").default("10m"),
  }),
  "Retries of transient failures (SMTP 4xx, timeouts, HTTP 5xx/429).",
  [
    {
      rule: "!has(self.initialBackoff) || !has(self.maxBackoff) || duration(self.maxBackoff) >= duration(self.initialBackoff)",
      message: "maxBackoff must be at least initialBackoff",
      fieldPath: ".maxBackoff",
    },
  ],
);

export const senderSpecSchema = withRules(
  z.strictObject({
    channel: z.enum(Object.values(Channels)).describe("email or webpush."),
    email: emailSchema.optional(),
    webpush: webpushSchema.optional(),
    rateLimit: z
      .strictObject({
        perSecond: z.int().min(1).max(1000000).describe("Most messages per second, across every replica."),
        burst: z
          .int()
          .min(1)
          .max(1000000)
          .optional()
          .describe("Messages allowed above the rate at once. Defaults to perSecond."),
      })
      .optional()
      .describe("Send rate shared by the whole pool. Unlimited when absent."),
    retry: retrySchema.prefault({}),
    pool: poolSchema.prefault({}),
  }),
  "How a channel sends and the pool that sends through it.",
  [
    {
      rule: "self.channel != 'email' || (has(self.email) && !has(self.webpush))",
      message: "channel email needs spec.email and no spec.webpush",
    },
    {
      rule: "self.channel != 'webpush' || (has(self.webpush) && !has(self.email))",
      message: "channel webpush needs spec.webpush and no spec.email",
    },
  ],
);
export type SenderSpec = z.infer<typeof senderSpecSchema>;

export const senderStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration.optional(),
    conditions: conditionsSchema.optional(),
    replicas: z.int().min(0).optional().describe("Replicas of the delivery pool."),
    selector: z.string().max(1024).optional().describe("Label selector of the pool's pods, for the scale subresource."),
    lag: z.int().min(0).optional().describe("Messages queued or in flight for this Sender."),
    sendRatePerSecond: z
      .number()
      .min(0)
      .optional()
      .describe("Messages sent per second, averaged over the last minute."),
  })
  .describe("Observed state of the Sender.");
export type SenderStatus = z.infer<typeof senderStatusSchema>;

export const senderKind: KindDefinition<"Sender", typeof senderSpecSchema, typeof senderStatusSchema> = {
  kind: "Sender",
  plural: "senders",
  singular: "sender",
  shortNames: ["snd"],
  description:
    "A Sender is a channel (email over SMTP or an HTTP relay, or Web Push) and the pool of workers that sends through it.",
  spec: senderSpecSchema,
  status: senderStatusSchema,
  printerColumns: [
    readyColumn,
    { name: "Channel", type: "string", jsonPath: ".spec.channel", description: "email or webpush." },
    { name: "Replicas", type: "integer", jsonPath: ".status.replicas", description: "Replicas of the delivery pool." },
    { name: "Lag", type: "integer", jsonPath: ".status.lag", description: "Messages queued or in flight." },
    { name: "Rate", type: "number", jsonPath: ".status.sendRatePerSecond", description: "Messages sent per second." },
    ageColumn,
  ],
  scale: {
    specReplicasPath: ".spec.pool.replicas",
    statusReplicasPath: ".status.replicas",
    labelSelectorPath: ".status.selector",
  },
};
