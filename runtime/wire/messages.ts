// Message schemas on the wire. Producers build them with these types; consumers parse them with
// these schemas, so a malformed message is rejected with a reason instead of crashing a worker.
import { z } from "zod";

/** One event on RELAIS_EVENTS (subject relais.events.<namespace>.<name>). */
export const eventMessageSchema = z.strictObject({
  id: z.string().min(1).max(128),
  namespace: z.string().min(1).max(63),
  profileId: z.string().min(1).max(256),
  name: z.string().min(1).max(100),
  /** When it happened, RFC 3339 (the client's, or reception time). */
  timestamp: z.string(),
  /** When ingest accepted it, RFC 3339. */
  receivedAt: z.string(),
  attributes: z.record(z.string(), z.unknown()),
});
export type EventMessage = z.infer<typeof eventMessageSchema>;

/** The erase announcement on relais.events.<namespace>.$erase: engage drops the profile's instances. */
export const eraseMessageSchema = z.strictObject({
  namespace: z.string(),
  profileId: z.string(),
  erasedAt: z.string(),
});
export type EraseMessage = z.infer<typeof eraseMessageSchema>;

export const FeedbackOutcomes = {
  sent: "sent",
  failed: "failed",
  bounced: "bounced",
  complained: "complained",
  expired: "expired",
  skipped: "skipped",
  opened: "opened",
  clicked: "clicked",
  unsubscribed: "unsubscribed",
} as const;
export type FeedbackOutcome = (typeof FeedbackOutcomes)[keyof typeof FeedbackOutcomes];

/** One outcome on RELAIS_FEEDBACK (subject relais.feedback.<namespace>.<outcome>). */
export const feedbackMessageSchema = z.strictObject({
  namespace: z.string(),
  outcome: z.enum(Object.values(FeedbackOutcomes)),
  profileId: z.string(),
  /** The send this is about (its idempotency key), when known. */
  messageId: z.string().optional(),
  channel: z.enum(["email", "webpush"]).optional(),
  /** The email address or push endpoint concerned (a bounce suppresses this address). */
  address: z.string().optional(),
  /** Machine-readable detail: SMTP enhanced status, HTTP status, skip reason. */
  reason: z.string().optional(),
  url: z.string().optional(),
  at: z.string(),
});
export type FeedbackMessage = z.infer<typeof feedbackMessageSchema>;

/** Where a send job comes from: its template lives in the config KV under this kind and name. */
export const sendSourceSchema = z.strictObject({
  kind: z.enum(["Campaign", "Automation"]),
  name: z.string().min(1).max(253),
  /** Campaign run or automation instance, for reports. */
  runId: z.string().max(256).optional(),
});

/** One message to send, on RELAIS_SENDS (subject relais.sends.<namespace>.<sender>). */
export const sendJobSchema = z.strictObject({
  /** Idempotency key, also the Nats-Msg-Id: run + profile + destination, or instance + step. */
  id: z.string().min(1).max(512),
  namespace: z.string().min(1).max(63),
  sender: z.string().min(1).max(253),
  profileId: z.string().min(1).max(256),
  source: sendSourceSchema,
  /** Sent to opted-out profiles too (subscription: all). Suppressed addresses never are. */
  transactional: z.boolean(),
  /** Web Push: the one subscription endpoint this job targets (a profile may have several). */
  endpoint: z.string().max(2048).optional(),
  /** The triggering event of an automation, for templates (`trigger`, `event`). */
  event: z.record(z.string(), z.unknown()).optional(),
  createdAt: z.string(),
});
export type SendJob = z.infer<typeof sendJobSchema>;

/**
 * The Nats-Msg-Id of a message about a send. RELAIS_SENDS and RELAIS_FEEDBACK are shared by every
 * namespace and de-duplicate ids for an hour, so the id carries the namespace: the same automation
 * name, profile id and event id in two namespaces are two sends.
 */
export function sendMessageId(namespace: string, id: string, suffix?: string): string {
  return suffix === undefined ? `${namespace}:${id}` : `${namespace}:${id}:${suffix}`;
}
