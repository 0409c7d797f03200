// Applies delivery feedback to profiles: a hard bounce or a complaint suppresses the address, a
// complaint also unsubscribes, an expired push subscription is dropped. A Runnable.
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { feedbackMessageSchema, FeedbackOutcomes, Streams } from "#runtime";
import type { FeedbackMessage, Logger, Runnable } from "#runtime";
import type { IngestMetrics } from "./metrics.ts";
import type { ProfileStore } from "./profiles/store.ts";

export const FEEDBACK_CONSUMER = "ingest-feedback";
const APPLIED = [FeedbackOutcomes.bounced, FeedbackOutcomes.complained, FeedbackOutcomes.expired];

export interface FeedbackDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: ProfileStore;
  metrics: IngestMetrics;
  log: Logger;
}

async function apply(store: ProfileStore, message: FeedbackMessage): Promise<void> {
  const { namespace, profileId, address } = message;
  switch (message.outcome) {
    case "bounced":
      if (address !== undefined) await store.suppress(namespace, address, `hard_bounce ${message.reason ?? ""}`.trim());
      return;
    case "complained":
      if (address !== undefined) await store.suppress(namespace, address, "complaint");
      await store.identify(
        namespace,
        profileId,
        { emailSubscription: { status: "unsubscribed", source: "complaint" } },
        { mustExist: true },
      );
      return;
    case "expired":
      if (address !== undefined)
        await store.identify(namespace, profileId, { webPush: { remove: [address] } }, { mustExist: true });
      return;
    case "sent":
    case "failed":
    case "skipped":
    case "opened":
    case "clicked":
    case "unsubscribed":
      // Not subscribed to: the consumer filters on the outcomes above.
      return;
  }
}

export function feedbackConsumer(deps: FeedbackDeps): Runnable {
  return {
    async run(signal) {
      await deps.jsm.consumers
        .add(Streams.feedback, {
          durable_name: FEEDBACK_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subjects: APPLIED.map((outcome) => `relais.feedback.*.${outcome}`),
          max_ack_pending: 1000,
        })
        .catch(() => undefined);
      const consumer = await deps.js.consumers.get(Streams.feedback, FEEDBACK_CONSUMER);
      const messages = await consumer.consume({ max_messages: 256 });
      signal.addEventListener("abort", () => void messages.close(), { once: true });
      for await (const message of messages) await handle(deps, message);
    },
  };
}

async function handle(deps: FeedbackDeps, message: JsMsg): Promise<void> {
  let parsed: FeedbackMessage;
  try {
    parsed = feedbackMessageSchema.parse(message.json());
  } catch (error) {
    deps.log.warn({ err: error, subject: message.subject }, "malformed feedback message dropped");
    message.term();
    return;
  }
  try {
    await apply(deps.store, parsed);
    deps.metrics.feedback.inc({ namespace: parsed.namespace, outcome: parsed.outcome });
    message.ack();
  } catch (error) {
    deps.log.warn({ err: error, outcome: parsed.outcome }, "feedback not applied; redelivering");
    message.nak(1000);
  }
}
