// Counts delivery outcomes into campaign run reports. Feedback names its send by messageId (the
// job id, campaignJobId: campaign + run + destination + profile), so each outcome is added to
// its run's counter. Deliver publishes each outcome once per job (Nats-Msg-Id job:outcome) and
// this durable consumer acks after counting; a marker per stream sequence (kept minutes) makes a
// redelivered message, or a count whose reply a Redis restart lost, count once. Opens and clicks
// count events, not distinct recipients.
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import {
  CampaignPolicyReasons,
  ConsumerNames,
  feedbackMessageSchema,
  parseCampaignJobId,
  Streams,
  Subjects,
} from "#runtime";
import type { CampaignOutcomeCounter, FeedbackOutcome, Logger, Runnable } from "#runtime";
import type { CampaignStore } from "./store.ts";

/** Which run counter a feedback outcome adds to. */
const COUNTER: Record<FeedbackOutcome, CampaignOutcomeCounter> = {
  sent: "sent",
  failed: "failed",
  bounced: "bounced",
  complained: "complained",
  expired: "expired",
  skipped: "undelivered",
  opened: "opened",
  clicked: "clicked",
  unsubscribed: "unsubscribed",
};

function policySkipField(outcome: FeedbackOutcome, reason: string | undefined): string | undefined {
  if (outcome !== "skipped" || reason === undefined) return undefined;
  return (CampaignPolicyReasons as readonly string[]).includes(reason) ? `policy:${reason}` : undefined;
}

export function campaignFeedbackConsumer(deps: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: CampaignStore;
  log: Logger;
  /** Another durable and subject filter (tests, one namespace); engage's own by default. */
  durable?: { name: string; filter: string };
}): Runnable {
  const durable = deps.durable ?? { name: ConsumerNames.campaignFeedback, filter: Subjects.allFeedback };
  return {
    async run(signal) {
      await deps.jsm.consumers
        .add(Streams.feedback, {
          durable_name: durable.name,
          ack_policy: AckPolicy.Explicit,
          // Created once; from then on it resumes where it stopped. Older outcomes are not recounted.
          deliver_policy: DeliverPolicy.New,
          filter_subject: durable.filter,
          max_ack_pending: 10_000,
        })
        .catch(() => undefined);
      const consumer = await deps.js.consumers.get(Streams.feedback, durable.name);
      const messages = await consumer.consume({ max_messages: 512 });
      signal.addEventListener("abort", () => void messages.close(), { once: true });
      for await (const message of messages) {
        let data: unknown;
        try {
          data = message.json();
        } catch {
          data = undefined;
        }
        const parsed = feedbackMessageSchema.safeParse(data);
        const run =
          parsed.success && parsed.data.messageId !== undefined ? parseCampaignJobId(parsed.data.messageId) : undefined;
        if (!parsed.success || run === undefined) {
          message.ack();
          continue;
        }
        try {
          const target = { namespace: parsed.data.namespace, ...run };
          const once = String(message.seq);
          // A send policy's skip (holdout, capped, quiet hours with drop) is also counted by reason,
          // in the same script: a report never shows the outcome without its reason.
          const policy = policySkipField(parsed.data.outcome, parsed.data.reason);
          const fields = [COUNTER[parsed.data.outcome], ...(policy === undefined ? [] : [policy])];
          await deps.store.attribute(target, fields, { once });
          message.ack();
        } catch (error) {
          deps.log.warn({ err: error }, "campaign outcome not counted; redelivering");
          message.nak(1000);
        }
      }
    },
  };
}
