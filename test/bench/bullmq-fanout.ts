// The campaign fan-out a team would build on BullMQ over the same Redis, kept minimal and fair:
// a producer process reads the audience (the profiles' activity index, 1,000 ids at a time) and
// enqueues one job per profile with Queue.addBulk; a worker process (Worker, concurrency 256 like
// the Sender's pool) loads each profile hash and hands a message to a null transport. It does less
// than Relais per message (no segment, no address dedupe, no template rendering, no send policies,
// no idempotency claim), so the ratio leans in its favour.
// Used by test/bench/all.ts; `node bullmq-fanout.ts produce|work <config>` are its two processes.
import { spawn } from "node:child_process";
import { Queue, Worker } from "bullmq";
import type { ConnectionOptions } from "bullmq";
import { nullChannel } from "#deliver";
import { connectRedis } from "#runtime";
import { nextMessage, stopChild } from "./support.ts";

interface FanoutConfig {
  redisUrl: string;
  namespace: string;
  profiles: number;
  queue: string;
}

type FanoutMessage = { type: "ready" } | { type: "enqueued" } | { type: "done"; completed: number; failed: number };

export interface FanoutResult {
  messages: number;
  seconds: number;
  perSecond: number;
  enqueueSeconds: number;
  /** Jobs that failed instead of completing (not counted in perSecond). */
  failed: number;
}

const CONCURRENCY = 256;
const CHUNK = 1000;

function connection(redisUrl: string): ConnectionOptions {
  const url = new URL(redisUrl);
  // Workers block on Redis: BullMQ requires no per-request retry limit on their connection.
  return { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
}

function send(message: FanoutMessage): void {
  process.send?.(message);
}

async function produce(config: FanoutConfig): Promise<void> {
  const queue = new Queue(config.queue, { connection: connection(config.redisUrl) });
  const redis = connectRedis(config.redisUrl, "bullmq-producer");
  const activity = `relais:{${config.namespace}}:activity`;
  await queue.waitUntilReady();
  await redis.ping();
  // Started and connected before the clock starts: the timed part is the fan-out alone.
  const go = new Promise<void>((resolve) =>
    process.once("message", () => {
      resolve();
    }),
  );
  send({ type: "ready" });
  await go;
  for (let start = 0; start < config.profiles; start += CHUNK) {
    const ids = await redis.zrange(activity, String(start), String(start + CHUNK - 1));
    await queue.addBulk(
      ids.map((profileId) => ({
        name: "send",
        data: { namespace: config.namespace, profileId },
        opts: { jobId: `black-friday-${profileId}`, removeOnComplete: true, removeOnFail: true },
      })),
    );
  }
  send({ type: "enqueued" });
  await queue.close();
  await redis.quit();
}

async function work(config: FanoutConfig): Promise<void> {
  const redis = connectRedis(config.redisUrl, "bullmq-worker");
  const channel = nullChannel();
  let completed = 0;
  let failed = 0;
  const worker = new Worker(
    config.queue,
    async (job) => {
      const { namespace, profileId } = job.data as { namespace: string; profileId: string };
      const profile = await redis.hgetall(`relais:{${namespace}}:p:${profileId}`);
      const email = profile.email ?? "";
      await channel.send({
        kind: "email",
        from: { address: "news@shop.example" },
        to: email,
        subject: `Black Friday, ${profile["a:points"] ?? "0"} points`,
        html: `<p>-30% on everything, ${email}.</p>`,
        text: `-30% on everything, ${email}.`,
        headers: {},
      });
    },
    { connection: connection(config.redisUrl), concurrency: CONCURRENCY },
  );
  // A failed job (e.g. stalled twice under load) ends too: counted, so the run ends and says so.
  const settled = (): void => {
    if (completed + failed === config.profiles) send({ type: "done", completed, failed });
  };
  worker.on("completed", () => {
    completed += 1;
    settled();
  });
  worker.on("failed", () => {
    failed += 1;
    settled();
  });
  await worker.waitUntilReady();
  send({ type: "ready" });
  await new Promise<void>((resolve) => process.once("SIGTERM", resolve));
  await worker.close();
  await redis.quit();
}

/** Worker first, then the producer; timed from the producer's start to the last completed job. */
export async function bullmqFanout(
  settings: { redisUrl: string; namespace: string; profiles: number },
  timeoutS: number,
): Promise<FanoutResult> {
  const config: FanoutConfig = { ...settings, queue: `fanout-${Date.now().toString(36)}` };
  const spawnMode = (mode: "produce" | "work") =>
    spawn(process.execPath, [import.meta.filename, mode, JSON.stringify(config)], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
  const worker = spawnMode("work");
  try {
    await nextMessage<FanoutMessage, "ready">(worker, "ready", 30_000);
    const done = nextMessage<FanoutMessage, "done">(worker, "done", timeoutS * 1000);
    // Awaited below; a failure before then is reported there, not as an unhandled rejection.
    done.catch(() => undefined);
    const producer = spawnMode("produce");
    await nextMessage<FanoutMessage, "ready">(producer, "ready", 30_000);
    const begun = performance.now();
    producer.send({ type: "go" });
    await nextMessage<FanoutMessage, "enqueued">(producer, "enqueued", timeoutS * 1000);
    const enqueueSeconds = (performance.now() - begun) / 1000;
    const { completed, failed } = await done;
    const seconds = (performance.now() - begun) / 1000;
    await stopChild(producer, 5000);
    return { messages: settings.profiles, seconds, perSecond: completed / seconds, enqueueSeconds, failed };
  } finally {
    await stopChild(worker, 10_000);
  }
}

const mode = process.argv[2];
if (mode === "produce" || mode === "work") {
  process.on("disconnect", () => process.exit(1));
  const config = JSON.parse(process.argv[3] ?? "{}") as FanoutConfig;
  await (mode === "produce" ? produce(config) : work(config));
}
