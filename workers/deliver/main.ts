// `relais deliver`: the delivery pool of one Sender.
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  connectNats,
  connectRedis,
  createLogger,
  ensureStreams,
  openConfigBucket,
  startOpsServer,
  Subjects,
} from "#runtime";
import type { Logger } from "#runtime";
import { buildChannel } from "./channels/build.ts";
import { loadDeliverConfig } from "./config.ts";
import { ConfigView } from "./config-view.ts";
import type { ChannelFactory } from "./config-view.ts";
import { ensureSenderConsumer } from "./consumer.ts";
import { createDeliverMetrics } from "./metrics.ts";
import { DeliveryPipeline } from "./pipeline.ts";
import { PolicyStage } from "./policy/stage.ts";
import { chainSecrets, dirSecrets, envSecrets } from "./secrets.ts";
import { DeliverStore } from "./store.ts";

export interface DeliverOverrides {
  /** Replaces the channel built from the Sender (benchmarks use a null channel). */
  makeChannel?: ChannelFactory;
  /** Called once the ops server listens, with its URL. */
  onListening?: (url: string) => void;
  log?: Logger;
  /** The pipeline's clock (send policies, feedback times): tests move it. */
  now?: () => Date;
  /** How soon a held send looks again (send policies); tests that move the clock set it low. */
  holdRecheckMs?: number;
}

/** Serves until `signal` aborts, then drains: the fetched batch finishes, connections close. */
export async function runDeliver(
  env: Record<string, string | undefined>,
  signal: AbortSignal,
  overrides: DeliverOverrides = {},
): Promise<void> {
  const config = loadDeliverConfig(env);
  const log =
    overrides.log ??
    createLogger({ name: "relais-deliver", level: config.logLevel }).child({
      namespace: config.namespace,
      sender: config.sender,
    });
  const secrets =
    config.secretsDir === undefined ? envSecrets(env) : chainSecrets(dirSecrets(config.secretsDir), envSecrets(env));
  const ca = config.caFile === undefined ? undefined : await readFile(config.caFile, "utf8");
  const nc = await connectNats(config.natsUrl, `relais-deliver-${config.sender}`);
  const redis = connectRedis(config.redisUrl, `relais-deliver-${config.sender}`, (error) => {
    log.warn({ err: error }, "redis connection error");
  });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const kv = await openConfigBucket(nc);
  const consumer = await ensureSenderConsumer(js, jsm, config.namespace, config.sender);
  const view = new ConfigView({
    kv,
    namespace: config.namespace,
    sender: config.sender,
    makeChannel: overrides.makeChannel ?? ((spec) => buildChannel(spec, secrets, { ca })),
    log,
  });
  const sender = await view.sender();
  const metrics = createDeliverMetrics({
    namespace: config.namespace,
    sender: config.sender,
    channel: sender?.spec.channel ?? "email",
  });
  const pipeline = new DeliveryPipeline({
    namespace: config.namespace,
    sender: config.sender,
    consumer,
    store: new DeliverStore(redis, `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`),
    config: view,
    metrics,
    log,
    links: { publicBaseUrl: config.publicBaseUrl, tokenSecret: config.tokenSecret },
    policy: new PolicyStage({
      redis,
      namespace: config.namespace,
      sender: config.sender,
      decisions: metrics.policyDecisions,
      now: overrides.now ?? (() => new Date()),
      ...(overrides.holdRecheckMs !== undefined && { holdRecheckMs: overrides.holdRecheckMs }),
    }),
    ...(overrides.now !== undefined && { now: overrides.now }),
    feedback: async (message, messageId) => {
      await js.publish(Subjects.feedback(message.namespace, message.outcome), JSON.stringify(message), {
        msgID: messageId,
      });
    },
  });
  const ops = await startOpsServer({
    registry: metrics.registry,
    isReady: () => pipeline.ready && !signal.aborted,
    host: config.host,
    port: config.port,
  });
  overrides.onListening?.(ops.url);
  log.info({ ops: ops.url }, "deliver pool started");
  await Promise.all([pipeline.run(signal), view.run(signal)]);
  log.info("drained");
  const state = await view.sender();
  if (state?.channel.kind === "built") await state.channel.channel.close();
  await ops.close();
  await nc.drain();
  await redis.quit();
}
