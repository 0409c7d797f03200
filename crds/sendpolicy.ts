// SendPolicy: guard rails every send of a namespace passes through, whichever Automation or Campaign
// planned it: frequency caps across them, quiet hours in the recipient's time zone, a send freeze,
// and auto-pause of a Sender or Campaign whose bounce or failure rate crosses a threshold.
import { z } from "zod";
import { conditionsSchema, observedGeneration } from "./conditions.ts";
import { ageColumn, readyColumn } from "./kind.ts";
import type { KindDefinition } from "./kind.ts";
import { clockTime, duration, timeZone, withRules } from "./schema.ts";

const selectorSchema = z
  .strictObject({
    matchLabels: z
      .record(z.string(), z.string())
      .optional()
      .describe("Labels an Automation or Campaign must carry for the policy to apply to its sends."),
  })
  .describe("Which Automations and Campaigns the policy applies to. Every one of the namespace when absent.");

const frequencyCapSchema = z
  .strictObject({
    max: z.int().min(1).max(10000).describe("Most messages to one profile per window."),
    per: duration("The sliding window, e.g. 24h or 168h."),
    perChannel: z
      .boolean()
      .default(true)
      .describe("Count email and Web Push separately. Defaults to true; false counts every channel together."),
    includeTransactional: z
      .boolean()
      .default(false)
      .describe("Cap transactional sends too (Automations with subscription: all). Defaults to false."),
  })
  .describe("At most max messages per window to one profile, across every Automation and Campaign the policy selects.");

const quietHoursSchema = withRules(
  z.strictObject({
    start: clockTime("When quiet hours begin, in the recipient's time zone, e.g. 21:00."),
    end: clockTime("When they end, e.g. 08:00 (the next morning when earlier than start)."),
    timeZone: timeZone("The zone used when a profile has no timezone attribute.").default("UTC"),
    action: z
      .enum(["hold", "drop"])
      .default("hold")
      .describe("hold delivers when quiet hours end; drop skips the send (counted). Defaults to hold."),
    includeTransactional: z.boolean().default(false).describe("Apply to transactional sends too. Defaults to false."),
  }),
  "No sends in this daily window of the recipient's local time.",
  [{ rule: "self.start != self.end", message: "start and end must differ" }],
);

const autoPauseSchema = z
  .strictObject({
    window: duration("The sliding window rates are computed over, e.g. 10m.").default("10m"),
    minSends: z
      .int()
      .min(1)
      .max(1000000)
      .default(100)
      .describe("Rates are judged only once this many sends ended in the window. Defaults to 100."),
    bounceRate: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe("Pause when hard bounces / sends in the window reach this, e.g. 0.05."),
    failureRate: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe("Pause when failures / sends in the window reach this, e.g. 0.2."),
  })
  .describe(
    "Pause a Sender, and each Campaign, whose rates cross a threshold. Sends are held, not lost, until a person resumes it.",
  );

export const sendPolicySpecSchema = z
  .strictObject({
    selector: selectorSchema.optional(),
    frequencyCap: frequencyCapSchema.optional(),
    quietHours: quietHoursSchema.optional(),
    freeze: z
      .boolean()
      .default(false)
      .describe("Hold every non-transactional send the policy selects until set back to false. Defaults to false."),
    autoPause: autoPauseSchema.optional(),
  })
  .describe("Guard rails for the sends of the namespace.");
export type SendPolicySpec = z.infer<typeof sendPolicySpecSchema>;

export const sendPolicyStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration.optional(),
    conditions: conditionsSchema.optional(),
    decisions: z
      .record(z.string(), z.int().min(0))
      .optional()
      .describe("Sends this policy held, dropped or skipped, by reason (capped, quiet_hours_held, frozen, …)."),
  })
  .describe("Observed state of the SendPolicy.");
export type SendPolicyStatus = z.infer<typeof sendPolicyStatusSchema>;

export const sendPolicyKind: KindDefinition<"SendPolicy", typeof sendPolicySpecSchema, typeof sendPolicyStatusSchema> =
  {
    kind: "SendPolicy",
    plural: "sendpolicies",
    singular: "sendpolicy",
    shortNames: ["sp"],
    description:
      "A SendPolicy caps, delays, freezes or pauses the sends of a namespace, across every Automation and Campaign it selects.",
    spec: sendPolicySpecSchema,
    status: sendPolicyStatusSchema,
    printerColumns: [
      readyColumn,
      { name: "Freeze", type: "boolean", jsonPath: ".spec.freeze", description: "Whether sends are frozen." },
      { name: "Cap", type: "integer", jsonPath: ".spec.frequencyCap.max", description: "Messages per window." },
      { name: "Window", type: "string", jsonPath: ".spec.frequencyCap.per", description: "The cap's window." },
      ageColumn,
    ],
  };
