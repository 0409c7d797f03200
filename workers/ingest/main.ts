// `relais ingest`: the Profiles & Data API process.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connectNats, connectRedis, createLogger, ensureStreams, openConfigBucket } from "#runtime";
import { buildApp } from "./app.ts";
import { redisCampaignReports } from "./routes/campaigns.ts";
import { ApiKeys } from "./auth.ts";
import { loadIngestConfig } from "./config.ts";
import { feedbackConsumer } from "./feedback.ts";
import { apiKeyWatch } from "./keys-watch.ts";
import { createIngestMetrics } from "./metrics.ts";
import { ProfileStore } from "./profiles/store.ts";
import { jetStreamPublisher } from "./publisher.ts";
import { inactivePurge } from "./purge.ts";
import { RateLimiter } from "./ratelimit.ts";
import { createIngestService } from "./service.ts";

/** Serves until `signal` aborts, then drains: readyz 503, in-flight requests finish, connections close. */
export async function runIngest(env: Record<string, string | undefined>, signal: AbortSignal): Promise<void> {
  const config = loadIngestConfig(env);
  const log = createLogger({ name: "relais-ingest", level: config.logLevel });
  const nc = await connectNats(config.natsUrl, "relais-ingest");
  const redis = connectRedis(config.redisUrl, "relais-ingest");
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const kv = await openConfigBucket(nc);
  const keys = new ApiKeys(config.apiKeys);
  const metrics = createIngestMetrics();
  const store = new ProfileStore(redis);
  const publisher = jetStreamPublisher(js);
  const service = createIngestService({
    store,
    publisher,
    onUnavailable: (dependency, error) => {
      log.warn({ err: error, dependency }, "dependency unavailable");
    },
  });
  let draining = false;
  const app = await buildApp({
    service,
    publisher,
    keys,
    limiter: new RateLimiter({ perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst }),
    metrics,
    tokenSecret: config.tokenSecret,
    campaignReports: redisCampaignReports(redis),
    isReady: () => !draining && redis.status === "ready" && !nc.isClosed(),
    logger: log,
  });
  const workers = new AbortController();
  const background = Promise.all([
    apiKeyWatch({ kv, keys, fixed: config.apiKeys, log }).run(workers.signal),
    feedbackConsumer({ js, jsm, store, metrics, log }).run(workers.signal),
    inactivePurge(
      { store, service, metrics, log },
      { retentionDays: config.retentionDays, intervalMs: config.purgeIntervalMs, batchSize: config.purgeBatchSize },
    ).run(workers.signal),
  ]);
  const address = await app.listen({ host: config.host, port: config.port });
  log.info({ address }, "ingest listening");

  await new Promise<void>((resolve) => {
    signal.addEventListener(
      "abort",
      () => {
        resolve();
      },
      { once: true },
    );
  });
  draining = true;
  log.info("draining");
  await app.close();
  workers.abort();
  await background;
  await nc.drain();
  await redis.quit();
}
