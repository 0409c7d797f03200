// The message of a Campaign or an Automation: an email or a Web Push notification. Every text
// field is a Liquid template rendered against the profile (and, for Automations, the event).
import { z } from "zod";
import { withRules } from "./schema.ts";

const liquid = (description: string, max = 1024): z.ZodString =>
  z.string().min(1).max(max).describe(`${description} A Liquid template over profile, event and trigger.`);

export const emailMessageSchema = withRules(
  z.strictObject({
    subject: liquid("Subject line.", 998),
    preheader: liquid("Preview text shown after the subject by most mail clients.", 255).optional(),
    html: liquid("HTML body. Exactly one of html or mjml.", 512 * 1024).optional(),
    mjml: liquid("MJML body, compiled to responsive HTML. Exactly one of html or mjml.", 512 * 1024).optional(),
    text: liquid("Plain-text part. Derived from the HTML when absent.", 256 * 1024).optional(),
  }),
  "An email message.",
  [{ rule: "has(self.html) != has(self.mjml)", message: "set exactly one of html or mjml" }],
);

export const webPushMessageSchema = z
  .strictObject({
    title: liquid("Notification title.", 256),
    body: liquid("Notification body.", 2048),
    icon: z.string().max(2048).optional().describe("URL of the icon."),
    image: z.string().max(2048).optional().describe("URL of a large image."),
    url: liquid("URL opened when the notification is clicked.", 2048).optional(),
    actions: z
      .array(
        z
          .strictObject({
            action: z.string().min(1).max(64).describe("Identifier reported when this action is clicked."),
            title: liquid("Button label.", 128),
            url: liquid("URL opened by this action.", 2048).optional(),
          })
          .describe("A button of the notification."),
      )
      .max(2)
      .optional()
      .describe("Up to two buttons, as browsers show at most two."),
  })
  .describe("A Web Push notification.");

export const messageSchema = withRules(
  z.strictObject({
    email: emailMessageSchema.optional(),
    webpush: webPushMessageSchema.optional(),
  }),
  "What is sent: exactly one of email or webpush, matching the channel of the referenced Sender.",
  [{ rule: "has(self.email) != has(self.webpush)", message: "set exactly one of email or webpush" }],
);
export type Message = z.infer<typeof messageSchema>;

export const Subscriptions = { optedIn: "optedIn", all: "all" } as const;
export type Subscription = (typeof Subscriptions)[keyof typeof Subscriptions];

export const subscriptionSchema = z
  .enum(Object.values(Subscriptions))
  .default("optedIn")
  .describe(
    "optedIn sends only to profiles subscribed to the channel; all also sends to opted-out profiles " +
      "(transactional or critical messages). A suppressed address (hard bounce, complaint) is never sent to.",
  );

/**
 * A control group: profiles whose stable hash of (profile id, Campaign or Automation name) falls
 * below this percentage are counted (reason holdout) and never sent to, so reports can compare
 * their conversion with the recipients'.
 */
export const holdoutPercent = z
  .number()
  .min(0)
  .max(100)
  .optional()
  .describe("Percentage of profiles kept out as a control group: counted as holdout, never sent to.");
