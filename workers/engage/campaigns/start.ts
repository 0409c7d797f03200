// Wires campaigns into the engage process: the runner (KV watch, schedule, planners) and the
// feedback consumer that fills run reports, as one Runnable.
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import type { Logger, Runnable } from "#runtime";
import type { EngageConfig } from "../config.ts";
import { campaignFeedbackConsumer } from "./feedback.ts";
import { createCampaignMetrics } from "./metrics.ts";
import type { Clock } from "./planner.ts";
import { CampaignRunner } from "./runner.ts";
import { CampaignStore } from "./store.ts";

/** The real clock: sleeps are timers cut short by the signal. */
export function systemClock(now: () => number = Date.now): Clock {
  return {
    now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) {
          resolve();
          return;
        }
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
      }),
  };
}

export function startCampaigns(deps: {
  config: Readonly<EngageConfig>;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: KV;
  redis: Redis;
  registry: Registry;
  log: Logger;
  now: () => number;
}): Runnable {
  const { config, js } = deps;
  const store = new CampaignStore(deps.redis);
  const runner = new CampaignRunner({
    store,
    jsm: deps.jsm,
    kv: deps.kv,
    publish: async (subject, job, msgId) => {
      await js.publish(subject, JSON.stringify(job), { msgID: msgId });
    },
    clock: systemClock(deps.now),
    metrics: createCampaignMetrics(deps.registry),
    log: deps.log.child({ part: "campaigns" }),
    options: {
      tickMs: config.campaignTickMs,
      chunkSize: config.campaignChunkSize,
      runsKept: config.campaignRunsKept,
      leaseMs: config.campaignLeaseMs,
    },
  });
  const feedback = campaignFeedbackConsumer({ js, jsm: deps.jsm, store, log: deps.log });
  return {
    async run(signal) {
      await Promise.all([runner.run(signal), feedback.run(signal)]);
    },
  };
}
