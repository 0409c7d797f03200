// The JetStream streams Relais relies on. The operator owns them in a cluster; every process
// ensures them at start too, so local mode and tests need no operator. Idempotent.
import { DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type { ConsumerConfig, JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import { ConsumerNames, Streams, Subjects } from "./subjects.ts";

const NS_PER_MS = 1_000_000;
const DAY_MS = 24 * 60 * 60 * 1000;

export function streamConfigs(): (Partial<StreamConfig> & { name: string })[] {
  return [
    {
      name: Streams.events,
      subjects: [Subjects.allEvents],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: 7 * DAY_MS * NS_PER_MS,
      // Retried batches (same event ids) within this window are stored once.
      duplicate_window: 60 * 60 * 1000 * NS_PER_MS,
      discard: DiscardPolicy.Old,
    },
    {
      name: Streams.feedback,
      subjects: [Subjects.allFeedback],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: 7 * DAY_MS * NS_PER_MS,
      duplicate_window: 60 * 60 * 1000 * NS_PER_MS,
    },
    {
      name: Streams.sends,
      subjects: [Subjects.allSends],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: 60 * 60 * 1000 * NS_PER_MS,
    },
  ];
}

/** Creates each stream that does not exist; leaves existing ones as they are. */
export async function ensureStreams(jsm: JetStreamManager): Promise<void> {
  for (const config of streamConfigs()) {
    const name = config.name;
    try {
      await jsm.streams.info(name);
    } catch {
      await jsm.streams.add(config).catch(async (error: unknown) => {
        // Another process created it between our check and our add.
        await jsm.streams.info(name).catch(() => {
          throw error;
        });
      });
    }
  }
}

/** How long a fetched send job may stay unacked before JetStream redelivers it. */
export const SEND_ACK_WAIT_MS = 60_000;

/**
 * The durable pull consumer of one Sender's subject on RELAIS_SENDS. The operator creates it and
 * the deliver pool ensures it too (local tests run pools without an operator): one definition.
 */
export function senderConsumerConfig(
  namespace: string,
  sender: string,
): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: ConsumerNames.deliver(namespace, sender),
    // The Sender's own subject (automations) and everything below it (campaign runs, which have
    // their own subjects so they can be purged).
    filter_subjects: [Subjects.send(namespace, sender), `${Subjects.send(namespace, sender)}.>`],
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: SEND_ACK_WAIT_MS * NS_PER_MS,
    max_ack_pending: 20_000,
  };
}
