// Process metrics every Relais process exports: memory, CPU, event-loop delay. prom-client's
// default set is not used: three of its gauges end in _total, which promtool rejects.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Gauge } from "prom-client";
import type { Registry } from "prom-client";

/** Registers relais_<subsystem>_process_* metrics on `registry`; values are read at scrape time. */
export function registerProcessMetrics(registry: Registry, subsystem: string): void {
  const name = (suffix: string): string => `relais_${subsystem}_process_${suffix}`;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  new Gauge({
    name: name("resident_memory_bytes"),
    help: "Resident set size of the process.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: name("heap_used_bytes"),
    help: "V8 heap in use.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Gauge({
    name: name("cpu_seconds"),
    help: "User plus system CPU time consumed by the process since it started.",
    registers: [registry],
    collect() {
      const usage = process.cpuUsage();
      this.set((usage.user + usage.system) / 1e6);
    },
  });
  new Gauge({
    name: name("event_loop_delay_p99_seconds"),
    help: "99th percentile of event-loop delay since the previous scrape.",
    registers: [registry],
    collect() {
      this.set(delay.percentile(99) / 1e9);
      delay.reset();
    },
  });
}
