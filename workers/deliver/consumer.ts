// The durable pull consumer of one Sender's subject on RELAIS_SENDS. The operator creates it in a
// cluster; the pool ensures it too, so local mode and tests need no operator.
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type { Consumer, JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { ConsumerNames, Streams, Subjects } from "#runtime";

/** How long a fetched job may stay unacked before JetStream redelivers it. */
export const ACK_WAIT_MS = 60_000;

/** The Sender's own subject (automations) and everything below it (campaign runs). */
function senderSubjects(namespace: string, sender: string): string[] {
  return [Subjects.send(namespace, sender), `${Subjects.send(namespace, sender)}.>`];
}

export async function ensureSenderConsumer(
  js: JetStreamClient,
  jsm: JetStreamManager,
  namespace: string,
  sender: string,
): Promise<Consumer> {
  const name = ConsumerNames.deliver(namespace, sender);
  await jsm.consumers
    .add(Streams.sends, {
      durable_name: name,
      filter_subjects: senderSubjects(namespace, sender),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ACK_WAIT_MS * 1_000_000,
      max_ack_pending: 20_000,
    })
    .catch(async (error: unknown) => {
      // It exists already (possibly created by the operator with its own limits): use it as is,
      // but make it take campaign jobs if it predates their subjects.
      const info = await jsm.consumers.info(Streams.sends, name).catch(() => {
        throw error;
      });
      const filters = info.config.filter_subjects ?? [info.config.filter_subject ?? ""];
      if (!filters.includes(`${Subjects.send(namespace, sender)}.>`)) {
        // update() merges into the current config: the single filter must be cleared.
        await jsm.consumers.update(Streams.sends, name, {
          filter_subject: "",
          filter_subjects: senderSubjects(namespace, sender),
        });
      }
    });
  return js.consumers.get(Streams.sends, name);
}
