// The ingest pool's metrics, on its own registry. Labels are bounded: namespace, route (the
// route pattern, never the URL), method, status class, outcome and reason from closed sets.
import { Counter, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "#runtime";

export const EventOutcomes = { accepted: "accepted", duplicate: "duplicate", rejected: "rejected" } as const;
export const RejectReasons = { invalid: "invalid", tooLarge: "too_large", unavailable: "unavailable" } as const;

export interface IngestMetrics {
  registry: Registry;
  requests: Counter<"route" | "method" | "status">;
  duration: Histogram<"route" | "method">;
  events: Counter<"namespace" | "outcome" | "reason">;
  purged: Counter<"namespace">;
  feedback: Counter<"namespace" | "outcome">;
}

export function createIngestMetrics(): IngestMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry, "ingest");
  return {
    registry,
    requests: new Counter({
      name: "relais_ingest_http_requests_total",
      help: "HTTP requests handled, by route pattern, method and status code.",
      labelNames: ["route", "method", "status"],
      registers: [registry],
    }),
    duration: new Histogram({
      name: "relais_ingest_http_request_duration_seconds",
      help: "Time to handle an HTTP request, by route pattern.",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    events: new Counter({
      name: "relais_ingest_events_total",
      help: "Tracked events by outcome (accepted, duplicate, rejected) and rejection reason.",
      labelNames: ["namespace", "outcome", "reason"],
      registers: [registry],
    }),
    purged: new Counter({
      name: "relais_ingest_profiles_purged_total",
      help: "Profiles deleted by the inactive-profile purge.",
      labelNames: ["namespace"],
      registers: [registry],
    }),
    feedback: new Counter({
      name: "relais_ingest_feedback_total",
      help: "Delivery and recipient feedback applied to profiles, by outcome.",
      labelNames: ["namespace", "outcome"],
      registers: [registry],
    }),
  };
}
