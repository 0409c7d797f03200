// Consumes RELAIS_EVENTS with the durable consumer `engage` and hands each event to the automation
// engine: events of different profiles concurrently (up to `concurrency`), those of one profile in
// stream order, since a cancel must see the instance its profile's earlier event started. An event
// is acked once applied; a Redis or NATS failure naks it for a retry, which is safe: instances are
// keyed by event id and sends by instance.
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { ConsumerNames, eventMessageSchema, eraseMessageSchema, ERASE_EVENT, Streams, Subjects } from "#runtime";
import type { JsMsg } from "@nats-io/jetstream";
import type { EventMessage, Logger, Runnable } from "#runtime";
import type { AutomationEngine } from "./automations/engine.ts";
import { KeyedQueue } from "./keyed-queue.ts";
import type { EngageMetrics } from "./metrics.ts";

export interface EventsDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  engine: AutomationEngine;
  metrics: EngageMetrics;
  log: Logger;
  /** Events being applied at once (default 64), never two of one profile. */
  concurrency?: number;
}

/** An erase announcement as the engine's event shape (its name is the reserved $erase). */
function toEvent(subject: string, data: unknown): EventMessage | undefined {
  if (subject.endsWith(`.${ERASE_EVENT}`)) {
    const erase = eraseMessageSchema.safeParse(data);
    if (!erase.success) return undefined;
    const { namespace, profileId, erasedAt } = erase.data;
    return {
      id: `erase-${erasedAt}`,
      namespace,
      profileId,
      name: ERASE_EVENT,
      timestamp: erasedAt,
      receivedAt: erasedAt,
      attributes: {},
    };
  }
  const parsed = eventMessageSchema.safeParse(data);
  return parsed.success ? parsed.data : undefined;
}

/** Applies one event and acks it, or naks it for a retry; never rejects. */
async function apply(deps: EventsDeps, event: EventMessage, message: JsMsg): Promise<void> {
  try {
    await deps.engine.handleEvent(event);
    deps.metrics.events.inc({ outcome: "processed" });
    message.ack();
  } catch (error) {
    deps.log.warn({ err: error, namespace: event.namespace }, "event not applied; redelivering");
    deps.metrics.events.inc({ outcome: "retried" });
    message.nak(1000);
  }
}

function parse(message: JsMsg): EventMessage | undefined {
  let data: unknown;
  try {
    data = message.json();
  } catch {
    data = undefined;
  }
  return toEvent(message.subject, data);
}

export function eventsConsumer(deps: EventsDeps): Runnable {
  return {
    async run(signal) {
      await deps.jsm.consumers
        .add(Streams.events, {
          durable_name: ConsumerNames.engage,
          filter_subject: Subjects.allEvents,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.New,
          max_ack_pending: 10_000,
        })
        .catch(() => undefined);
      const consumer = await deps.js.consumers.get(Streams.events, ConsumerNames.engage);
      const messages = await consumer.consume({ max_messages: 512 });
      signal.addEventListener("abort", () => void messages.close(), { once: true });
      const queue = new KeyedQueue(deps.concurrency ?? 64);
      for await (const message of messages) {
        const event = parse(message);
        if (event === undefined) {
          deps.log.warn({ subject: message.subject, seq: message.seq }, "malformed event dropped");
          deps.metrics.events.inc({ outcome: "malformed" });
          message.term();
          continue;
        }
        await queue.add(`${event.namespace}/${event.profileId}`, () => apply(deps, event, message));
      }
      // Drain: the events in hand are applied (and acked) before the connections close.
      await queue.drain();
    },
  };
}
