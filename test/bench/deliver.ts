// Throughput of ONE deliver replica (runDeliver, in this process) draining a pre-enqueued backlog,
// next to the raw JetStream consume+ack rate on the same server in the same run: a bare nats.js
// loop (durable pull consumer, consume() or fetch() batches, ack each) and `nats bench js`. The
// ratios (replica / bare nats.js consume+ack) are the headline figures.
//
// Run: npm run bench:deliver   (or: node test/bench/deliver.ts)
// Settings (environment): BENCH_MESSAGES (every scenario; default 20000 for the null transport,
// 5000 for SMTP and Web Push), BENCH_NULL_CONCURRENCY (pool.concurrency values of the null runs,
// "64,256"), BENCH_IO_CONCURRENCY (pool.concurrency of the SMTP and Web Push runs, 64),
// BENCH_SMTP_CONNECTIONS (maxConnections, 10), BENCH_TRANSPORTS ("null,smtp,webpush"),
// BENCH_WARMUP_MESSAGES (a discarded null run first, 2000; 0: none), BENCH_TIMEOUT_S (per run, 180),
// BENCH_POLICIES (1: the null run at the highest concurrency again with three SendPolicies that
// apply to every send and hold or skip none — a cap, quiet hours elsewhere in the day, auto-pause —
// to measure the policy stage's cost; 0: not).
//
// Processes: this one owns the harness stack (nats-server, redis-server) and runs the replica; while
// a replica runs, the only other work on its event loop is polling its /metrics every 20 ms and
// sampling the RSS every 10 ms. The SMTP sink and the Web Push endpoint each run in a child process (they
// parse, verify and decrypt every message: that is the receiver's cost, not the replica's). A
// replica run: a fresh namespace, its Sender and Campaign in the config KV, one profile per send
// job, the whole backlog enqueued on relais.sends.<ns>.<sender>; then the clock starts, runDeliver
// is called, and the clock stops when relais_deliver_messages_total{outcome="sent"} reaches the
// count. A bare run times the same way: connect, add the durable consumer, ack every message. A
// watchdog bounds the whole run; figures go to stdout and to bench-results/deliver.json.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { join, relative } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Consumer, JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import webpush from "web-push";
import { campaignSpecSchema, sendPolicySpecSchema, senderSpecSchema } from "#crds";
import type { Message } from "#crds";
import { ACK_WAIT_MS, nullChannel, runDeliver } from "#deliver";
import type { DeliverOverrides } from "#deliver";
import { startSmtpSink, startStack, startWebPushEndpoint, toolPath } from "#harness";
import type { PushSubscriptionJson, Stack } from "#harness";
import { ProfileStore } from "#ingest";
import type { ProfilePatch } from "#ingest";
import {
  ConfigKeys,
  ConsumerNames,
  connectNats,
  connectRedis,
  createLogger,
  ensureStreams,
  openConfigBucket,
  Streams,
  Subjects,
} from "#runtime";
import type { SendJob } from "#runtime";
import { msgsPerSecondOf, natsCli } from "./baselines.ts";
import {
  commandLine,
  cpuSeconds,
  nextMessage,
  numberSetting,
  packageVersion,
  stopChild,
  ticksPerSecond,
} from "./support.ts";

// ---------------------------------------------------------------------------------------------
// Settings

type Transport = "null" | "smtp" | "webpush";
const TRANSPORTS: readonly Transport[] = ["null", "smtp", "webpush"];

interface Settings {
  /** BENCH_MESSAGES when set, for every transport. */
  messages: number | undefined;
  nullConcurrency: number[];
  ioConcurrency: number;
  smtpConnections: number;
  transports: Transport[];
  warmupMessages: number;
  timeoutS: number;
  policies: boolean;
}

function listSetting(name: string, fallback: string): string[] {
  const raw = process.env[name];
  return (raw === undefined || raw === "" ? fallback : raw)
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
}

function readSettings(): Settings {
  const transports = listSetting("BENCH_TRANSPORTS", TRANSPORTS.join(","));
  for (const transport of transports) {
    if (!TRANSPORTS.includes(transport as Transport))
      throw new Error(`BENCH_TRANSPORTS: unknown transport "${transport}" (${TRANSPORTS.join(", ")})`);
  }
  const nullConcurrency = listSetting("BENCH_NULL_CONCURRENCY", "64,256").map(Number);
  if (nullConcurrency.some((value) => !Number.isInteger(value) || value < 1 || value > 1000))
    throw new Error("BENCH_NULL_CONCURRENCY must list integers from 1 to 1000 (the Sender's pool.concurrency range)");
  const messages = process.env.BENCH_MESSAGES;
  return {
    messages:
      messages === undefined || messages === ""
        ? undefined
        : numberSetting("BENCH_MESSAGES", 0, { min: 1, max: 10_000_000 }),
    nullConcurrency,
    ioConcurrency: numberSetting("BENCH_IO_CONCURRENCY", 64, { min: 1, max: 1000 }),
    smtpConnections: numberSetting("BENCH_SMTP_CONNECTIONS", 10, { min: 1, max: 100 }),
    transports: transports as Transport[],
    policies: process.env.BENCH_POLICIES !== "0",
    warmupMessages: numberSetting("BENCH_WARMUP_MESSAGES", 2000, { min: 0, max: 1_000_000 }),
    timeoutS: numberSetting("BENCH_TIMEOUT_S", 180, { min: 10, max: 3600 }),
  };
}

// ---------------------------------------------------------------------------------------------
// The sink child: `node deliver.ts sink <SinkConfig>` runs the SMTP sink or the Web Push endpoint

type SinkConfig = { kind: "smtp" } | { kind: "webpush"; vapidPublicKey: string; subscriptions: number };

type ChildMessage =
  | { type: "ready"; port: number; ca: string; subscriptions: PushSubscriptionJson[] }
  | { type: "count"; received: number; refused: number; errors: number; maxConnections: number };

function send(message: ChildMessage): void {
  if (process.send === undefined) throw new Error("the sink mode is started by the bench itself, with an IPC channel");
  process.send(message);
}

