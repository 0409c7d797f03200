// The front door of workers/engage: Automations and Campaigns.
export { AutomationEngine, dueTime, durationMs } from "./automations/engine.ts";
export { AutomationRegistry, compileAutomation } from "./automations/registry.ts";
export { AutomationStore, instanceKey, LEASE_MS } from "./automations/store.ts";
export { TimerPoller } from "./automations/timers.ts";
export { compileCampaign, decideProfile } from "./campaigns/audience.ts";
export { campaignFeedbackConsumer } from "./campaigns/feedback.ts";
export { createCampaignMetrics } from "./campaigns/metrics.ts";
export { planRun } from "./campaigns/planner.ts";
export { CampaignRunner } from "./campaigns/runner.ts";
export { dueRun, runIdFor } from "./campaigns/schedule.ts";
export { startCampaigns, systemClock } from "./campaigns/start.ts";
export { CampaignStore } from "./campaigns/store.ts";
export { engageConfigSchema, loadEngageConfig } from "./config.ts";
export { eventsConsumer } from "./events.ts";
export { runEngage, watchAutomations } from "./main.ts";
export { createEngageMetrics, registerAutomationMetrics } from "./metrics.ts";

export type { CompiledCampaign } from "./campaigns/audience.ts";
export type { CampaignMetrics } from "./campaigns/metrics.ts";
export type { Clock, PlanEnd } from "./campaigns/planner.ts";
export type { CampaignRunnerDeps, CampaignRunnerOptions } from "./campaigns/runner.ts";
export type { ScheduleState } from "./campaigns/schedule.ts";
export type { EngineDeps } from "./automations/engine.ts";
export type { CompiledAutomation } from "./automations/registry.ts";
export type { Instance } from "./automations/store.ts";
export type { EngageConfig } from "./config.ts";
export type { EngageOverrides } from "./main.ts";
export type { EngageMetrics } from "./metrics.ts";
