// The whole pipeline, each pool in its own process as in a cluster, delivering to a null transport:
//  - events: HTTP POST /v1/events (a `relais ingest` process) → an Automation that sends at once (a
//    `relais engage` process) → a deliver replica (runDeliver with the null channel, in a child of
//    this script). Latency is per event, from the POST that carried it to the null transport's send
//    (the event carries its POST time; the Automation's subject renders it).
//  - campaign: N profiles seeded into Redis, a Campaign over all of them published to the config KV
//    (engage plans and enqueues it) → the same deliver replica. Timed from the KV put to the run's
//    enqueue end and to the last send.
// Used by test/bench/all.ts (`npm run bench`); `node pipeline.ts deliver <config>` is the replica.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { KV } from "@nats-io/kv";
import type { Redis } from "ioredis";
import { automationSpecSchema, campaignSpecSchema, senderSpecSchema } from "#crds";
import { runDeliver } from "#deliver";
import type { Channel, RenderedMessage } from "#deliver";
import { freePort, waitUntil } from "#harness";
import { hashSecret, ProfileStore } from "#ingest";
import { ConfigKeys, createLogger, readCampaignRuns } from "#runtime";
import { seedProfiles } from "../fixtures/campaigns.ts";
import { nextMessage, stopChild } from "./support.ts";

export interface PipelineContext {
  natsUrl: string;
  redisUrl: string;
  redis: Redis;
  kv: KV;
  timeoutS: number;
}

export interface Quantiles {
  p50: number;
  p99: number;
}

export interface PipelineResult {
  messages: number;
  seconds: number;
  perSecond: number;
  /** Per message, event POST → null transport (events pipeline only). */
  latencyMs?: Quantiles;
  /** KV put → the run's enqueue end (campaign pipeline only). */
  enqueueSeconds?: number;
  error?: string;
}

const SENDER = "mail";
const TOKEN_SECRET = "bench-token-secret-of-at-least-32-characters";
const CONCURRENCY = 256;
const WARMUP = 100;
const root = join(import.meta.dirname, "..", "..");

type ReplicaMessage =
  | { type: "listening" }
  | { type: "progress"; sent: number }
  | { type: "done"; sent: number; latencyMs: Quantiles | undefined };

interface ReplicaConfig {
  env: Record<string, string>;
  expect: number;
  /** Latencies are kept from this send on (the warm-up's are not). */
  measureFrom: number;
}

export function quantiles(values: number[]): Quantiles | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

// ---------------------------------------------------------------------------------------------
// The replica child: runDeliver with a channel that counts, and times subjects "t=<epoch ms>"

function latencyChannel(onSent: (latencyMs: number | undefined) => void): Channel {
  return {
    send: async (message: RenderedMessage) => {
      const match = message.kind === "email" ? /^t=(\d+)$/.exec(message.subject) : null;
      onSent(match?.[1] === undefined ? undefined : Date.now() - Number(match[1]));
      return { kind: "sent" };
    },
    close: async () => {},
  };
}

async function replica(config: ReplicaConfig): Promise<void> {
  const send = (message: ReplicaMessage): void => {
    process.send?.(message);
  };
  process.on("disconnect", () => process.exit(1));
  const stop = new AbortController();
  const latencies: number[] = [];
  let sent = 0;
  const channel = latencyChannel((latency) => {
    sent += 1;
    if (latency !== undefined && sent > config.measureFrom) latencies.push(latency);
    if (sent === config.expect) send({ type: "done", sent, latencyMs: quantiles(latencies) });
  });
  const progress = setInterval(() => {
    send({ type: "progress", sent });
  }, 50);
  process.on("SIGTERM", () => {
    clearInterval(progress);
    stop.abort();
  });
  await runDeliver(config.env, stop.signal, {
    log: createLogger({ name: "relais-deliver-bench", level: "warn" }),
    makeChannel: async () => ({ kind: "built", channel }),
    onListening: () => {
      send({ type: "listening" });
    },
  });
}

