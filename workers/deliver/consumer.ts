// The durable pull consumer of one Sender's subject on RELAIS_SENDS. The operator creates it in a
// cluster; the pool ensures it too, so local mode and tests need no operator.
import type { Consumer, JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { SEND_ACK_WAIT_MS, senderConsumerConfig, Streams } from "#runtime";

/** How long a fetched job may stay unacked before JetStream redelivers it. */
export const ACK_WAIT_MS = SEND_ACK_WAIT_MS;

export async function ensureSenderConsumer(
  js: JetStreamClient,
  jsm: JetStreamManager,
  namespace: string,
  sender: string,
): Promise<Consumer> {
  const config = senderConsumerConfig(namespace, sender);
  const name = config.durable_name;
  await jsm.consumers.add(Streams.sends, config).catch(async (error: unknown) => {
    // It exists already (possibly created by the operator with its own limits): use it as is,
    // but make it take campaign jobs if it predates their subjects.
    const info = await jsm.consumers.info(Streams.sends, name).catch(() => {
      throw error;
    });
    const filters = info.config.filter_subjects ?? [info.config.filter_subject ?? ""];
    const wanted = config.filter_subjects ?? [];
    if (!wanted.every((subject) => filters.includes(subject))) {
      // update() merges into the current config: the single filter must be cleared.
      await jsm.consumers.update(Streams.sends, name, { filter_subject: "", filter_subjects: wanted });
    }
  });
  return js.consumers.get(Streams.sends, name);
}
