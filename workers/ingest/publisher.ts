// Appends accepted events and feedback to JetStream. Publishes of a batch go out together and are
// awaited together (one window), since awaiting each in turn caps a Node process far below NATS.
import type { JetStreamClient } from "@nats-io/jetstream";
import { ERASE_EVENT, Subjects } from "#runtime";
import type { EraseMessage, EventMessage, FeedbackMessage } from "#runtime";

export interface Publisher {
  /** Resolves once JetStream stored every event (or knew it already); rejects if any failed. */
  events(events: readonly EventMessage[]): Promise<void>;
  erase(message: EraseMessage): Promise<void>;
  feedback(message: FeedbackMessage, messageId?: string): Promise<void>;
}

export function jetStreamPublisher(js: JetStreamClient, timeoutMs = 5000): Publisher {
  return {
    async events(events) {
      await Promise.all(
        events.map((event) =>
          js.publish(Subjects.event(event.namespace, event.name), JSON.stringify(event), {
            msgID: `${event.namespace}:${event.id}`,
            timeout: timeoutMs,
          }),
        ),
      );
    },
    async erase(message) {
      await js.publish(Subjects.event(message.namespace, ERASE_EVENT), JSON.stringify(message), { timeout: timeoutMs });
    },
    async feedback(message, messageId) {
      await js.publish(Subjects.feedback(message.namespace, message.outcome), JSON.stringify(message), {
        timeout: timeoutMs,
        ...(messageId !== undefined && { msgID: messageId }),
      });
    },
  };
}
