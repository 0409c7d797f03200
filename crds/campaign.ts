// Campaign: an immediate, scheduled or recurring send of one message to a segment of profiles.
import { z } from "zod";
import { conditionsSchema, observedGeneration } from "./conditions.ts";
import { ageColumn, readyColumn } from "./kind.ts";
import type { KindDefinition } from "./kind.ts";
import { holdoutPercent, messageSchema, subscriptionSchema } from "./message.ts";
import { celExpression, clockTime, dateTime, objectName, timeZone, withRules } from "./schema.ts";

/** Most sample profiles a preview renders. */
export const PREVIEW_MAX_SAMPLES = 10;
/** Characters of each rendered text or HTML part a preview sample keeps (status stays small). */
export const PREVIEW_EXCERPT_CHARS = 500;

const domainList = (description: string) =>
  z
    .array(
      z
        .string()
        .min(1)
        .max(253)
        .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/, {
          error: 'must be a lowercase domain such as "gmail.com"',
        })
        .describe("A recipient domain."),
    )
    .max(256)
    .optional()
    .describe(description);

const audienceSchema = z
  .strictObject({
    segment: celExpression(
      'Which profiles to target, over profile and now, e.g. profile.attributes.country == "FR". Defaults to every profile.',
    ).default("true"),
    subscription: subscriptionSchema,
    emailDomains: z
      .strictObject({
        include: domainList("Only addresses in these domains. Every domain when absent."),
        exclude: domainList("Never addresses in these domains."),
      })
      .optional()
      .describe("Target or avoid recipient domains (email only)."),
    dedupeByEmail: z
      .boolean()
      .default(true)
      .describe(
        "Send once per address when several profiles share it: the profile with the most recent activity wins. Defaults to true.",
      ),
    holdoutPercent: holdoutPercent,
  })
  .prefault({})
  .describe("Who receives the campaign.");

const previewSpecSchema = z
  .strictObject({
    samples: z
      .int()
      .min(0)
      .max(PREVIEW_MAX_SAMPLES)
      .default(3)
      .describe("Profiles whose rendered message the preview shows. Defaults to 3."),
    showPersonalData: z
      .boolean()
      .default(false)
      .describe(
        "Show the sample profiles' ids, addresses and attribute values in the rendered samples (status and the preview API). Defaults to false: they read [redacted] and ids are hashed.",
      ),
  })
  .prefault({})
  .describe("What the preview of a suspended campaign shows.");

const cronPattern = /^(@(yearly|annually|monthly|weekly|daily|hourly)|(\S+\s+){4}\S+)$/;

const recurringSchema = withRules(
  z.strictObject({
    cron: z
      .string()
      .max(128)
      .regex(cronPattern, { error: 'must be a 5-field cron expression such as "0 9 * * 1", or @daily' })
      .describe('When to run: a 5-field cron expression ("0 9 * * 1" = Mondays 09:00) or @daily, @weekly, ...'),
    timeZone: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z][A-Za-z0-9_+\-/]*$/, { error: 'must be an IANA time zone such as "Europe/Paris"' })
      .default("UTC")
      .describe('IANA time zone of the cron expression, e.g. "Europe/Paris". Defaults to UTC.'),
    startAt: dateTime("No run before this time.").optional(),
    endAt: dateTime("No run after this time.").optional(),
  }),
  "Run on a cron schedule in a time zone (DST-correct); a run missed while Relais was down runs once on recovery.",
  [
    {
      rule: "!has(self.startAt) || !has(self.endAt) || timestamp(self.endAt) > timestamp(self.startAt)",
      message: "endAt must be after startAt",
      fieldPath: ".endAt",
    },
  ],
);

const scheduleSchema = withRules(
  z.strictObject({
    at: dateTime("Run once at this time. With localTime, only its date counts: the day to deliver on.").optional(),
    recurring: recurringSchema.optional(),
    localTime: clockTime(
      "Deliver at this time of day in each recipient's time zone (the profile's timezone), e.g. \"09:00\", on the date of at or of each recurring slot (in the cron's time zone), as one run. A recipient whose time has already passed when the run reaches it receives the message at once.",
    ).optional(),
    fallbackTimeZone: timeZone(
      "With localTime: the zone of profiles without a valid timezone. Defaults to recurring.timeZone, or UTC with at.",
    ).optional(),
  }),
  "When the campaign runs: at most one of at or recurring. Absent: once, as soon as it is created or resumed.",
  [
    { rule: "!(has(self.at) && has(self.recurring))", message: "set at most one of at or recurring" },
    {
      rule: "!has(self.localTime) || has(self.at) || has(self.recurring)",
      message: "localTime needs at or recurring to name the day",
      fieldPath: ".localTime",
    },
    {
      rule: "!has(self.fallbackTimeZone) || has(self.localTime)",
      message: "fallbackTimeZone applies with localTime only",
      fieldPath: ".fallbackTimeZone",
    },
  ],
);

export const campaignSpecSchema = withRules(
  z.strictObject({
    senderRef: z
      .strictObject({ name: objectName("Name of the Sender.") })
      .describe("The Sender that delivers this campaign, in the same namespace."),
    message: messageSchema,
    audience: audienceSchema,
    schedule: scheduleSchema.optional(),
    throttle: z
      .strictObject({
        perSecond: z.int().min(1).max(1000000).describe("Most messages this campaign enqueues per second."),
      })
      .optional()
      .describe("Pace the campaign below the Sender's own rate."),
    suspend: z
      .boolean()
      .default(false)
      .describe(
        "Stop enqueuing; resuming continues the run where it stopped. A campaign created suspended gets a preview in status.preview. Defaults to false.",
      ),
    preview: previewSpecSchema,
  }),
  "A message sent to a segment, now, at a time, or on a recurring schedule.",
  [
    {
      rule: "!has(self.audience.emailDomains) || has(self.message.email)",
      message: "audience.emailDomains applies to email messages only",
      fieldPath: ".audience",
    },
  ],
);
export type CampaignSpec = z.infer<typeof campaignSpecSchema>;

