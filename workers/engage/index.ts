// The front door of workers/engage: Automations (and, later, Campaigns).
export { AutomationEngine, dueTime, durationMs, fireRule } from "./automations/engine.ts";
export { AutomationRegistry, compileAutomation } from "./automations/registry.ts";
export { AutomationStore, instanceKey, LEASE_MS } from "./automations/store.ts";
export { TimerPoller } from "./automations/timers.ts";
export { engageConfigSchema, loadEngageConfig } from "./config.ts";
export { eventsConsumer } from "./events.ts";
export { AckedPublisher } from "./jetstream.ts";
export { runEngage, watchAutomations } from "./main.ts";
export { createEngageMetrics, registerAutomationMetrics } from "./metrics.ts";

export type { DueBatch, EncodedSendJob, EngineDeps, FireSummary } from "./automations/engine.ts";
export type { CompiledAutomation } from "./automations/registry.ts";
export type { FireDecision, FiredInstance, FireRule, Instance } from "./automations/store.ts";
export type { EngageConfig } from "./config.ts";
export type { EngageOverrides } from "./main.ts";
export type { EngageMetrics } from "./metrics.ts";
