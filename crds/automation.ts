// Automation: listen to an event, maybe wait, then send, unless something happened meanwhile.
import { z } from "zod";
import { conditionsSchema, observedGeneration } from "./conditions.ts";
import { ageColumn, readyColumn } from "./kind.ts";
import type { KindDefinition } from "./kind.ts";
import { holdoutPercent, messageSchema, subscriptionSchema } from "./message.ts";
import { celExpression, duration, eventName, objectName, signedDuration, withRules } from "./schema.ts";

const waitSchema = withRules(
  z.strictObject({
    after: duration("Send this long after the triggering event.").optional(),
    until: z
      .strictObject({
        field: z
          .string()
          .min(1)
          .max(256)
          .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, {
            error: "must be a dotted path such as attributes.appointmentAt",
          })
          .describe("Path in the triggering event of an RFC 3339 date, e.g. attributes.appointmentAt."),
        offset: signedDuration("Shift from that date; -24h sends the day before.").default("0s"),
        ifPast: z
          .enum(["skip", "send"])
          .default("skip")
          .describe(
            "When the date (with offset) is already past: skip (counted as pastDate) or send at once. Defaults to skip.",
          ),
      })
      .optional()
      .describe("Send at a date carried by the event."),
  }),
  "How long to wait before sending: at most one of after or until. Absent: send at once.",
  [{ rule: "!(has(self.after) && has(self.until))", message: "set at most one of after or until" }],
);

const cancelSchema = z
  .strictObject({
    event: eventName("Name of the event that cancels a waiting instance."),
    filter: celExpression(
      "Must hold for the event to cancel, over event, trigger (the triggering event) and profile, " +
        "e.g. event.attributes.cartId == trigger.attributes.cartId. Every such event cancels when absent.",
    ).optional(),
  })
  .describe("An event that cancels a waiting instance.");

export const automationSpecSchema = z
  .strictObject({
    senderRef: z
      .strictObject({ name: objectName("Name of the Sender.") })
      .describe("The Sender that delivers this automation's messages, in the same namespace."),
    trigger: z
      .strictObject({
        event: eventName("Name of the event that starts an instance, e.g. cart_updated."),
        filter: celExpression(
          "Must hold for the event to trigger, over event, profile and now, e.g. event.attributes.total > 50.0. Every such event triggers when absent.",
        ).optional(),
      })
      .describe("What starts an instance of this automation for a profile."),
    wait: waitSchema.optional(),
    cancelOn: z.array(cancelSchema).max(16).optional().describe("Events that cancel a waiting instance."),
    gracePeriod: duration("A profile gets at most one message from this automation within this period.").optional(),
    capping: z
      .strictObject({
        max: z.int().min(1).max(10000).describe("Most messages per window."),
        per: duration("The window."),
      })
      .optional()
      .describe("At most max messages per window to one profile from this automation."),
    subscription: subscriptionSchema,
    holdoutPercent: holdoutPercent,
    message: messageSchema,
    suspend: z
      .boolean()
      .default(false)
      .describe("Start no new instances and hold waiting ones, losing none, until resumed. Defaults to false."),
  })
  .describe("An event-triggered message: trigger, optional wait, cancel events, grace period and capping.");
export type AutomationSpec = z.infer<typeof automationSpecSchema>;

const counter = (description: string) => z.int().min(0).optional().describe(description);

export const automationStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration.optional(),
    conditions: conditionsSchema.optional(),
    counters: z
      .strictObject({
        triggered: counter("Instances started."),
        filteredOut: counter("Trigger events whose filter did not hold."),
        waiting: counter("Instances waiting now."),
        cancelled: counter("Instances cancelled by a cancel event or an erased profile."),
        sent: counter("Messages handed to the Sender."),
        skipped: z
          .record(z.string(), z.int().min(0))
          .optional()
          .describe(
            "Instances that ended without a message, by reason (grace, capping, optOut, suppressed, pastDate).",
          ),
      })
      .optional()
      .describe("Totals since the automation was created."),
  })
  .describe("Observed state of the Automation.");
export type AutomationStatus = z.infer<typeof automationStatusSchema>;

export const automationKind: KindDefinition<"Automation", typeof automationSpecSchema, typeof automationStatusSchema> =
  {
    kind: "Automation",
    plural: "automations",
    singular: "automation",
    shortNames: ["auto"],
    description:
      "An Automation sends a message when an event happens, possibly after a wait, unless a cancel event arrives first.",
    spec: automationSpecSchema,
    status: automationStatusSchema,
    printerColumns: [
      readyColumn,
      { name: "Event", type: "string", jsonPath: ".spec.trigger.event", description: "The triggering event." },
      { name: "Triggered", type: "integer", jsonPath: ".status.counters.triggered", description: "Instances started." },
      {
        name: "Waiting",
        type: "integer",
        jsonPath: ".status.counters.waiting",
        description: "Instances waiting.",
        priority: 1,
      },
      { name: "Sent", type: "integer", jsonPath: ".status.counters.sent", description: "Messages sent." },
      ageColumn,
    ],
  };