export const CampaignPhases = {
  Pending: "Pending",
  Scheduled: "Scheduled",
  Running: "Running",
  Completed: "Completed",
  Suspended: "Suspended",
  Failed: "Failed",
} as const;
export type CampaignPhase = (typeof CampaignPhases)[keyof typeof CampaignPhases];

const count = (description: string) => z.int().min(0).optional().describe(description);

export const runSummarySchema = z
  .strictObject({
    id: z.string().max(128).describe("Run identifier."),
    startedAt: z.iso.datetime({ offset: true }).optional().describe("When the run started."),
    finishedAt: z.iso.datetime({ offset: true }).optional().describe("When the run finished enqueuing and sending."),
    targeted: count("Profiles the segment matched."),
    enqueued: count("Messages handed to the Sender."),
    sent: count("Messages accepted by the channel."),
    failed: count("Messages that failed for good."),
    skipped: z
      .record(z.string(), z.int().min(0))
      .optional()
      .describe("Profiles skipped, by reason (optOut, suppressed, duplicateEmail, domainExcluded, noAddress)."),
  })
  .describe("Counters of one run.");

const excerpt = (description: string) =>
  z
    .string()
    .max(PREVIEW_EXCERPT_CHARS + 1)
    .optional()
    .describe(description);

export const previewSampleSchema = z
  .strictObject({
    profile: z
      .string()
      .max(256)
      .describe("The sample profile: its id hashed (sha256:...), or its id when spec.preview.showPersonalData."),
    subject: z.string().max(1024).optional().describe("Email subject."),
    preheader: excerpt("Email preheader."),
    text: excerpt("Start of the plain-text part."),
    html: excerpt("Start of the HTML body (without tracking)."),
    title: excerpt("Push notification title."),
    body: excerpt("Push notification body."),
    url: excerpt("URL the push notification opens."),
    error: z
      .string()
      .max(1024)
      .optional()
      .describe("Why this profile's message does not render (the send would fail)."),
  })
  .describe("The message as one sample profile would receive it.");

export const campaignPreviewSchema = z
  .strictObject({
    generation: z.int().min(0).describe("The Campaign generation this preview is for."),
    computedAt: z.iso
      .datetime({ offset: true })
      .describe("When the audience was walked; profiles changed since are not reflected until it is recomputed."),
    audience: z
      .int()
      .min(0)
      .describe(
        "Messages resuming the campaign would send: one per address (email) or subscription (Web Push), after every skip.",
      ),
    targeted: z.int().min(0).describe("Profiles (Web Push: subscriptions) the segment matched."),
    skipped: z
      .record(z.string(), z.int().min(0))
      .describe(
        "What would not be sent, by reason (optOut, suppressed, duplicateEmail, domainExcluded, noAddress, noSubscription, holdout).",
      ),
    samples: z.array(previewSampleSchema).max(PREVIEW_MAX_SAMPLES).describe("The message for a few recipients."),
    personalData: z.boolean().describe("Whether the samples show personal data (spec.preview.showPersonalData)."),
  })
  .describe("What resuming this suspended campaign would send, computed by engage.");
export type CampaignPreview = z.infer<typeof campaignPreviewSchema>;
export type PreviewSample = z.infer<typeof previewSampleSchema>;

export const campaignStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration.optional(),
    conditions: conditionsSchema.optional(),
    phase: z
      .enum(Object.values(CampaignPhases))
      .optional()
      .describe("Pending, Scheduled, Running, Completed, Suspended or Failed."),
    progress: z.string().max(64).optional().describe('Progress of the current or last run, "sent/targeted".'),
    nextRunAt: z.iso.datetime({ offset: true }).optional().describe("When the next run starts."),
    lastRun: runSummarySchema.optional(),
    preview: campaignPreviewSchema.optional(),
  })
  .describe("Observed state of the Campaign.");
export type CampaignStatus = z.infer<typeof campaignStatusSchema>;

export const campaignKind: KindDefinition<"Campaign", typeof campaignSpecSchema, typeof campaignStatusSchema> = {
  kind: "Campaign",
  plural: "campaigns",
  singular: "campaign",
  shortNames: ["cmp"],
  description: "A Campaign sends one message to a segment of profiles: now, at a time, or on a recurring schedule.",
  spec: campaignSpecSchema,
  status: campaignStatusSchema,
  printerColumns: [
    readyColumn,
    { name: "Sender", type: "string", jsonPath: ".spec.senderRef.name", description: "The Sender used.", priority: 1 },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Where the campaign is." },
    {
      name: "Progress",
      type: "string",
      jsonPath: ".status.progress",
      description: "Sent / targeted in the current or last run.",
    },
    { name: "Next Run", type: "date", jsonPath: ".status.nextRunAt", description: "When the next run starts." },
    {
      name: "Preview",
      type: "integer",
      jsonPath: ".status.preview.audience",
      description: "Messages resuming the suspended campaign would send (status.preview).",
      priority: 1,
    },
    ageColumn,
  ],
};