async function sink(config: SinkConfig): Promise<void> {
  // The child exits as soon as the bench that started it is gone.
  process.on("disconnect", () => process.exit(1));
  let count: () => ChildMessage;
  let stop: () => Promise<void>;
  let ready: ChildMessage;
  if (config.kind === "smtp") {
    const smtp = await startSmtpSink({ tls: "none" });
    count = () => ({
      type: "count",
      received: smtp.received.length,
      refused: 0,
      errors: smtp.errors.length,
      maxConnections: smtp.maxConcurrentConnections,
    });
    stop = () => smtp.stop();
    ready = { type: "ready", port: smtp.port, ca: "", subscriptions: [] };
  } else {
    const endpoint = await startWebPushEndpoint({ acceptedVapidKeys: [config.vapidPublicKey] });
    count = () => ({
      type: "count",
      received: endpoint.received.length,
      refused: endpoint.attempts.filter((attempt) => attempt.status >= 300).length,
      errors: 0,
      maxConnections: 0,
    });
    stop = () => endpoint.stop();
    const subscriptions = Array.from({ length: config.subscriptions }, () => endpoint.createSubscription());
    ready = { type: "ready", port: Number(new URL(endpoint.url).port), ca: endpoint.ca, subscriptions };
  }
  process.on("message", (message: unknown) => {
    if ((message as { type?: unknown } | null)?.type === "count") send(count());
  });
  process.once("SIGTERM", () => {
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  send(ready);
}

// ---------------------------------------------------------------------------------------------
// Children, CPU accounting, memory

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function spawnSink(config: SinkConfig): ChildProcess {
  const child = spawn(process.execPath, [import.meta.filename, "sink", JSON.stringify(config)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** CPU seconds of the whole machine so far: in processes (user, nice, system) and of any kind. */
function machineSeconds(): { tasks: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const times = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map((value) => Number(value) / ticksPerSecond());
    const [user = 0, nice = 0, system = 0] = times;
    return { tasks: user + nice + system, total: times.reduce((sum, value) => sum + value, 0) };
  } catch {
    return undefined;
  }
}

type CpuRole = "bench" | "sink" | "nats" | "redis";
interface CpuSample {
  at: number;
  processes: Partial<Record<CpuRole, number>>;
  machine: { tasks: number; total: number } | undefined;
}
/** % of one core per process; `others`: every other process on the machine; `machine`: busy share of all cores. */
type CpuUse = Partial<Record<CpuRole | "others" | "machine", number>>;

function sampleCpu(pids: Partial<Record<CpuRole, number | undefined>>): CpuSample {
  const processes: Partial<Record<CpuRole, number>> = {};
  for (const [role, pid] of Object.entries(pids) as [CpuRole, number | undefined][]) {
    const seconds = cpuSeconds(pid);
    if (seconds !== undefined) processes[role] = seconds;
  }
  return { at: performance.now(), processes, machine: machineSeconds() };
}

function cpuPercent(from: CpuSample, to: CpuSample): CpuUse {
  const wall = (to.at - from.at) / 1000;
  const result: CpuUse = {};
  if (wall <= 0) return result;
  let ours = 0;
  for (const role of Object.keys(to.processes) as CpuRole[]) {
    const start = from.processes[role];
    const end = to.processes[role];
    if (start === undefined || end === undefined) continue;
    result[role] = ((end - start) / wall) * 100;
    ours += end - start;
  }
  if (from.machine !== undefined && to.machine !== undefined && to.machine.total > from.machine.total) {
    const tasks = to.machine.tasks - from.machine.tasks;
    result.others = Math.max(0, ((tasks - ours) / wall) * 100);
    result.machine = (tasks / (to.machine.total - from.machine.total)) * 100;
  }
  return result;
}

/** The V8 `gc` function, exposed at run time, so each run starts from a collected heap. */
const collectGarbage: () => void = (() => {
  setFlagsFromString("--expose-gc");
  const gc: unknown = runInNewContext("gc");
  return typeof gc === "function" ? (gc as () => void) : () => undefined;
})();

/** Samples this process's RSS every 10 ms until stopped; resolves the peak in bytes. */
function rssSampler(): { stop: () => number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss());
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

// ---------------------------------------------------------------------------------------------
// Context: the stack and the orchestrator's own connections

interface Context {
  stack: Stack;
  natsUrl: string;
  redisUrl: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: KV;
  profiles: ProfileStore;
  settings: Settings;
  pids: Partial<Record<CpuRole, number | undefined>>;
}

let runCounter = 0;
/** A fresh namespace (a Kubernetes name) per run. */
function freshNamespace(label: string): string {
  runCounter += 1;
  return `bench-${label}-${Date.now().toString(36)}-${runCounter}`;
}

const pad = (value: number, width: number): string => String(value).padStart(width, "0");
const profileId = (index: number): string => `user-${pad(index, 7)}`;

function sendJob(namespace: string, sender: string, index: number, endpoint?: string): SendJob {
  return {
    // Shaped like the engage pool's ids, made unique per run: JetStream deduplicates Nats-Msg-Id
    // across the whole stream, every namespace alike.
    id: `promo|${profileId(index)}|${namespace}-${index}|send`,
    namespace,
    sender,
    profileId: profileId(index),
    source: { kind: "Campaign", name: "promo", runId: "run-1" },
    transactional: false,
    ...(endpoint !== undefined && { endpoint }),
    createdAt: new Date().toISOString(),
  };
}

const WINDOW = 1000;

/** Runs `task` for 0..count-1, `WINDOW` at a time. */
async function inWindows(count: number, task: (index: number) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < count; start += WINDOW) {
    const tasks: Promise<unknown>[] = [];
    for (let index = start; index < Math.min(count, start + WINDOW); index++) tasks.push(task(index));
    await Promise.all(tasks);
  }
}

/** Publishes the jobs as the engage pool does (Nats-Msg-Id = job id); resolves with the job size in bytes. */
async function enqueue(js: JetStreamClient, jobs: (index: number) => SendJob, count: number): Promise<number> {
  let bytes = 0;
  await inWindows(count, async (index) => {
    const job = jobs(index);
    const data = JSON.stringify(job);
    bytes = Math.max(bytes, Buffer.byteLength(data));
    await js.publish(Subjects.send(job.namespace, job.sender), data, { msgID: job.id });
  });
  return bytes;
}

/** The durable consumer the deliver pool creates, with the same limits. */
async function addDurable(jsm: JetStreamManager, name: string, subject: string): Promise<void> {
  await jsm.consumers.add(Streams.sends, {
    durable_name: name,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ACK_WAIT_MS * 1_000_000,
    max_ack_pending: 20_000,
  });
}

// ---------------------------------------------------------------------------------------------
// Baseline 1: a bare nats.js loop, in this process, over the same stream

interface BaselineResult {
  tool: "nats.js" | "nats bench";
  mode: "consume" | "fetch";
  batch: number;
  messages: number;
  bytes: number;
  /** Wall time, setup (connect, consumer) included for nats.js; nats bench times the receiving only. */
  elapsedS: number;
  msgsPerSecond: number;
  /** Between 10% and 90% of the messages acked (nats.js only). */
  steadyMsgsPerSecond?: number;
  cpu?: CpuUse;
  /** Messages still pending or unacked on the consumer afterwards (nats.js only). */
  left?: number;
  error?: string;
}

/** Counts acked messages and times when 10% and 90% of `total` were reached. */
class Marks {
  readonly total: number;
  count = 0;
  at10: number | undefined;
  at90: number | undefined;
  constructor(total: number) {
    this.total = total;
  }
  isDone(): boolean {
    return this.count >= this.total;
  }
  add(): void {
    this.count += 1;
    if (this.at10 === undefined && this.count >= this.total * 0.1) this.at10 = performance.now();
    if (this.at90 === undefined && this.count >= this.total * 0.9) this.at90 = performance.now();
  }
  steady(): number | undefined {
    if (this.at10 === undefined || this.at90 === undefined || this.at90 <= this.at10) return undefined;
    return (Math.ceil(this.total * 0.9) - Math.ceil(this.total * 0.1)) / ((this.at90 - this.at10) / 1000);
  }
}

async function consumeAll(consumer: Consumer, marks: Marks, options: { batch: number; deadline: number }) {
  const messages = await consumer.consume({ max_messages: options.batch });
  const timer = setTimeout(() => void messages.close(), Math.max(0, options.deadline - performance.now()));
  try {
    for await (const message of messages) {
      message.ack();
      marks.add();
      if (marks.isDone()) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
}

async function fetchAll(consumer: Consumer, marks: Marks, options: { batch: number; deadline: number }) {
  while (!marks.isDone() && performance.now() < options.deadline) {
    const batch = await consumer.fetch({ max_messages: options.batch, expires: 1000 });
    for await (const message of batch) {
      message.ack();
      marks.add();
      // Unlike a replica, the bare loop knows the count: it does not wait for a last, partial batch to expire.
      if (marks.isDone()) {
        batch.stop();
        break;
      }
    }
  }
}

/** Messages pending or unacked on a consumer once the server has applied the acks sent (up to 2 s). */
async function settledLeft(jsm: JetStreamManager, name: string): Promise<number> {
  let left = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < 20 && left > 0; attempt++) {
    if (attempt > 0) await sleep(100);
    const info = await jsm.consumers.info(Streams.sends, name);
    left = info.num_pending + info.num_ack_pending;
  }
  return left;
}

async function bareNatsJs(
  context: Context,
  messages: number,
  shape: { mode: "consume" | "fetch"; batch: number },
): Promise<BaselineResult> {
  const namespace = freshNamespace("raw");
  const subject = Subjects.send(namespace, "raw");
  const bytes = await enqueue(context.js, (index) => sendJob(namespace, "raw", index), messages);
  const name = ConsumerNames.deliver(namespace, "raw");
  const marks = new Marks(messages);
  const deadline = performance.now() + context.settings.timeoutS * 1000;
  collectGarbage();
  const pids = { bench: process.pid, nats: context.pids.nats, redis: context.pids.redis };
  const before = sampleCpu(pids);
  const started = performance.now();
  const nc = await connectNats(context.natsUrl, "relais-deliver-bench-bare");
  try {
    const jsm = await jetstreamManager(nc);
    await addDurable(jsm, name, subject);
    const consumer = await jetstream(nc).consumers.get(Streams.sends, name);
    if (shape.mode === "consume") await consumeAll(consumer, marks, { batch: shape.batch, deadline });
    else await fetchAll(consumer, marks, { batch: shape.batch, deadline });
    await nc.flush(); // every ack has reached the server
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = cpuPercent(before, sampleCpu(pids));
    const left = await settledLeft(jsm, name);
    const steady = marks.steady();
    return {
      tool: "nats.js",
      ...shape,
      messages,
      bytes,
      elapsedS,
      msgsPerSecond: marks.count / elapsedS,
      ...(steady !== undefined && { steadyMsgsPerSecond: steady }),
      cpu,
      left,
      ...(marks.count < messages && { error: `only ${marks.count} of ${messages} acked before the deadline` }),
    };
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Baseline 2: `nats bench js` (natscli), same server, same count and size

const BENCH_STREAM = "relais_deliver_bench";

async function natsBench(context: Context, messages: number, shape: { bytes: number; fetchBatches: number[] }) {
  const common = ["--server", context.natsUrl, "--stream", BENCH_STREAM, "--msgs", String(messages)];
  const size = ["--size", `${shape.bytes}B`, "--no-progress"];
  const timeoutS = context.settings.timeoutS;
  const runs = [
    { mode: "consume" as const, batch: 500 },
    ...shape.fetchBatches.map((batch) => ({ mode: "fetch" as const, batch })),
  ];
  const result = (run: (typeof runs)[number], rate: number, error?: Error | string): BaselineResult => ({
    tool: "nats bench",
    ...run,
    messages,
    bytes: shape.bytes,
    elapsedS: rate > 0 ? messages / rate : 0,
    msgsPerSecond: rate,
    ...(error !== undefined && { error: error instanceof Error ? error.message : error }),
  });
  const failure = (error: unknown): Error | string => (error instanceof Error ? error : String(error));
  const publish = ["bench", "js", "pub", "async", ...common, ...size, "--create", "--purge", "--storage", "file"];
  try {
    await natsCli([...publish, "bench.deliver"], timeoutS);
  } catch (error) {
    return runs.map((run) => result(run, 0, failure(error)));
  }
  const results: BaselineResult[] = [];
  for (const run of runs) {
    // nats bench creates (and then uses) only its default durable, "nats-bench": start each run afresh.
    await context.jsm.consumers.delete(BENCH_STREAM, "nats-bench").catch(() => undefined);
    const args = ["bench", "js", run.mode, ...common, ...size, "--batch", String(run.batch), "--acks", "explicit"];
    try {
      results.push(result(run, msgsPerSecondOf(await natsCli(args, timeoutS))));
    } catch (error) {
      results.push(result(run, 0, failure(error)));
    }
  }
  await context.jsm.streams.delete(BENCH_STREAM).catch(() => undefined);
  return results;
}

// ---------------------------------------------------------------------------------------------
// The replica runs

interface ReplicaRun {
  name: string;
  transport: Transport;
  concurrency: number;
  messages: number;
  /** Send policies that apply to every send (and let each through). */
  policies?: boolean;
}

interface ReplicaResult extends ReplicaRun {
  /** Size of one send job on the stream, in bytes. */
  bytes: number;
  /** From runDeliver's call until its ops server listened (connections, streams, consumer, KV). */
  startupMs: number;
  /** From runDeliver's call until `sent` reached the count. */
  elapsedS: number;
  msgsPerSecond: number;
  /** Between 10% and 90% of the count sent, from the metrics polls. */
  steadyMsgsPerSecond: number | undefined;
  /** From 90% to 100% sent; a last batch smaller than pool.concurrency waits for its fetch to expire (1 s). */
  tailMs: number | undefined;
  complete: boolean;
  outcomes: Record<string, number>;
  sendDurationMs: { p50: number; p99: number; count: number } | undefined;
  /** This process: before the replica started, the peak while it ran, after it stopped and a full GC. */
  rssMiB: { before: number; peak: number; afterGc: number };
  cpu: CpuUse;
  /** What the SMTP sink or push endpoint counted (messages accepted, refused, errors). */
  receiver?: { received: number; refused: number; errors: number; maxConnections: number };
  /** Messages pending or unacked on the replica's consumer after it stopped. */
  left: number;
  stopMs: number;
  error?: string;
}

const SENDER = "mail";
const LINK_SECRET = "deliver-bench-token-secret-of-32-chars-or-more";

const EMAIL_MESSAGE: Message = {
  email: {
    subject: "{{ profile.attributes.firstName | default: 'Hello' }}, your cart is waiting",
    preheader: "Only this week: -30% on {{ profile.attributes.cartSize }} items",
    html: [
      "<html><head><title>Your cart</title></head><body>",
      "<h1>Hi {{ profile.attributes.firstName }},</h1>",
      "<p>You left {{ profile.attributes.cartSize }} items in your cart. They are still there, and this week they",
      " are 30% off: the discount applies at checkout, no code needed.</p>",
      '<p><a href="https://shop.example/cart?utm_source=relais&amp;utm_campaign=promo">Back to your cart</a></p>',
      '<p><a href="https://shop.example/sale">See everything on sale</a></p>',
      '<p><a href="https://shop.example/account">Your account</a> &middot;',
      ' <a href="https://shop.example/help">Help</a></p>',
      "<p style='color:#888'>Shop Example, 1 Market Street, Springfield. You receive this email because you",
      " subscribed to our newsletter.</p>",
      "</body></html>",
    ].join(""),
  },
};

const PUSH_MESSAGE: Message = {
  webpush: {
    title: "{{ profile.attributes.firstName }}, -30% today",
    body: "Your cart: {{ profile.attributes.cartSize }} items",
    url: "https://shop.example/sale",
    actions: [{ action: "open", title: "Shop now" }],
  },
};

function senderSpec(run: ReplicaRun, smtpPort: number, connections: number): unknown {
  const pool = { concurrency: run.concurrency };
  if (run.transport === "webpush") {
    return {
      channel: "webpush",
      webpush: { vapid: { subject: "mailto:push@shop.example", keysSecretRef: { name: "vapid" } }, ttl: "2h" },
      pool,
    };
  }
  return {
    channel: "email",
    email: {
      from: { address: "news@shop.example", name: "Shop" },
      // The null runs replace the channel; the transport is only there to make a valid Sender.
      transport: { smtp: { host: "127.0.0.1", port: smtpPort, tls: "none", maxConnections: connections } },
      tracking: { opens: true, clicks: true },
    },
    pool,
  };
}

interface Receiver {
  child: ChildProcess | undefined;
  port: number;
  ca: string;
  subscriptions: PushSubscriptionJson[];
  vapid: { publicKey: string; privateKey: string } | undefined;
}

async function startReceiver(run: ReplicaRun): Promise<Receiver> {
  if (run.transport === "null") return { child: undefined, port: 25, ca: "", subscriptions: [], vapid: undefined };
  const vapid = run.transport === "webpush" ? webpush.generateVAPIDKeys() : undefined;
  const child = spawnSink(
    vapid === undefined
      ? { kind: "smtp" }
      : { kind: "webpush", vapidPublicKey: vapid.publicKey, subscriptions: run.messages },
  );
  try {
    const ready = await nextMessage<ChildMessage, "ready">(child, "ready", 120_000);
    return { child, port: ready.port, ca: ready.ca, subscriptions: ready.subscriptions, vapid };
  } catch (error) {
    await stopChild(child, 1000);
    throw error;
  }
}

/** Profiles, Sender, Campaign and the backlog of a run; resolves with the job size. */
async function prepare(context: Context, run: ReplicaRun, namespace: string, receiver: Receiver): Promise<number> {
  const spec = senderSpecSchema.parse(senderSpec(run, receiver.port, context.settings.smtpConnections));
  await context.kv.put(ConfigKeys.of(namespace, "Sender", SENDER), JSON.stringify({ generation: 1, spec }));
  const message = run.transport === "webpush" ? PUSH_MESSAGE : EMAIL_MESSAGE;
  const campaign = campaignSpecSchema.parse({ senderRef: { name: SENDER }, message });
  await context.kv.put(
    ConfigKeys.of(namespace, "Campaign", "promo"),
    JSON.stringify({ generation: 1, labels: { "relais.dev/category": "promotional" }, spec: campaign }),
  );
  if (run.policies === true) await publishPolicies(context.kv, namespace);
  const subscription = (index: number): PushSubscriptionJson | undefined => receiver.subscriptions[index];
  await inWindows(run.messages, (index) => {
    const attributes = { firstName: `Ann${index % 1000}`, cartSize: (index % 7) + 1 };
    const push = subscription(index);
    const patch: ProfilePatch =
      push === undefined
        ? { email: `${profileId(index)}@example.com`, attributes }
        : { attributes, webPush: { add: [push] } };
    return context.profiles.identify(namespace, profileId(index), patch);
  });
  return enqueue(context.js, (index) => sendJob(namespace, SENDER, index, subscription(index)?.endpoint), run.messages);
}

/** Three policies every send passes through, none of which holds or skips it. */
async function publishPolicies(kv: KV, namespace: string): Promise<void> {
  // Quiet hours that end before now: a window elsewhere in the day, checked for every send.
  const hour = (new Date().getUTCHours() + 12) % 24;
  const at = (h: number) => `${String(h % 24).padStart(2, "0")}:00`;
  const policies = {
    cap: { selector: { matchLabels: { "relais.dev/category": "promotional" } }, frequencyCap: { max: 5, per: "24h" } },
    quiet: { quietHours: { start: at(hour), end: at(hour + 1), timeZone: "UTC" } },
    pause: { autoPause: { window: "10m", minSends: 100, bounceRate: 0.5, failureRate: 0.5 } },
  };
  for (const [name, spec] of Object.entries(policies))
    await kv.put(
      ConfigKeys.of(namespace, "SendPolicy", name),
      JSON.stringify({ generation: 1, spec: sendPolicySpecSchema.parse(spec) }),
    );
}

function replicaEnv(context: Context, namespace: string, receiver: Receiver): Record<string, string> {
  const env: Record<string, string> = {
    RELAIS_NATS_URL: context.natsUrl,
    RELAIS_REDIS_URL: context.redisUrl,
    RELAIS_NAMESPACE: namespace,
    RELAIS_SENDER: SENDER,
    RELAIS_HOST: "127.0.0.1",
    RELAIS_PORT: "0",
    RELAIS_TOKEN_SECRET: LINK_SECRET,
    RELAIS_PUBLIC_BASE_URL: "https://engage.shop.example",
  };
  if (receiver.ca !== "") {
    const caFile = join(context.stack.dir, `${namespace}-ca.pem`);
    writeFileSync(caFile, receiver.ca);
    env.RELAIS_CA_FILE = caFile;
  }
  if (receiver.vapid !== undefined) {
    env.RELAIS_SECRET_VAPID_PUBLICKEY = receiver.vapid.publicKey;
    env.RELAIS_SECRET_VAPID_PRIVATEKEY = receiver.vapid.privateKey;
  }
  return env;
}

// Metrics text parsing

function outcomesOf(text: string): Record<string, number> {
  const outcomes: Record<string, number> = {};
  for (const match of text.matchAll(/^relais_deliver_messages_total\{[^}]*outcome="([a-z_]+)"[^}]*\} ([\d.e+]+)$/gm)) {
    const [, outcome = "", value = "0"] = match;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + Number(value);
  }
  return outcomes;
}

/** p50 and p99 of relais_deliver_send_duration_seconds, interpolated in buckets as histogram_quantile does. */
function sendQuantiles(text: string): ReplicaResult["sendDurationMs"] {
  const buckets: { le: number; count: number }[] = [];
  for (const match of text.matchAll(
    /^relais_deliver_send_duration_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([\d.e+]+)$/gm,
  )) {
    const [, le = "", value = "0"] = match;
    buckets.push({ le: le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), count: Number(value) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const quantile = (q: number): number => {
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const bucket of buckets) {
      if (bucket.count >= rank) {
        if (!Number.isFinite(bucket.le)) return lower;
        const inBucket = bucket.count - below;
        return inBucket === 0 ? bucket.le : lower + ((bucket.le - lower) * (rank - below)) / inBucket;
      }
      lower = bucket.le;
      below = bucket.count;
    }
    return lower;
  };
  return { p50: quantile(0.5) * 1000, p99: quantile(0.99) * 1000, count: total };
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return response.text();
}

interface Progress {
  url: string;
  listeningAt: number | undefined;
  failure: string | undefined;
}

/** Polls /metrics every 20 ms until `sent` reaches the count, the replica fails or the deadline passes. */
async function waitForSent(progress: Progress, count: number, deadline: number) {
  const samples: { at: number; sent: number }[] = [];
  let text = "";
  while (progress.failure === undefined && performance.now() < deadline) {
    if (progress.url !== "") {
      text = await scrape(progress.url).catch(() => text);
      const sent = outcomesOf(text).sent ?? 0;
      samples.push({ at: performance.now(), sent });
      if (sent >= count) break;
    }
    await sleep(20);
  }
  return { samples, text };
}

function tailMs(samples: { at: number; sent: number }[], count: number): number | undefined {
  const from = samples.find((sample) => sample.sent >= count * 0.9);
  const done = samples.find((sample) => sample.sent >= count);
  return from === undefined || done === undefined ? undefined : done.at - from.at;
}

function steadyRate(samples: { at: number; sent: number }[], count: number): number | undefined {
  const first = samples.find((sample) => sample.sent >= count * 0.1);
  const last = samples.find((sample) => sample.sent >= count * 0.9);
  if (first === undefined || last === undefined || last.at <= first.at) return undefined;
  return (last.sent - first.sent) / ((last.at - first.at) / 1000);
}

async function receiverCount(receiver: Receiver): Promise<ReplicaResult["receiver"]> {
  const child = receiver.child;
  if (child === undefined) return undefined;
  const reply = nextMessage<ChildMessage, "count">(child, "count", 10_000);
  child.send({ type: "count" });
  const { received, refused, errors, maxConnections } = await reply;
  return { received, refused, errors, maxConnections };
}

/** Aborts the replica and waits (bounded) for its drain. */
async function stopReplica(stop: AbortController, running: Promise<void>): Promise<{ stopMs: number; error?: string }> {
  const started = performance.now();
  stop.abort();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      resolve("did not drain within 30 s");
    }, 30_000);
  });
  const error = await Promise.race([running.then(() => undefined), timeout]).catch((failure: unknown) =>
    failure instanceof Error ? failure.message : String(failure),
  );
  clearTimeout(timer);
  return { stopMs: performance.now() - started, ...(error !== undefined && { error }) };
}

async function replicaRun(context: Context, run: ReplicaRun): Promise<ReplicaResult> {
  const namespace = freshNamespace(run.transport);
  const receiver = await startReceiver(run);
  try {
    const bytes = await prepare(context, run, namespace, receiver);
    const overrides: DeliverOverrides = { log: createLogger({ name: "relais-deliver-bench", level: "silent" }) };
    if (run.transport === "null") overrides.makeChannel = async () => ({ kind: "built", channel: nullChannel() });
    const env = replicaEnv(context, namespace, receiver);
    collectGarbage();
    const rssBefore = process.memoryUsage.rss();
    const pids = { ...context.pids, bench: process.pid, sink: receiver.child?.pid };
    const progress: Progress = { url: "", listeningAt: undefined, failure: undefined };
    const stop = new AbortController();
    const rss = rssSampler();
    const before = sampleCpu(pids);
    const started = performance.now();
    const running = runDeliver(env, stop.signal, {
      ...overrides,
      onListening: (url) => {
        progress.url = url;
        progress.listeningAt = performance.now();
      },
    });
    running.catch((error: unknown) => {
      progress.failure = error instanceof Error ? error.message : String(error);
    });
    const { samples, text } = await waitForSent(progress, run.messages, started + context.settings.timeoutS * 1000);
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = cpuPercent(before, sampleCpu(pids));
    const peak = rss.stop();
    const outcomes = outcomesOf(text);
    const stopped = await stopReplica(stop, running);
    collectGarbage();
    const rssAfter = process.memoryUsage.rss();
    const left = await settledLeft(context.jsm, ConsumerNames.deliver(namespace, SENDER));
    const sent = outcomes.sent ?? 0;
    const receiverCounts = await receiverCount(receiver);
    const error = progress.failure ?? stopped.error;
    return {
      ...run,
      bytes,
      startupMs: (progress.listeningAt ?? started) - started,
      elapsedS,
      msgsPerSecond: sent / elapsedS,
      steadyMsgsPerSecond: steadyRate(samples, run.messages),
      tailMs: tailMs(samples, run.messages),
      complete: sent >= run.messages,
      outcomes,
      sendDurationMs: sendQuantiles(text),
      rssMiB: { before: mib(rssBefore), peak: mib(peak), afterGc: mib(rssAfter) },
      cpu,
      ...(receiverCounts !== undefined && { receiver: receiverCounts }),
      left,
      stopMs: stopped.stopMs,
      ...(error !== undefined && { error }),
    };
  } finally {
    if (receiver.child !== undefined) await stopChild(receiver.child, 5000);
  }
}

// ---------------------------------------------------------------------------------------------
// Plan, machine info, report

function plan(settings: Settings): ReplicaRun[] {
  const runs: ReplicaRun[] = [];
  const count = (transport: Transport): number => settings.messages ?? (transport === "null" ? 20_000 : 5_000);
  for (const transport of settings.transports) {
    const concurrencies = transport === "null" ? settings.nullConcurrency : [settings.ioConcurrency];
    for (const concurrency of concurrencies) {
      runs.push({ name: `${transport} c=${concurrency}`, transport, concurrency, messages: count(transport) });
    }
    if (transport === "null" && settings.policies) {
      const concurrency = Math.max(...concurrencies);
      runs.push({
        name: `null+policies c=${concurrency}`,
        transport,
        concurrency,
        messages: count(transport),
        policies: true,
      });
    }
  }
  return runs;
}

/** Per message count: the fetch batch sizes to mirror (the replicas' pool.concurrency values). */
function baselineShapes(runs: ReplicaRun[]): Map<number, number[]> {
  const shapes = new Map<number, number[]>();
  for (const run of runs) {
    const batches = shapes.get(run.messages) ?? [];
    if (!batches.includes(run.concurrency)) batches.push(run.concurrency);
    shapes.set(run.messages, batches);
  }
  return shapes;
}

function versionOf(tool: "nats-server" | "redis-server" | "nats"): string {
  try {
    return execFileSync(toolPath(tool), ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
  } catch (error) {
    return `unavailable (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`;
  }
}

function machineInfo(): Record<string, string | number> {
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${release()} ${arch()}`,
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    node: process.version,
    natsServer: versionOf("nats-server"),
    redisServer: versionOf("redis-server"),
    natsCli: versionOf("nats"),
    natsJs: packageVersion("@nats-io/jetstream"),
    nodemailer: packageVersion("nodemailer"),
    webPush: packageVersion("web-push"),
  };
}

const whole = (value: number | undefined): string =>
  value === undefined ? "-" : Math.round(value).toLocaleString("en-US");
const fixed = (value: number | undefined, digits: number): string =>
  value === undefined ? "-" : value.toFixed(digits);

function cpuCell(cpu: CpuUse | undefined): string {
  if (cpu === undefined) return "-";
  const cell = (value: number | undefined): string => (value === undefined ? "-" : String(Math.round(value)));
  return [cpu.bench, cpu.sink, cpu.nats, cpu.redis, cpu.others].map(cell).join("/");
}

function row(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
}

function baselineLabel(result: BaselineResult): string {
  return `${result.tool} ${result.mode}${result.mode === "fetch" ? `(${result.batch})` : `(max ${result.batch})`}`;
}

function printBaselines(baselines: BaselineResult[]): void {
  const widths = [28, 7, 6, 10, 13, 8, 5, 24];
  const header = [
    "baseline (consume+ack)",
    "msgs",
    "bytes",
    "msgs/s",
    "steady msgs/s",
    "wall s",
    "left",
    "CPU% bench/-/nats/redis/oth",
  ];
  console.log(row(header, widths));
  console.log("-".repeat(widths.reduce((sum, width) => sum + width + 2, -2)));
  for (const b of baselines) {
    const cells = [
      baselineLabel(b),
      String(b.messages),
      String(b.bytes),
      b.error === undefined ? whole(b.msgsPerSecond) : "FAILED",
      whole(b.steadyMsgsPerSecond),
      fixed(b.elapsedS, 2),
      b.left === undefined ? "-" : String(b.left),
      cpuCell(b.cpu),
    ];
    console.log(row(cells, widths));
  }
}

interface Ratios {
  /** The bare nats.js consume+ack run with the same message count. */
  consume: number | undefined;
  /** The bare nats.js fetch run whose batch is the replica's pool.concurrency. */
  fetch: number | undefined;
  natsBenchConsume: number | undefined;
  /** Steady (10%->90%) rates, replica over bare nats.js consume+ack. */
  steadyConsume: number | undefined;
}

function ratiosOf(result: ReplicaResult, baselines: BaselineResult[]): Ratios {
  const find = (tool: BaselineResult["tool"], mode: BaselineResult["mode"], batch?: number) =>
    baselines.find(
      (b) =>
        b.tool === tool &&
        b.mode === mode &&
        b.messages === result.messages &&
        (batch === undefined || b.batch === batch) &&
        b.error === undefined,
    );
  const ratio = (baseline: BaselineResult | undefined): number | undefined =>
    baseline === undefined || baseline.msgsPerSecond === 0 ? undefined : result.msgsPerSecond / baseline.msgsPerSecond;
  const bare = find("nats.js", "consume");
  return {
    consume: ratio(bare),
    steadyConsume:
      bare?.steadyMsgsPerSecond === undefined || result.steadyMsgsPerSecond === undefined
        ? undefined
        : result.steadyMsgsPerSecond / bare.steadyMsgsPerSecond,
    fetch: ratio(find("nats.js", "fetch", result.concurrency)),
    natsBenchConsume: ratio(find("nats bench", "consume")),
  };
}

/** The histogram's first bucket ends at 1 ms: below it, interpolation says nothing. */
function sendCell(duration: ReplicaResult["sendDurationMs"]): string {
  if (duration === undefined) return "-";
  const cell = (ms: number): string => (ms <= 1 ? "<1" : fixed(ms, 1));
  return `${cell(duration.p50)}/${cell(duration.p99)}`;
}

function printReplicas(results: ReplicaResult[], baselines: BaselineResult[]): void {
  const widths = [15, 6, 8, 13, 8, 7, 8, 7, 7, 14, 15, 19, 24];
  const header = [
    "replica run",
    "msgs",
    "msgs/s",
    "steady msgs/s",
    "start ms",
    "tail ms",
    "/consume",
    "/fetch",
    "/nbench",
    "send p50/p99 ms",
    "RSS MiB b/pk/gc",
    "other outcomes",
    "CPU% bench/sink/nats/redis/oth",
  ];
  console.log(row(header, widths));
  console.log("-".repeat(widths.reduce((sum, width) => sum + width + 2, -2)));
  for (const r of results) {
    const ratios = ratiosOf(r, baselines);
    const others = Object.entries(r.outcomes)
      .filter(([outcome, value]) => outcome !== "sent" && value > 0)
      .map(([outcome, value]) => `${outcome}=${value}`)
      .join(",");
    const cells = [
      r.name,
      String(r.messages),
      r.complete ? whole(r.msgsPerSecond) : `${whole(r.msgsPerSecond)}!`,
      whole(r.steadyMsgsPerSecond),
      whole(r.startupMs),
      whole(r.tailMs),
      fixed(ratios.consume, 3),
      fixed(ratios.fetch, 3),
      fixed(ratios.natsBenchConsume, 3),
      sendCell(r.sendDurationMs),
      `${fixed(r.rssMiB.before, 0)}/${fixed(r.rssMiB.peak, 0)}/${fixed(r.rssMiB.afterGc, 0)}`,
      others === "" ? "none" : others,
      cpuCell(r.cpu),
    ];
    console.log(row(cells, widths));
  }
}

/** The policy stage's cost: the run with policies against the same run without, in this run. */
function policyCost(results: ReplicaResult[]): string[] {
  return results.flatMap((r) => {
    if (r.policies !== true) return [];
    const plain = results.find(
      (o) => o.policies !== true && o.transport === r.transport && o.concurrency === r.concurrency,
    );
    if (plain === undefined) return [];
    const cost = 1 - r.msgsPerSecond / plain.msgsPerSecond;
    return [
      `policy stage: ${whole(r.msgsPerSecond)} msgs/s with 3 policies vs ${whole(plain.msgsPerSecond)} without` +
        ` (c=${r.concurrency}) = ${fixed(cost * 100, 1)}% of throughput`,
    ];
  });
}

function headline(results: ReplicaResult[], baselines: BaselineResult[]): string[] {
  return [...headlineRuns(results, baselines), ...policyCost(results)];
}

function headlineRuns(results: ReplicaResult[], baselines: BaselineResult[]): string[] {
  return results.map((r) => {
    const ratios = ratiosOf(r, baselines);
    const bare = baselines.find((b) => b.tool === "nats.js" && b.mode === "consume" && b.messages === r.messages);
    return (
      `${r.name}: ${whole(r.msgsPerSecond)} msgs/s = ${fixed((ratios.consume ?? 0) * 100, 1)}% of bare nats.js` +
      ` consume+ack (${whole(bare?.msgsPerSecond)} msgs/s, ${r.messages} msgs);` +
      ` steady ${whole(r.steadyMsgsPerSecond)}` +
      ` = ${fixed((ratios.steadyConsume ?? 0) * 100, 1)}% of ${whole(bare?.steadyMsgsPerSecond)}` +
      (r.complete ? "" : ` - INCOMPLETE: ${r.outcomes.sent ?? 0} of ${r.messages} sent`)
    );
  });
}

function warnings(results: ReplicaResult[], baselines: BaselineResult[]): string[] {
  const lines: string[] = [];
  for (const b of baselines) {
    if (b.error !== undefined) lines.push(`${baselineLabel(b)} ${b.messages}: ${b.error}`);
    if (b.left !== undefined && b.left > 0) lines.push(`${baselineLabel(b)} ${b.messages}: ${b.left} messages left`);
  }
  for (const r of results) {
    if (r.error !== undefined) lines.push(`${r.name}: ${r.error}`);
    if (r.left > 0) lines.push(`${r.name}: ${r.left} messages left on the consumer after the run`);
    if (r.receiver !== undefined && r.receiver.received < r.messages)
      lines.push(`${r.name}: the receiver got ${r.receiver.received} of ${r.messages}`);
    if ((r.cpu.others ?? 0) > 25)
      lines.push(`${r.name}: processes outside the bench used ${Math.round(r.cpu.others ?? 0)}% of a core (noisy run)`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Main

async function runBaselines(context: Context, runs: ReplicaRun[], bytes: number): Promise<BaselineResult[]> {
  const baselines: BaselineResult[] = [];
  for (const [messages, batches] of baselineShapes(runs)) {
    baselines.push(await bareNatsJs(context, messages, { mode: "consume", batch: 500 }));
    for (const batch of batches) baselines.push(await bareNatsJs(context, messages, { mode: "fetch", batch }));
    baselines.push(...(await natsBench(context, messages, { bytes, fetchBatches: batches })));
  }
  for (const b of baselines) console.log(`  ${baselineLabel(b)} ${b.messages}: ${whole(b.msgsPerSecond)} msgs/s`);
  return baselines;
}

async function runReplicas(context: Context, runs: ReplicaRun[]): Promise<ReplicaResult[]> {
  const results: ReplicaResult[] = [];
  for (const run of runs) {
    const result = await replicaRun(context, run);
    console.log(`  ${run.name} ${run.messages}: ${whole(result.msgsPerSecond)} msgs/s`);
    results.push(result);
  }
  return results;
}

async function openContext(stack: Stack, settings: Settings): Promise<Context> {
  const natsUrl = stack.nats?.url ?? "";
  const redisUrl = stack.redis?.url ?? "";
  const nc = await connectNats(natsUrl, "relais-deliver-bench");
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const redis = connectRedis(redisUrl, "relais-deliver-bench");
  nc.closed()
    .then(() => redis.quit())
    .catch(() => undefined);
  return {
    stack,
    natsUrl,
    redisUrl,
    nc,
    js: jetstream(nc),
    jsm,
    kv: await openConfigBucket(nc),
    profiles: new ProfileStore(redis),
    settings,
    pids: { nats: stack.nats?.process.pid, redis: stack.redis?.process.pid },
  };
}

function writeReport(report: Record<string, unknown>): void {
  const json = JSON.stringify(report, null, 2);
  const dir = join(import.meta.dirname, "..", "..", "bench-results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "deliver.json"), `${json}\n`);
  console.log(`\n${json}`);
  console.log(`\nwritten to ${relative(process.cwd(), join(dir, "deliver.json"))}`);
}

async function measureAll(context: Context) {
  const { settings } = context;
  const runs = plan(settings);
  if (settings.warmupMessages > 0) {
    console.log(`warm-up: a null replica over ${settings.warmupMessages} messages (not reported)`);
    await replicaRun(context, {
      name: "warm-up",
      transport: "null",
      concurrency: 64,
      messages: settings.warmupMessages,
    });
  }
  const bytes = Buffer.byteLength(JSON.stringify(sendJob("bench-null-xxxxxxxx-1", SENDER, 0)));
  console.log("baselines (same server, same counts):");
  const baselines = await runBaselines(context, runs, bytes);
  console.log("replicas:");
  const results = await runReplicas(context, runs);
  return { baselines, results };
}

async function main(): Promise<void> {
  const settings = readSettings();
  const runs = plan(settings);
  const budgetMs = ((runs.length * 2 + 2) * (settings.timeoutS + 60) + 120) * 1000;
  const started: { stack?: Stack } = {};
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${budgetMs / 1000} s; stopping everything`);
    for (const child of children) child.kill("SIGKILL");
    void (started.stack?.stop() ?? Promise.resolve()).finally(() => process.exit(2));
  }, budgetMs);
  watchdog.unref();

  const command = commandLine(import.meta.filename);
  const machine = machineInfo();
  console.log("Relais deliver benchmark - one deliver replica vs bare JetStream consume+ack");
  console.log(`command: ${command}`);
  for (const [key, value] of Object.entries(machine)) console.log(`${key}: ${value}`);

  const stack = await startStack({ components: ["nats", "redis"] });
  started.stack = stack;
  let context: Context | undefined;
  try {
    context = await openContext(stack, settings);
    const { baselines, results } = await measureAll(context);
    console.log("");
    printBaselines(baselines);
    console.log("");
    printReplicas(results, baselines);
    console.log(
      "\nmsgs/s: count / wall time from runDeliver's call (startup included) until sent = count; steady: 10%->90%;" +
        " tail: 90%->100% (a last partial batch waits for its fetch to expire)." +
        "\n/consume, /fetch, /nbench: replica msgs/s over bare nats.js consume+ack (same count), bare nats.js" +
        " fetch with batch = pool.concurrency, and nats bench js consume." +
        "\nRSS: this process (the replica and the orchestrator) before / peak during / after the run and a full GC." +
        "\nCPU%: % of one core over the timed run, for this process (the replica), the sink child," +
        " nats-server, redis-server and every other process.",
    );
    const lines = headline(results, baselines);
    console.log("\nHeadline (replica / bare nats.js consume+ack, same server, same run):");
    for (const line of lines) console.log(`  ${line}`);
    for (const line of warnings(results, baselines)) console.log(`  WARNING ${line}`);
    writeReport({ command, machine, settings, headline: lines, baselines, results });
  } finally {
    await context?.nc.drain().catch(() => undefined);
    for (const child of children) await stopChild(child, 2000);
    await stack.stop();
    clearTimeout(watchdog);
  }
}

// ---------------------------------------------------------------------------------------------

const [mode, rawConfig] = process.argv.slice(2);
const entry = mode === "sink" ? sink(JSON.parse(rawConfig ?? "{}") as SinkConfig) : main();
entry.then(
  () => {
    // Everything this bench started is stopped; leftover handles (sockets in TIME_WAIT) must not keep it alive.
    if (mode !== "sink") process.exit(0);
  },
  (error: unknown) => {
    console.error(mode === undefined ? "bench failed:" : `bench ${mode} failed:`, error);
    process.exit(1);
  },
);
