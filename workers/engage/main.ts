// `relais engage`: Automations (Campaigns come next), fed by RELAIS_EVENTS and the config KV.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import {
  automationConfigSchema,
  connectNats,
  connectRedis,
  createLogger,
  ensureStreams,
  openConfigBucket,
  parseConfigKey,
  sendMessageId,
  startOpsServer,
} from "#runtime";
import type { Logger } from "#runtime";
import { AutomationEngine } from "./automations/engine.ts";
import { AutomationRegistry, compileAutomation } from "./automations/registry.ts";
import { AutomationStore } from "./automations/store.ts";
import { TimerPoller } from "./automations/timers.ts";
import { loadEngageConfig } from "./config.ts";
import { eventsConsumer } from "./events.ts";
import { startCampaigns } from "./campaigns/start.ts";
import { AckedPublisher } from "./jetstream.ts";
import { createEngageMetrics, registerAutomationMetrics } from "./metrics.ts";

/** Applies one KV entry of an Automation to the registry. */
function applyEntry(registry: AutomationRegistry, log: Logger, entry: KvWatchEntry): void {
  const key = parseConfigKey(entry.key);
  if (key === undefined) return;
  if (entry.operation !== "PUT") {
    registry.remove(key.namespace, key.name);
    return;
  }
  const parsed = automationConfigSchema.safeParse(entry.json());
  if (!parsed.success) {
    log.error({ namespace: key.namespace, automation: key.name }, "automation config in KV is invalid");
    return;
  }
  const compiled = compileAutomation(key.namespace, key.name, parsed.data.generation, parsed.data.spec);
  if (compiled.problems.length > 0) {
    log.warn(
      { namespace: key.namespace, automation: key.name, problems: compiled.problems },
      "automation does not compile",
    );
  }
  registry.put(compiled);
}

/**
 * Keeps `registry` equal to the Automations in the config KV, compiled once per generation.
 * `onLoaded` is called once the values present at start are in: events must not be consumed
 * before, or they would match nothing and be acked, their triggers and cancels lost.
 */
export async function watchAutomations(options: {
  kv: KV;
  registry: AutomationRegistry;
  log: Logger;
  signal: AbortSignal;
  onLoaded?: () => void;
}): Promise<void> {
  const { kv, registry, log, signal } = options;
  const onLoaded = options.onLoaded ?? (() => undefined);
  let initial = 0;
  for await (const _key of await kv.keys("*.Automation.>")) initial++;
  if (initial === 0) onLoaded();
  const watcher = await kv.watch({ key: "*.Automation.>" });
  signal.addEventListener(
    "abort",
    () => {
      watcher.stop();
    },
    { once: true },
  );
  for await (const entry of watcher) {
    applyEntry(registry, log, entry);
    // The values present at start come first; delta counts those still to come, so 0 means
    // caught up (later updates also arrive with 0: calling again is harmless).
    if (entry.delta === 0) onLoaded();
  }
}

export interface EngageOverrides {
  log?: Logger;
  onListening?: (url: string) => void;
  now?: () => number;
}

/** Serves until `signal` aborts, then drains: the event in hand is applied, connections close. */
export async function runEngage(
  env: Record<string, string | undefined>,
  signal: AbortSignal,
  overrides: EngageOverrides = {},
): Promise<void> {
  const config = loadEngageConfig(env);
  const log = overrides.log ?? createLogger({ name: "relais-engage", level: config.logLevel });
  const now = overrides.now ?? Date.now;
  const nc = await connectNats(config.natsUrl, "relais-engage");
  const redis = connectRedis(config.redisUrl, "relais-engage", (error) => {
    log.warn({ err: error }, "redis connection error");
  });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const kv = await openConfigBucket(nc);
  const metrics = createEngageMetrics();
  let ready = false;
  const registry = new AutomationRegistry();
  const publisher = new AckedPublisher(nc);
  const store = new AutomationStore(redis);
  const engine = new AutomationEngine({
    registry,
    store,
    redis,
    now,
    log,
    publish: (subject, job) => publisher.publish(subject, job.json, sendMessageId(job.namespace, job.id)),
  });
  registerAutomationMetrics(metrics.registry, async () =>
    Promise.all(
      registry.all().map(async (automation) => ({
        namespace: automation.namespace,
        automation: automation.name,
        counters: await store.stats(automation.namespace, automation.name),
      })),
    ),
  );
  const timers = new TimerPoller({
    engine,
    store,
    namespaces: () => registry.namespaces(),
    now,
    log,
    intervalMs: config.timerIntervalMs,
    onFired: (count) => {
      metrics.timersFired.inc(count);
    },
  });
  const ops = await startOpsServer({
    registry: metrics.registry,
    isReady: () => ready && !signal.aborted,
    host: config.host,
    port: config.port,
  });
  overrides.onListening?.(ops.url);
  log.info({ ops: ops.url }, "engage started");
  let markLoaded = (): void => undefined;
  const loaded = new Promise<void>((resolve) => {
    markLoaded = resolve;
  });
  const watching = watchAutomations({ kv, registry, log, signal, onLoaded: markLoaded });
  // Consuming events or firing timers before the automations are in would lose triggers,
  // cancels, and instances of automations not yet loaded.
  await Promise.race([loaded, watching]);
  ready = true;
  await Promise.all([
    watching,
    eventsConsumer({ js, jsm, engine, metrics, log }).run(signal),
    timers.run(signal),
    startCampaigns({ config, js, jsm, kv, redis, registry: metrics.registry, log, now }).run(signal),
  ]);
  await ops.close();
  publisher.close();
  await nc.drain();
  await redis.quit();
}
