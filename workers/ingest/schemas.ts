// Request and response schemas of the Profiles & Data API. Every field is bounded, so no body can
// make a worker allocate without limit, and every error names its field.
import { z } from "zod";

export const LIMITS = {
  bodyBytes: 1024 * 1024,
  eventsPerBatch: 1000,
  /** One event as stored on RELAIS_EVENTS; NATS refuses messages over its max payload (1 MiB). */
  eventBytes: 512 * 1024,
  attributesPerRequest: 200,
  jsonDepth: 8,
} as const;

const idPattern = /^[A-Za-z0-9._:@+-]+$/;

export const profileIdSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(idPattern, { error: "must use letters, digits and . _ : @ + -" })
  .describe("The customer's id in your systems.");

const attributeName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, { error: "attribute names start with a letter: letters, digits, _ (64 max)" });

export const attributeValueSchema = z
  .union([
    z.string().max(2048),
    z.number().refine(Number.isFinite, { error: "must be a finite number" }),
    z.boolean(),
    z.array(z.string().max(256)).max(100),
  ])
  .nullable()
  .describe("A string (dates as RFC 3339, URLs as strings), number, boolean or list of strings; null removes it.");

const pushSubscriptionSchema = z.strictObject({
  endpoint: z.url({ protocol: /^https$/, error: "must be an https URL" }).max(2048),
  keys: z.strictObject({
    p256dh: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[A-Za-z0-9_-]+=*$/, { error: "must be base64url" }),
    auth: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_-]+=*$/, { error: "must be base64url" }),
  }),
});

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const identifyBodySchema = z
  .strictObject({
    attributes: z
      .record(attributeName, attributeValueSchema)
      .refine((value) => Object.keys(value).length <= LIMITS.attributesPerRequest, {
        error: `at most ${LIMITS.attributesPerRequest} attributes per request`,
      })
      .optional(),
    email: z.email({ error: "must be an email address" }).max(254).nullable().optional(),
    emailSubscription: z.enum(["subscribed", "unsubscribed"]).optional(),
    language: z
      .string()
      .regex(/^[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { error: 'must be a BCP 47 tag such as "fr" or "pt-BR"' })
      .nullable()
      .optional(),
    timezone: z
      .string()
      .max(64)
      .refine(isTimeZone, { error: 'must be an IANA time zone such as "Europe/Paris"' })
      .nullable()
      .optional(),
    webPush: z
      .strictObject({
        add: z.array(pushSubscriptionSchema).max(10).optional(),
        remove: z.array(z.string().max(2048)).max(10).optional(),
      })
      .optional(),
  })
  .describe("Fields to merge into the profile; fields not named are kept.");
export type IdentifyBody = z.infer<typeof identifyBodySchema>;

/** Any JSON value whose nesting stays within `maxDepth` (checked without recursion). */
function boundedJson(maxDepth: number) {
  return z.unknown().superRefine((value, ctx) => {
    const stack: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
    while (stack.length > 0) {
      const item = stack.pop();
      if (item === undefined || item.value === null || typeof item.value !== "object") continue;
      if (item.depth > maxDepth) {
        ctx.addIssue({ code: "custom", message: `nested deeper than ${maxDepth} levels` });
        return;
      }
      for (const inner of Object.values(item.value)) stack.push({ value: inner, depth: item.depth + 1 });
    }
  });
}

export const trackEventSchema = z.strictObject({
  profileId: profileIdSchema,
  name: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9_-]+$/, { error: 'must use only letters, digits, "_" and "-", such as cart_updated' }),
  timestamp: z.iso.datetime({ offset: true, error: "must be an RFC 3339 date-time" }).optional(),
  id: z
    .string()
    .min(1)
    .max(128)
    .regex(idPattern, { error: "must use letters, digits and . _ : @ + -" })
    .optional()
    .describe("Makes retries idempotent: an event id is recorded once."),
  attributes: z.record(z.string().max(128), boundedJson(LIMITS.jsonDepth)).optional(),
});

export const trackBodySchema = z.strictObject({
  events: z.array(trackEventSchema).min(1).max(LIMITS.eventsPerBatch),
});
export type TrackBody = z.infer<typeof trackBodySchema>;

export const errorResponseSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