function spawnReplica(context: PipelineContext, config: Omit<ReplicaConfig, "env"> & { namespace: string }) {
  const env = {
    RELAIS_NATS_URL: context.natsUrl,
    RELAIS_REDIS_URL: context.redisUrl,
    RELAIS_NAMESPACE: config.namespace,
    RELAIS_SENDER: SENDER,
    RELAIS_HOST: "127.0.0.1",
    RELAIS_PORT: "0",
    RELAIS_TOKEN_SECRET: TOKEN_SECRET,
  };
  const payload: ReplicaConfig = { env, expect: config.expect, measureFrom: config.measureFrom };
  return spawn(process.execPath, [import.meta.filename, "deliver", JSON.stringify(payload)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** Resolves once the replica reported at least `count` sends. */
async function sentAtLeast(child: ChildProcess, count: number, timeoutMs: number): Promise<void> {
  for (;;) {
    const progress = await nextMessage<ReplicaMessage, "progress">(child, "progress", timeoutMs);
    if (progress.sent >= count) return;
  }
}

// ---------------------------------------------------------------------------------------------
// relais processes

interface Pool {
  child: ChildProcess;
  url: string;
}

async function spawnRelais(command: "ingest" | "engage", env: Record<string, string>): Promise<Pool> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, "bin", "relais.ts"), command], {
    env: { PATH: process.env.PATH ?? "", ...env, RELAIS_HOST: "127.0.0.1", RELAIS_PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  const reason = await waitUntil(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true, {
    timeoutMs: 30_000,
    intervalMs: 50,
  });
  if (reason !== "") {
    await stopChild(child, 1000);
    throw new Error(`relais ${command} was not ready: ${reason}`);
  }
  return { child, url };
}

async function putSender(kv: KV, namespace: string): Promise<void> {
  const spec = senderSpecSchema.parse({
    channel: "email",
    email: {
      from: { address: "news@shop.example", name: "Shop" },
      // The replica replaces the channel; the transport only makes a valid Sender.
      transport: { smtp: { host: "127.0.0.1", port: 25, tls: "none" } },
    },
    pool: { concurrency: CONCURRENCY },
  });
  await kv.put(ConfigKeys.of(namespace, "Sender", SENDER), JSON.stringify({ generation: 1, spec }));
}

const freshNamespace = (label: string): string => `bench-${label}-${Date.now().toString(36)}`;

/** Runs `task` with the processes started by `start`, stopping every one of them afterwards. */
async function withProcesses<T>(start: (started: ChildProcess[]) => Promise<T>): Promise<T> {
  const started: ChildProcess[] = [];
  try {
    return await start(started);
  } finally {
    for (const child of started.reverse()) await stopChild(child, 10_000);
  }
}

// ---------------------------------------------------------------------------------------------
// Events: ingest → automation → deliver

interface EventLoad {
  url: string;
  auth: string;
  profiles: number;
  events: number;
  prefix: string;
}

/** POSTs `events` events in requests of 100, 8 in flight; each event carries its POST time. */
async function postEvents(load: EventLoad): Promise<void> {
  const perRequest = 100;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < load.events) {
      const from = next;
      next = Math.min(load.events, next + perRequest);
      const t = Date.now();
      const events = [];
      for (let i = from; i < next; i++)
        events.push({
          profileId: `p${i % load.profiles}`,
          name: "ordered",
          id: `${load.prefix}-${i}`,
          attributes: { t },
        });
      const response = await fetch(`${load.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: load.auth },
        body: JSON.stringify({ events }),
      });
      if (response.status !== 202)
        throw new Error(`POST /v1/events answered ${response.status}: ${await response.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

async function prepareEvents(context: PipelineContext, namespace: string, profiles: number): Promise<void> {
  await putSender(context.kv, namespace);
  const spec = automationSpecSchema.parse({
    senderRef: { name: SENDER },
    trigger: { event: "ordered" },
    message: {
      email: { subject: "t={{ trigger.attributes.t }}", html: "<p>Thanks, {{ profile.attributes.firstName }}.</p>" },
    },
  });
  await context.kv.put(ConfigKeys.of(namespace, "Automation", "thanks"), JSON.stringify({ generation: 1, spec }));
  const store = new ProfileStore(context.redis);
  for (let start = 0; start < profiles; start += 1000) {
    const window: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(profiles, start + 1000); i++)
      window.push(
        store.identify(namespace, `p${i}`, {
          email: `p${i}@shop.example`,
          emailSubscription: { status: "subscribed", source: "bench" },
          attributes: { firstName: `Ann${i % 100}` },
        }),
      );
    await Promise.all(window);
  }
}

/** Events POSTed to a `relais ingest` process until every one is delivered (after a warm-up of 100). */
export async function eventsPipeline(
  context: PipelineContext,
  load: { events: number; profiles: number },
): Promise<PipelineResult> {
  const namespace = freshNamespace("pipeline-events");
  await prepareEvents(context, namespace, load.profiles);
  const secret = randomBytes(24).toString("base64url");
  const common = { RELAIS_NATS_URL: context.natsUrl, RELAIS_REDIS_URL: context.redisUrl, RELAIS_LOG_LEVEL: "warn" };
  return withProcesses(async (started) => {
    const deliver = spawnReplica(context, { namespace, expect: WARMUP + load.events, measureFrom: WARMUP });
    started.push(deliver);
    await nextMessage<ReplicaMessage, "listening">(deliver, "listening", 30_000);
    const engage = await spawnRelais("engage", common);
    started.push(engage.child);
    const ingest = await spawnRelais("ingest", {
      ...common,
      RELAIS_TOKEN_SECRET: TOKEN_SECRET,
      RELAIS_API_KEYS: JSON.stringify([{ keyId: "bench", namespace, secretSha256: hashSecret(secret) }]),
      RELAIS_RATE_LIMIT_PER_SECOND: "10000000",
      RELAIS_RATE_LIMIT_BURST: "10000000",
    });
    started.push(ingest.child);
    const target = { url: ingest.url, auth: `Bearer bench.${secret}`, profiles: load.profiles };
    await postEvents({ ...target, events: WARMUP, prefix: "warmup" });
    await sentAtLeast(deliver, WARMUP, context.timeoutS * 1000);
    const begun = performance.now();
    const done = nextMessage<ReplicaMessage, "done">(deliver, "done", context.timeoutS * 1000);
    // Awaited below; a failure before then is reported there, not as an unhandled rejection.
    done.catch(() => undefined);
    await postEvents({ ...target, events: load.events, prefix: "load" });
    const finished = await done;
    const seconds = (performance.now() - begun) / 1000;
    return {
      messages: load.events,
      seconds,
      perSecond: load.events / seconds,
      ...(finished.latencyMs !== undefined && { latencyMs: finished.latencyMs }),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Campaign: N profiles → engage → deliver

/** Seeds `count` profiles ("u0".."u<count-1>", one address each) in a fresh namespace. */
export async function seedCampaignAudience(context: PipelineContext, count: number): Promise<string> {
  const namespace = freshNamespace("pipeline-campaign");
  await seedProfiles(context.redis, namespace, { count });
  return namespace;
}

export const CAMPAIGN_MESSAGE = {
  email: {
    subject: "Black Friday, {{ profile.attributes.points }} points",
    html: "<p>-30% on everything, {{ profile.email }}.</p>",
  },
};

/** A Campaign over every profile of `namespace`, from the KV put until its last send. */
export async function campaignPipeline(
  context: PipelineContext,
  audience: { namespace: string; profiles: number },
): Promise<PipelineResult> {
  const { namespace, profiles } = audience;
  await putSender(context.kv, namespace);
  const common = { RELAIS_NATS_URL: context.natsUrl, RELAIS_REDIS_URL: context.redisUrl, RELAIS_LOG_LEVEL: "warn" };
  return withProcesses(async (started) => {
    const deliver = spawnReplica(context, { namespace, expect: profiles, measureFrom: 0 });
    started.push(deliver);
    await nextMessage<ReplicaMessage, "listening">(deliver, "listening", 30_000);
    const engage = await spawnRelais("engage", common);
    started.push(engage.child);
    const done = nextMessage<ReplicaMessage, "done">(deliver, "done", context.timeoutS * 1000);
    // Awaited below; a failure before then is reported there, not as an unhandled rejection.
    done.catch(() => undefined);
    const spec = campaignSpecSchema.parse({ senderRef: { name: SENDER }, message: CAMPAIGN_MESSAGE });
    const begun = performance.now();
    await context.kv.put(ConfigKeys.of(namespace, "Campaign", "black-friday"), JSON.stringify({ generation: 1, spec }));
    const enqueued = await waitUntil(
      async () =>
        (await readCampaignRuns(context.redis, { namespace, campaign: "black-friday" }))[0]?.status === "completed",
      { timeoutMs: context.timeoutS * 1000, intervalMs: 100 },
    );
    const enqueueSeconds = (performance.now() - begun) / 1000;
    await done;
    const seconds = (performance.now() - begun) / 1000;
    return {
      messages: profiles,
      seconds,
      perSecond: profiles / seconds,
      enqueueSeconds,
      ...(enqueued !== "" && { error: `the run did not complete: ${enqueued}` }),
    };
  });
}

if (process.argv[2] === "deliver") await replica(JSON.parse(process.argv[3] ?? "{}") as ReplicaConfig);
