// The front door of workers/ingest: the Profiles & Data API.
export { buildApp } from "./app.ts";
export { ApiKeys, hashSecret } from "./auth.ts";
export { ingestConfigSchema, loadIngestConfig } from "./config.ts";
export { FEEDBACK_CONSUMER, feedbackConsumer } from "./feedback.ts";
export { runIngest } from "./main.ts";
export { createIngestMetrics } from "./metrics.ts";
export { ProfileLimits, ProfileStore, pushField } from "./profiles/store.ts";
export { jetStreamPublisher } from "./publisher.ts";
export { inactivePurge, purgeOnce } from "./purge.ts";
export { RateLimiter } from "./ratelimit.ts";
export { campaignRoutes, redisCampaignReports, reportsCsv } from "./routes/campaigns.ts";
export { LIMITS } from "./schemas.ts";
export { createIngestService, normaliseEmail } from "./service.ts";

export type { AppDeps } from "./app.ts";
export type { ApiKeyEntry, Caller } from "./auth.ts";
export type { IngestConfig } from "./config.ts";
export type { IngestMetrics } from "./metrics.ts";
export type { ProfilePatch, ProfileView } from "./profiles/store.ts";
export type { Publisher } from "./publisher.ts";
export type { CampaignReports } from "./routes/campaigns.ts";
export type { IngestService } from "./service.ts";
