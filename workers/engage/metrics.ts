// The engage pool's metrics, on its own registry. Per-automation figures (triggered, waiting,
// sent, skipped by reason) are counted in Redis with the instances and read by the operator.
import { Counter, Registry } from "prom-client";
import { registerProcessMetrics } from "#runtime";

export interface EngageMetrics {
  registry: Registry;
  events: Counter<"outcome">;
  timersFired: Counter;
}

export function createEngageMetrics(): EngageMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry, "engage");
  const metrics: EngageMetrics = {
    registry,
    events: new Counter({
      name: "relais_engage_events_total",
      help: "Events consumed from RELAIS_EVENTS, by outcome (processed, retried, malformed).",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    timersFired: new Counter({
      name: "relais_engage_timers_fired_total",
      help: "Automation instances fired by their timer.",
      registers: [registry],
    }),
  };
  for (const outcome of ["processed", "retried", "malformed"]) metrics.events.inc({ outcome }, 0);
  return metrics;
}
