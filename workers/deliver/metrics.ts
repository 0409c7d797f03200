// The deliver pool's metrics, on its own registry. Labels: namespace, sender, channel, outcome,
// reason — closed sets, never an address or a profile id.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "#runtime";

export const DeliverOutcomes = {
  sent: "sent",
  failed: "failed",
  bounced: "bounced",
  expired: "expired",
  skipped: "skipped",
  duplicate: "duplicate",
  retried: "retried",
  /** Held by a send policy (freeze, quiet hours, pause): back in the queue until the hold ends. */
  held: "held",
} as const;
export type DeliverOutcome = (typeof DeliverOutcomes)[keyof typeof DeliverOutcomes];

export const SkipReasons = {
  optOut: "opt_out",
  suppressed: "suppressed",
  noProfile: "no_profile",
  noAddress: "no_address",
  noSubscription: "no_subscription",
  /** Send policies: a frequency cap was full, the profile is in the control group, quiet hours with action drop. */
  capped: "capped",
  holdout: "holdout",
  quietHours: "quiet_hours_dropped",
} as const;
export type SkipReason = (typeof SkipReasons)[keyof typeof SkipReasons];

export interface DeliverMetrics {
  registry: Registry;
  /** The channel of the pool's Sender, for the channel label. */
  channel: string;
  messages: Counter<"namespace" | "sender" | "channel" | "outcome">;
  skipped: Counter<"namespace" | "sender" | "reason">;
  sendDuration: Histogram<"namespace" | "sender" | "channel">;
  inflight: Gauge<"namespace" | "sender">;
  rateLimitWait: Counter<"namespace" | "sender">;
  policyDecisions: Counter<"namespace" | "policy" | "reason">;
}

export function createDeliverMetrics(labels: { namespace: string; sender: string; channel: string }): DeliverMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry, "deliver");
  const metrics: DeliverMetrics = {
    registry,
    channel: labels.channel,
    messages: new Counter({
      name: "relais_deliver_messages_total",
      help: "Send jobs by final outcome (sent, failed, bounced, expired, skipped, duplicate) or retried.",
      labelNames: ["namespace", "sender", "channel", "outcome"],
      registers: [registry],
    }),
    skipped: new Counter({
      name: "relais_deliver_skipped_total",
      help: "Send jobs skipped without sending, by reason.",
      labelNames: ["namespace", "sender", "reason"],
      registers: [registry],
    }),
    sendDuration: new Histogram({
      name: "relais_deliver_send_duration_seconds",
      help: "Time the channel took to accept (or refuse) one message.",
      labelNames: ["namespace", "sender", "channel"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    inflight: new Gauge({
      name: "relais_deliver_inflight_messages",
      help: "Messages being rendered or sent right now.",
      labelNames: ["namespace", "sender"],
      registers: [registry],
    }),
    rateLimitWait: new Counter({
      name: "relais_deliver_rate_limit_wait_seconds_total",
      help: "Time batches spent waiting for rate-limit tokens.",
      labelNames: ["namespace", "sender"],
      registers: [registry],
    }),
    policyDecisions: new Counter({
      name: "relais_policy_decisions_total",
      help: "Sends a send policy held, dropped or skipped, by policy (or Campaign/Automation for holdout, Sender/Campaign for paused) and reason.",
      labelNames: ["namespace", "policy", "reason"],
      registers: [registry],
    }),
  };
  // Known label sets start at 0, so rates and alerts see the series before the first event.
  for (const outcome of Object.values(DeliverOutcomes)) metrics.messages.inc({ ...labels, outcome }, 0);
  for (const reason of Object.values(SkipReasons))
    metrics.skipped.inc({ namespace: labels.namespace, sender: labels.sender, reason }, 0);
  metrics.inflight.set({ namespace: labels.namespace, sender: labels.sender }, 0);
  metrics.rateLimitWait.inc({ namespace: labels.namespace, sender: labels.sender }, 0);
  return metrics;
}
