// The engage pool's metrics, on its own registry. Per-automation figures (triggered, waiting,
// sent, skipped by reason) are counted in Redis with the instances and read by the operator.
import { Counter, Gauge, Registry } from "prom-client";
import { registerProcessMetrics } from "#runtime";

export interface EngageMetrics {
  registry: Registry;
  events: Counter<"outcome">;
  timersFired: Counter;
}

/** Per-automation counters as kept in Redis (AutomationStore.stats), read at scrape time. */
export type AutomationCounters = () => Promise<
  { namespace: string; automation: string; counters: Record<string, number> }[]
>;

/** "skipped:past_date" -> "skipped_past_date"; "filteredOut" -> "filtered_out". */
function outcomeLabel(field: string): string {
  return field
    .replace(/[:]/g, "_")
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .toLowerCase();
}

/**
 * Exports the automations' counters: they live in Redis beside the instances (every replica
 * moves them atomically with the state), so the metrics read them when scraped.
 */
export function registerAutomationMetrics(registry: Registry, read: AutomationCounters): void {
  let latest: Awaited<ReturnType<AutomationCounters>> = [];
  let reading: Promise<void> | undefined;
  // A scrape collects both metrics together: they share one read of Redis.
  const refresh = (): Promise<void> =>
    (reading ??= read()
      .then(
        (counters) => {
          latest = counters;
        },
        () => undefined,
      )
      .finally(() => {
        reading = undefined;
      }));
  new Counter({
    name: "relais_engage_automation_instances_total",
    help: "Automation instances by outcome: triggered, filtered_out, cancelled, erased, sent, skipped_<reason>.",
    labelNames: ["namespace", "automation", "outcome"],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const { namespace, automation, counters } of latest) {
        for (const [field, value] of Object.entries(counters)) {
          if (field !== "waiting") this.inc({ namespace, automation, outcome: outcomeLabel(field) }, value);
        }
      }
    },
  });
  new Gauge({
    name: "relais_engage_automation_waiting_instances",
    help: "Automation instances waiting for their timer.",
    labelNames: ["namespace", "automation"],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const { namespace, automation, counters } of latest) {
        this.set({ namespace, automation }, counters.waiting ?? 0);
      }
    },
  });
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
