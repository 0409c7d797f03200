// Throughput and latency of ONE engage process, next to the bare JetStream consume+ack rate on the
// same server in the same run (the ratio is the headline).
//
// Run: npm run bench:engage   (or: node test/bench/engage.ts)
// Settings (environment): BENCH_EVENTS (backlog, 50000), BENCH_PROFILES (profiles of the events
// namespace, 5000), BENCH_LATENCY_RATES (events/s, one run each, "100,500"), BENCH_LATENCY_SECONDS (10; 0: no latency run),
// BENCH_COLD_EVENTS (runEngage cold-start check, 5000; 0: none), BENCH_PENDING (timers, 1000000),
// BENCH_DUE (of those, made due now, 50000), BENCH_TIMER_PROFILES (50000), BENCH_CANCELS (2000),
// BENCH_PHASES ("events,cold,timers"), BENCH_TIMEOUT_S (per wait, 300), BENCH_BUDGET_S (whole run, 1800).
//
// The process under test is the automation engine with its RELAIS_EVENTS consumer and its timer
// poller, wired in this process exactly as runEngage wires them (own NATS and Redis connections,
// silent logger), with the registry filled before the clock starts. Phases:
//  1. events: 100 Automations over 20 event names in a fresh namespace (zero-wait sends, waits,
//     waits until a date, profile conditions, cancels with CEL filters); a backlog of BENCH_EVENTS
//     events (60% with names no automation uses) is published first; the clock runs from the start
//     of the consumer until the durable "engage" shows num_pending + num_ack_pending == 0 (polled
//     every 25 ms). Baselines, timed the same way over the same events: a bare nats.js durable
//     consume+ack (before and after; a discarded warm-up run first), and consume+JSON+schema+ack.
//  2. latency: events that trigger a zero-wait automation published one at a time at a steady rate;
//     publish -> the send job read from RELAIS_SENDS by an explicit-ack durable of the bench.
//  3. cold: runEngage itself (Automations in the config KV) started on a backlog; checks that every
//     trigger event was evaluated (the KV watch and the events consumer start together).
//  4. timers: BENCH_PENDING instances scheduled through AutomationStore.schedule in parallel windows
//     (fill time, Redis INFO memory), BENCH_DUE of them made due now (ZADD XX), one TimerPoller.tick()
//     timed; then store.cancel (ZREM ...) p50/p99, store.instancesOf and a cancel by event.
// Loopback only; a watchdog bounds the run; figures go to stdout and bench-results/engage.json.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { join, relative } from "node:path";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import { automationSpecSchema } from "#crds";
import {
  AckedPublisher,
  AutomationEngine,
  AutomationRegistry,
  AutomationStore,
  compileAutomation,
  createEngageMetrics,
  eventsConsumer,
  runEngage,
  TimerPoller,
} from "#engage";
import type { CompiledAutomation, EngageMetrics, Instance } from "#engage";
import { startStack, toolPath } from "#harness";
import type { Stack } from "#harness";
import { ProfileStore } from "#ingest";
import {
  ConfigKeys,
  ConsumerNames,
  connectNats,
  connectRedis,
  createLogger,
  ensureStreams,
  eventMessageSchema,
  openConfigBucket,
  RedisKeys,
  sendMessageId,
  Streams,
  Subjects,
} from "#runtime";
import type { EventMessage, SendJob } from "#runtime";
import { commandLine, cpuSeconds, numberSetting, packageVersion, ticksPerSecond } from "./support.ts";

// ---------------------------------------------------------------------------------------------
// Settings

const PHASES = ["events", "cold", "timers"] as const;
type Phase = (typeof PHASES)[number];

interface Settings {
  events: number;
  profiles: number;
  latencyRates: number[];
  latencySeconds: number;
  coldEvents: number;
  pending: number;
  due: number;
  timerProfiles: number;
  cancels: number;
  phases: Phase[];
  timeoutS: number;
  budgetS: number;
}

function readSettings(): Settings {
  const phases = (process.env.BENCH_PHASES ?? PHASES.join(","))
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  for (const phase of phases)
    if (!PHASES.includes(phase as Phase)) throw new Error(`BENCH_PHASES: unknown "${phase}" (${PHASES.join(", ")})`);
  const pending = numberSetting("BENCH_PENDING", 1_000_000, { min: 100, max: 20_000_000 });
  return {
    events: numberSetting("BENCH_EVENTS", 50_000, { min: 100, max: 10_000_000 }),
    profiles: numberSetting("BENCH_PROFILES", 5000, { min: 10, max: 1_000_000 }),
    latencyRates: (process.env.BENCH_LATENCY_RATES ?? "100,500").split(",").map((rate) => {
      const value = Number(rate.trim());
      if (!Number.isInteger(value) || value < 1 || value > 100_000)
        throw new Error(`BENCH_LATENCY_RATES must list integers from 1 to 100000, got "${rate}"`);
      return value;
    }),
    latencySeconds: numberSetting("BENCH_LATENCY_SECONDS", 10, { min: 0, max: 600 }),
    coldEvents: numberSetting("BENCH_COLD_EVENTS", 5000, { min: 0, max: 10_000_000 }),
    pending,
    due: Math.min(pending, numberSetting("BENCH_DUE", 50_000, { min: 1, max: 20_000_000 })),
    timerProfiles: numberSetting("BENCH_TIMER_PROFILES", 50_000, { min: 1, max: 10_000_000 }),
    cancels: numberSetting("BENCH_CANCELS", 2000, { min: 10, max: 1_000_000 }),
    phases: phases as Phase[],
    timeoutS: numberSetting("BENCH_TIMEOUT_S", 300, { min: 10, max: 3600 }),
    budgetS: numberSetting("BENCH_BUDGET_S", 1800, { min: 60, max: 7200 }),
  };
}

// ---------------------------------------------------------------------------------------------
// Small tools: time, quantiles, CPU, memory

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const round = (value: number, digits = 0): number => Math.round(value * 10 ** digits) / 10 ** digits;
const mib = (bytes: number): number => round(bytes / 2 ** 20, 1);

interface Quantiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function quantiles(values: number[]): Quantiles | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.at(-1) ?? 0 };
}

/** CPU seconds spent by every process of the machine so far (user, nice, system). */
function machineTaskSeconds(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const [user = 0, nice = 0, system = 0] = line
      .trim()
      .split(/\s+/)
      .slice(1, 4)
      .map((value) => Number(value) / ticksPerSecond());
    return user + nice + system;
  } catch {
    return undefined;
  }
}

type CpuRole = "bench" | "nats" | "redis";
interface CpuSample {
  at: number;
  processes: Partial<Record<CpuRole, number>>;
  machine: number | undefined;
}
/** % of one core over a timed stretch: this process (the engage process), nats-server, redis-server, the rest. */
type CpuUse = Partial<Record<CpuRole | "others", number>>;

function sampleCpu(pids: Partial<Record<CpuRole, number>>): CpuSample {
  const processes: Partial<Record<CpuRole, number>> = {};
  for (const [role, pid] of Object.entries(pids) as [CpuRole, number | undefined][]) {
    const seconds = cpuSeconds(pid);
    if (seconds !== undefined) processes[role] = seconds;
  }
  return { at: performance.now(), processes, machine: machineTaskSeconds() };
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
    result[role] = round(((end - start) / wall) * 100);
    ours += end - start;
  }
  if (from.machine !== undefined && to.machine !== undefined)
    result.others = round(Math.max(0, ((to.machine - from.machine - ours) / wall) * 100));
  return result;
}

/** Times `task` with the CPU use of this process, nats-server and redis-server over it. */
async function timed<T>(context: Context, task: () => Promise<T>): Promise<{ value: T; ms: number; cpu: CpuUse }> {
  const before = sampleCpu(context.pids);
  const value = await task();
  const after = sampleCpu(context.pids);
  return { value, ms: after.at - before.at, cpu: cpuPercent(before, after) };
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
  redis: Redis;
  profiles: ProfileStore;
  settings: Settings;
  pids: Partial<Record<CpuRole, number>>;
}

let namespaceCounter = 0;
function freshNamespace(label: string): string {
  namespaceCounter += 1;
  return `bench-${label}-${Date.now().toString(36)}-${namespaceCounter}`;
}

const profileId = (index: number): string => `user-${String(index).padStart(7, "0")}`;
const WINDOW = 1000;

/** Runs `task` for 0..count-1, `window` at a time. */
async function inWindows(count: number, task: (index: number) => Promise<unknown>, window = WINDOW): Promise<void> {
  for (let start = 0; start < count; start += window) {
    const tasks: Promise<unknown>[] = [];
    for (let index = start; index < Math.min(count, start + window); index++) tasks.push(task(index));
    await Promise.all(tasks);
  }
}

/** Profiles with an email address, subscribed, and the attributes the filters read. */
async function createProfiles(context: Context, namespace: string, count: number): Promise<void> {
  await inWindows(count, (index) => {
    const tier = index % 5 === 0 ? "gold" : index % 5 < 3 ? "silver" : "bronze";
    return context.profiles.identify(namespace, profileId(index), {
      email: `${profileId(index)}@example.com`,
      emailSubscription: { status: "subscribed", source: "bench" },
      language: "en",
      attributes: { firstName: `Ann${index % 1000}`, tier, score: (index * 37) % 100 },
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The workload: 100 Automations over 20 event names, and the event mix

const SENDER = "mail";
const ACTIVE_EVENTS: readonly string[] =
  "cart_updated checkout_started purchase signed_up product_viewed wishlist_added review_posted subscription_renewed payment_failed trial_started trial_ending appointment_booked order_shipped order_delivered refund_requested coupon_claimed level_up support_ticket referral_sent plan_changed".split(
    " ",
  );
/** Names no automation triggers on or cancels with. */
const NOISE_EVENTS: readonly string[] =
  "page_viewed session_started session_ended search scrolled clicked app_opened app_closed video_played video_paused filter_applied sort_changed image_zoomed tab_switched form_started form_abandoned banner_seen banner_closed heartbeat locale_changed".split(
    " ",
  );
const NOISE_SHARE = 0.6;
const EMAIL = {
  email: {
    subject: "{{ profile.attributes.firstName | default: 'Hello' }}, about your {{ trigger.name }}",
    html: "<p>Hi {{ profile.attributes.firstName }}, thanks for your {{ trigger.name }}.</p>",
  },
};

const active = (n: number): string => ACTIVE_EVENTS[n % ACTIVE_EVENTS.length] ?? "cart_updated";

/** Five kinds of automation, one of each per event name (20 x 5 = 100). */
const SLOTS: readonly { kind: string; spec: (event: string, n: number) => Record<string, unknown> }[] = [
  // Zero wait: sends at once for ~10% of its trigger events.
  { kind: "send", spec: (event) => ({ trigger: { event, filter: "event.attributes.total > 90.0" } }) },
  {
    kind: "wait",
    spec: (event, n) => ({
      trigger: { event, filter: 'event.attributes.total > 50.0 && profile.attributes.tier == "gold"' },
      wait: { after: "48h" },
      cancelOn: [{ event: active(n + 1), filter: "event.attributes.ref == trigger.attributes.ref" }],
    }),
  },
  {
    // Every trigger is evaluated: no date (skipped), a past date (skipped) or a future one (waits).
    kind: "until",
    spec: (event, n) => ({
      trigger: { event },
      wait: { until: { field: "attributes.dueAt", offset: "-1h" } },
      cancelOn: [{ event: active(n + 7) }],
    }),
  },
  {
    kind: "score",
    spec: (event, n) => ({
      trigger: { event, filter: 'profile.attributes.score >= 90 && event.attributes.channel == "web"' },
      wait: { after: "1h" },
      cancelOn: [{ event: active(n + 3), filter: "event.attributes.total > trigger.attributes.total" }],
    }),
  },
  {
    kind: "never",
    spec: (event) => ({
      trigger: { event, filter: 'event.attributes.total > 99.0 && profile.attributes.tier == "platinum"' },
      gracePeriod: "24h",
    }),
  },
];

function workloadAutomations(namespace: string): CompiledAutomation[] {
  const automations: CompiledAutomation[] = [];
  for (const slot of SLOTS) {
    for (let n = 0; n < ACTIVE_EVENTS.length; n++) {
      const spec = automationSpecSchema.parse({
        senderRef: { name: SENDER },
        message: EMAIL,
        ...slot.spec(active(n), n),
      });
      const compiled = compileAutomation(namespace, `${slot.kind}-${String(n).padStart(2, "0")}`, 1, spec);
      if (compiled.problems.length > 0) throw new Error(`${compiled.name}: ${compiled.problems.join("; ")}`);
      automations.push(compiled);
    }
  }
  return automations;
}

interface EventShape {
  namespace: string;
  /** Event ids: `${tag}-${index}`. */
  tag: string;
  profiles: number;
  nowMs: number;
}

const DAY = 24 * 3_600_000;

function pick<T>(list: readonly T[], random: () => number): T {
  return list[Math.floor(random() * list.length)] ?? (list[0] as T);
}

/** One event of the mix: 60% noise names; the rest spread over the 20 automation names. */
function mixEvent(shape: EventShape, index: number, random: () => number): EventMessage {
  const noise = random() < NOISE_SHARE;
  const name = noise ? pick(NOISE_EVENTS, random) : pick(ACTIVE_EVENTS, random);
  const at = new Date(shape.nowMs).toISOString();
  const attributes: Record<string, unknown> = {
    // Never integral: CEL sees a double, as `> 50.0` expects.
    total: (Math.floor(random() * 10_000) + 0.5) / 100,
    ref: `r${Math.floor(random() * 3)}`,
    channel: random() < 0.5 ? "web" : "app",
    sku: `sku-${Math.floor(random() * 500)}`,
  };
  if (!noise && random() < 0.4) {
    const sign = random() < 0.75 ? 1 : -1;
    attributes.dueAt = new Date(shape.nowMs + sign * (2 + random() * 28) * DAY).toISOString();
  }
  return {
    id: `${shape.tag}-${index}`,
    namespace: shape.namespace,
    profileId: profileId(Math.floor(random() * shape.profiles)),
    name,
    timestamp: at,
    receivedAt: at,
    attributes,
  };
}

interface Published {
  count: number;
  bytes: number;
  byName: Map<string, number>;
}

/** Publishes events as ingest does (msgID = namespace:id), WINDOW at a time; counts them by name. */
async function publishEvents(js: JetStreamClient, count: number, make: (index: number) => EventMessage) {
  const published: Published = { count, bytes: 0, byName: new Map() };
  await inWindows(count, async (index) => {
    const event = make(index);
    const data = JSON.stringify(event);
    published.bytes += Buffer.byteLength(data);
    published.byName.set(event.name, (published.byName.get(event.name) ?? 0) + 1);
    await js.publish(Subjects.event(event.namespace, event.name), data, { msgID: `${event.namespace}:${event.id}` });
  });
  return published;
}

/** Per-automation counters summed, and how many trigger evaluations they show against the expected. */
async function outcomes(store: AutomationStore, automations: readonly CompiledAutomation[], published: Published) {
  const totals: Record<string, number> = {};
  let evaluated = 0;
  let expected = 0;
  for (const automation of automations) {
    const stats = await store.stats(automation.namespace, automation.name);
    for (const [field, value] of Object.entries(stats)) totals[field] = (totals[field] ?? 0) + value;
    // Each trigger event of an active automation ends as exactly one of these.
    evaluated +=
      (stats.triggered ?? 0) +
      (stats.filteredOut ?? 0) +
      (stats["skipped:no_date"] ?? 0) +
      (stats["skipped:past_date"] ?? 0);
    expected += published.byName.get(automation.spec.trigger.event) ?? 0;
  }
  return { totals, evaluated, expected };
}

// ---------------------------------------------------------------------------------------------
// Consumers: the durable "engage", bare baselines, and waiting for a consumer to drain

/** The durable eventsConsumer adds, with the same config, created before a backlog so it sees it. */
async function addEngageDurable(jsm: JetStreamManager): Promise<void> {
  await jsm.consumers.add(Streams.events, {
    durable_name: ConsumerNames.engage,
    filter_subject: Subjects.allEvents,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.New,
    max_ack_pending: 10_000,
  });
}

interface Drain {
  /** ms from the start until num_pending + num_ack_pending was seen at 0 (undefined: deadline). */
  ms: number | undefined;
  left: number;
  /** ms at which 10% and 90% of the messages were done (from the same polls). */
  at10: number | undefined;
  at90: number | undefined;
}

/** Polls the consumer every 25 ms from `started` until nothing is pending or unacked. */
async function untilDrained(
  jsm: JetStreamManager,
  consumer: { stream: string; name: string; total: number },
  started: number,
  deadline: number,
): Promise<Drain> {
  const drain: Drain = { ms: undefined, left: consumer.total, at10: undefined, at90: undefined };
  while (performance.now() < deadline) {
    const info = await jsm.consumers.info(consumer.stream, consumer.name);
    const at = performance.now() - started;
    drain.left = info.num_pending + info.num_ack_pending;
    if (drain.at10 === undefined && drain.left <= consumer.total * 0.9) drain.at10 = at;
    if (drain.at90 === undefined && drain.left <= consumer.total * 0.1) drain.at90 = at;
    if (drain.left === 0) {
      drain.ms = at;
      break;
    }
    await sleep(25);
  }
  return drain;
}

interface RateRow {
  name: string;
  messages: number;
  wallS: number | undefined;
  perSecond: number | undefined;
  /** 10% -> 90% of the messages. */
  steadyPerSecond: number | undefined;
  cpu: CpuUse;
  left: number;
  error?: string;
}

function rateRow(name: string, messages: number, drain: Drain, cpu: CpuUse): RateRow {
  const steady =
    drain.at10 === undefined || drain.at90 === undefined || drain.at90 <= drain.at10
      ? undefined
      : (messages * 0.8) / ((drain.at90 - drain.at10) / 1000);
  return {
    name,
    messages,
    wallS: drain.ms === undefined ? undefined : drain.ms / 1000,
    perSecond: drain.ms === undefined ? undefined : messages / (drain.ms / 1000),
    steadyPerSecond: steady,
    cpu,
    left: drain.left,
    ...(drain.ms === undefined && { error: `${drain.left} left at the deadline` }),
  };
}

/**
 * A bare nats.js durable over the namespace's events, configured as the engage consumer (explicit
 * ack, consume() with max_messages 512, max_ack_pending 10000): ack each message, or parse it (JSON
 * and the event schema, as eventsConsumer does) and ack it.
 */
async function bareRun(context: Context, namespace: string, mode: "ack" | "parse", label: string): Promise<RateRow> {
  const total = context.settings.events;
  const name = `bare_${mode}_${label}_${Date.now().toString(36)}`;
  const nc = await connectNats(context.natsUrl, "relais-engage-bench-bare");
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(Streams.events, {
      durable_name: name,
      filter_subject: Subjects.eventsOf(namespace),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 10_000,
    });
    const consumer = await jetstream(nc).consumers.get(Streams.events, name);
    const deadline = performance.now() + context.settings.timeoutS * 1000;
    const before = sampleCpu(context.pids);
    const started = performance.now();
    const messages = await consumer.consume({ max_messages: 512 });
    const drained = untilDrained(context.jsm, { stream: Streams.events, name, total }, started, deadline);
    let count = 0;
    let invalid = 0;
    const loop = (async () => {
      for await (const message of messages) {
        if (mode === "parse" && !eventMessageSchema.safeParse(message.json()).success) invalid += 1;
        message.ack();
        if (++count >= total) break;
      }
    })();
    const drain = await drained;
    const cpu = cpuPercent(before, sampleCpu(context.pids));
    await messages.close();
    await loop;
    const row = rateRow(
      `bare nats.js consume+${mode === "ack" ? "ack" : "json+schema+ack"} (${label})`,
      total,
      drain,
      cpu,
    );
    await jsm.consumers.delete(Streams.events, name).catch(() => undefined);
    return invalid === 0 ? row : { ...row, error: `${invalid} events failed the schema` };
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// The engage process: engine + events consumer + timer poller, as runEngage wires them

interface EngageProcess {
  registry: AutomationRegistry;
  store: AutomationStore;
  engine: AutomationEngine;
  timers: TimerPoller;
  metrics: EngageMetrics;
  /** Starts the events consumer and the timer poller loop. */
  start(): void;
  failure(): string | undefined;
  /** Redis commands sent by the process so far. */
  redisCommands(): number;
  stop(): Promise<{ stopMs: number; error?: string }>;
}

async function openEngage(context: Context, label: string, automations: readonly CompiledAutomation[]) {
  const nc = await connectNats(context.natsUrl, `relais-engage-bench-${label}`);
  const redis = connectRedis(context.redisUrl, `relais-engage-bench-${label}`);
  // Counts the commands the process sends (one round trip each when awaited one by one).
  let redisCommands = 0;
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (...args: Parameters<Redis["sendCommand"]>) => {
    redisCommands += 1;
    return send(...args);
  };
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const log = createLogger({ name: `relais-engage-bench-${label}`, level: "silent" });
  const registry = new AutomationRegistry();
  for (const automation of automations) registry.put(automation);
  const store = new AutomationStore(redis);
  const publisher = new AckedPublisher(nc);
  const engine = new AutomationEngine({
    registry,
    store,
    redis,
    now: Date.now,
    log,
    publish: (subject, job) => publisher.publish(subject, job.json, sendMessageId(job.namespace, job.id)),
  });
  const metrics = createEngageMetrics();
  const timers = new TimerPoller({ engine, store, namespaces: () => registry.namespaces(), now: Date.now, log });
  const abort = new AbortController();
  let running: Promise<unknown> | undefined;
  let failure: string | undefined;
  const engage: EngageProcess = {
    registry,
    store,
    engine,
    timers,
    metrics,
    start() {
      running = Promise.all([
        eventsConsumer({ js, jsm, engine, metrics, log }).run(abort.signal),
        timers.run(abort.signal),
      ]);
      running.catch((error: unknown) => {
        failure = error instanceof Error ? error.message : String(error);
      });
    },
    failure: () => failure,
    redisCommands: () => redisCommands,
    async stop() {
      abort.abort();
      const stopped = await bounded(running ?? Promise.resolve(), 30_000);
      publisher.close();
      await nc.drain().catch(() => undefined);
      await redis.quit().catch(() => undefined);
      return stopped;
    },
  };
  return engage;
}

/** Waits for `running` at most `ms`; resolves how long it took and what went wrong. */
async function bounded(running: Promise<unknown>, ms: number): Promise<{ stopMs: number; error?: string }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      resolve(`did not stop within ${ms} ms`);
    }, ms);
  });
  const error = await Promise.race([running.then(() => undefined), timeout]).catch((failure: unknown) =>
    failure instanceof Error ? failure.message : String(failure),
  );
  clearTimeout(timer);
  return { stopMs: performance.now() - started, ...(error !== undefined && { error }) };
}

// ---------------------------------------------------------------------------------------------
// Phase 1 and 2: the event backlog, then trigger -> enqueued latency

interface EventsResult {
  namespace: string;
  automations: number;
  profiles: number;
  eventBytes: number;
  rows: RateRow[];
  /** Per-automation counters summed over the namespace after the backlog. */
  outcomes: Record<string, number>;
  evaluated: number;
  expectedEvaluations: number;
  backlogSends: number;
  /** Redis commands the engage process sent while draining the backlog (each awaited alone). */
  redisCommands: number;
  /** Backlog events with a name some automation triggers on or cancels with. */
  matchingEvents: number;
  latency: LatencyResult[];
}

async function eventsPhase(context: Context): Promise<EventsResult> {
  const { settings } = context;
  const namespace = freshNamespace("events");
  console.log(`events: ${settings.profiles} profiles, 100 automations, ${settings.events} events in ${namespace}`);
  await createProfiles(context, namespace, settings.profiles);
  const automations = workloadAutomations(namespace);
  await addEngageDurable(context.jsm);
  const random = seeded(20261127);
  const shape: EventShape = { namespace, tag: "ev", profiles: settings.profiles, nowMs: Date.now() };
  const published = await publishEvents(context.js, settings.events, (index) => mixEvent(shape, index, random));
  // A discarded bare run first: connection, JIT and server caches warm for both sides.
  await bareRun(context, namespace, "ack", "warm-up");
  const rows = [await bareRun(context, namespace, "ack", "before")];
  rows.push(await bareRun(context, namespace, "parse", "before"));
  const engage = await openEngage(context, "events", automations);
  const latency: LatencyResult[] = [];
  try {
    const deadline = performance.now() + settings.timeoutS * 1000;
    const before = sampleCpu(context.pids);
    const started = performance.now();
    const commandsBefore = engage.redisCommands();
    engage.start();
    const consumer = { stream: Streams.events, name: ConsumerNames.engage, total: settings.events };
    const drain = await untilDrained(context.jsm, consumer, started, deadline);
    const row = rateRow(
      "engage: engine + events consumer + poller",
      settings.events,
      drain,
      cpuPercent(before, sampleCpu(context.pids)),
    );
    rows.push(engage.failure() === undefined ? row : { ...row, error: engage.failure() });
    const redisCommands = engage.redisCommands() - commandsBefore;
    console.log(`  engage: ${whole(row.perSecond)} events/s`);
    rows.push(await bareRun(context, namespace, "ack", "after"));
    const counted = await outcomes(engage.store, automations, published);
    const reader = await openReader(context, namespace);
    try {
      const backlogSends = await reader.settle(performance.now() + settings.timeoutS * 1000);
      if (settings.latencySeconds > 0)
        for (const rate of settings.latencyRates)
          latency.push(await latencyPhase(context, { namespace, reader, rate }));
      return {
        namespace,
        automations: automations.length,
        profiles: settings.profiles,
        eventBytes: round(published.bytes / published.count),
        rows,
        outcomes: counted.totals,
        evaluated: counted.evaluated,
        expectedEvaluations: counted.expected,
        backlogSends,
        redisCommands,
        matchingEvents: ACTIVE_EVENTS.reduce((sum, name) => sum + (published.byName.get(name) ?? 0), 0),
        latency,
      };
    } finally {
      await reader.close();
    }
  } finally {
    await engage.stop();
  }
}

interface Reader {
  /** Send jobs of the namespace's Sender seen so far (the backlog's, then the latency run's). */
  seen(): number;
  /** Waits until the consumer is empty and no job arrived for 500 ms; resolves the jobs seen. */
  settle(deadline: number): Promise<number>;
  /** Publish time (performance.now()) of an event, by id: its first send job records a latency. */
  expect(eventId: string, at: number): void;
  /** Latencies (ms) recorded since the last call. */
  take(): number[];
  received(): number;
  duplicates(): number;
  close(): Promise<void>;
}

/** The bench's own explicit-ack durable on relais.sends.<ns>.mail (RELAIS_SENDS is a work queue). */
async function openReader(context: Context, namespace: string): Promise<Reader> {
  const nc = await connectNats(context.natsUrl, "relais-engage-bench-reader");
  const jsm = await jetstreamManager(nc);
  const name = `bench_reader_${namespace.replace(/[^A-Za-z0-9]/g, "_")}`;
  await jsm.consumers.add(Streams.sends, {
    durable_name: name,
    filter_subject: Subjects.send(namespace, SENDER),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: 20_000,
  });
  const messages = await (await jetstream(nc).consumers.get(Streams.sends, name)).consume({ max_messages: 512 });
  const expected = new Map<string, number>();
  let latencies: number[] = [];
  let seen = 0;
  let duplicates = 0;
  let lastAt = performance.now();
  const loop = (async () => {
    for await (const message of messages) {
      const at = performance.now();
      const job = message.json<SendJob>();
      message.ack();
      seen += 1;
      lastAt = at;
      const eventId = job.event?.id;
      if (typeof eventId !== "string") continue;
      const publishedAt = expected.get(eventId);
      if (publishedAt === undefined) {
        if (eventId.startsWith("lat-")) duplicates += 1;
        continue;
      }
      expected.delete(eventId);
      latencies.push(at - publishedAt);
    }
  })();
  return {
    seen: () => seen,
    async settle(deadline) {
      while (performance.now() < deadline) {
        const info = await jsm.consumers.info(Streams.sends, name);
        if (info.num_pending + info.num_ack_pending === 0 && performance.now() - lastAt > 500) break;
        await sleep(100);
      }
      return seen;
    },
    expect: (eventId, at) => {
      expected.set(eventId, at);
    },
    take: () => {
      const taken = latencies;
      latencies = [];
      return taken;
    },
    received: () => latencies.length,
    duplicates: () => duplicates,
    async close() {
      await messages.close();
      await loop;
      await jsm.consumers.delete(Streams.sends, name).catch(() => undefined);
      await nc.drain().catch(() => undefined);
    },
  };
}

interface LatencyResult {
  rate: number;
  seconds: number;
  published: number;
  publishErrors: number;
  /** Achieved publishing rate (events/s). */
  achievedRate: number;
  received: number;
  duplicates: number;
  ms: Quantiles | undefined;
  cpu: CpuUse;
}

/** Events that trigger one zero-wait automation each ("send-NN": total 95.5 > 90.0), paced. */
async function latencyPhase(
  context: Context,
  run: { namespace: string; reader: Reader; rate: number },
): Promise<LatencyResult> {
  const { rate } = run;
  const seconds = context.settings.latencySeconds;
  const total = rate * seconds;
  console.log(`  latency: ${total} events at ${rate}/s`);
  const random = seeded(7);
  const publishes: Promise<unknown>[] = [];
  let publishErrors = 0;
  const before = sampleCpu(context.pids);
  const started = performance.now();
  for (let index = 0; index < total; index++) {
    const wait = started + (index * 1000) / rate - performance.now();
    if (wait >= 1) await sleep(wait);
    const at = new Date().toISOString();
    const event: EventMessage = {
      id: `lat-${rate}-${index}`,
      namespace: run.namespace,
      profileId: profileId(Math.floor(random() * context.settings.profiles)),
      name: active(index),
      timestamp: at,
      receivedAt: at,
      attributes: { total: 95.5, ref: `r${index % 3}`, channel: "app", sku: `sku-${index % 500}` },
    };
    run.reader.expect(event.id, performance.now());
    const publish = context.js.publish(Subjects.event(run.namespace, event.name), JSON.stringify(event), {
      msgID: `${run.namespace}:${event.id}`,
    });
    publishes.push(
      publish.catch(() => {
        publishErrors += 1;
      }),
    );
  }
  const achievedRate = total / ((performance.now() - started) / 1000);
  await Promise.all(publishes);
  const deadline = performance.now() + 30_000;
  while (run.reader.received() < total - publishErrors && performance.now() < deadline) await sleep(20);
  const cpu = cpuPercent(before, sampleCpu(context.pids));
  await run.reader.settle(performance.now() + 5000);
  const latencies = run.reader.take();
  return {
    rate,
    seconds,
    published: total,
    publishErrors,
    achievedRate: round(achievedRate),
    received: latencies.length,
    duplicates: run.reader.duplicates(),
    ms: quantiles(latencies),
    cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// Phase 3: runEngage itself, cold, on a backlog (Automations in the config KV)

interface ColdResult {
  namespace: string;
  row: RateRow;
  startupMs: number | undefined;
  evaluated: number;
  expectedEvaluations: number;
  outcomes: Record<string, number>;
  stopError?: string;
}

async function coldPhase(context: Context): Promise<ColdResult> {
  const { settings } = context;
  const namespace = freshNamespace("cold");
  const profiles = Math.min(settings.profiles, 2000);
  console.log(`cold: runEngage started on ${settings.coldEvents} events, automations in the config KV`);
  await createProfiles(context, namespace, profiles);
  const automations = workloadAutomations(namespace);
  for (const automation of automations)
    await context.kv.put(
      ConfigKeys.of(namespace, "Automation", automation.name),
      JSON.stringify({ generation: 1, spec: automation.spec }),
    );
  await addEngageDurable(context.jsm).catch(() => undefined);
  const random = seeded(99);
  const shape: EventShape = { namespace, tag: "cold", profiles, nowMs: Date.now() };
  const published = await publishEvents(context.js, settings.coldEvents, (index) => mixEvent(shape, index, random));
  const env = {
    RELAIS_NATS_URL: context.natsUrl,
    RELAIS_REDIS_URL: context.redisUrl,
    RELAIS_HOST: "127.0.0.1",
    RELAIS_PORT: "0",
  };
  const abort = new AbortController();
  const before = sampleCpu(context.pids);
  const started = performance.now();
  let listeningAt: number | undefined;
  const running = runEngage(env, abort.signal, {
    log: createLogger({ name: "relais-engage-bench-cold", level: "silent" }),
    onListening: () => {
      listeningAt = performance.now();
    },
  });
  const consumer = { stream: Streams.events, name: ConsumerNames.engage, total: settings.coldEvents };
  const drain = await untilDrained(context.jsm, consumer, started, started + settings.timeoutS * 1000);
  const row = rateRow(
    "runEngage cold start (KV watch + consumer)",
    settings.coldEvents,
    drain,
    cpuPercent(before, sampleCpu(context.pids)),
  );
  abort.abort();
  const stopped = await bounded(running, 30_000);
  const counted = await outcomes(new AutomationStore(context.redis), automations, published);
  return {
    namespace,
    row,
    startupMs: listeningAt === undefined ? undefined : round(listeningAt - started, 1),
    evaluated: counted.evaluated,
    expectedEvaluations: counted.expected,
    outcomes: counted.totals,
    ...(stopped.error !== undefined && { stopError: stopped.error }),
  };
}

// ---------------------------------------------------------------------------------------------
// Phase 4: timers at BENCH_PENDING pending

const TIMER_AUTOMATIONS = 10;
const HOUR = 3_600_000;

function timerAutomations(namespace: string): CompiledAutomation[] {
  return Array.from({ length: TIMER_AUTOMATIONS }, (_, index) =>
    compileAutomation(
      namespace,
      `cart-${index}`,
      1,
      automationSpecSchema.parse({
        senderRef: { name: SENDER },
        trigger: { event: "cart_updated", filter: "event.attributes.itemCount > 0" },
        wait: { after: "48h" },
        cancelOn: [{ event: "purchase", filter: "event.attributes.cartId == trigger.attributes.cartId" }],
        message: EMAIL,
      }),
    ),
  );
}

/** Instance `index` of the fill: automation, profile and event derived from it; due in the future. */
function timerInstance(shape: { namespace: string; profiles: number; nowMs: number }, index: number): Instance {
  const automation = `cart-${index % TIMER_AUTOMATIONS}`;
  const profile = profileId(index % shape.profiles);
  const eventId = `tev-${index}`;
  const at = new Date(shape.nowMs).toISOString();
  return {
    key: `${automation}|${profile}|${eventId}`,
    automation,
    generation: 1,
    profileId: profile,
    trigger: {
      id: eventId,
      namespace: shape.namespace,
      profileId: profile,
      name: "cart_updated",
      timestamp: at,
      receivedAt: at,
      attributes: { cartId: `c-${index}`, itemCount: 1 + (index % 5), total: 19.5 + (index % 200) },
    },
    dueMs: shape.nowMs + HOUR + (index % 4700) * 36_000,
  };
}

async function memoryInfo(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info("memory");
  const wanted = ["used_memory", "used_memory_rss", "used_memory_dataset", "used_memory_peak"];
  const result: Record<string, number> = {};
  for (const line of text.split("\r\n")) {
    const [key = "", value = ""] = line.split(":");
    if (wanted.includes(key)) result[key] = Number(value);
  }
  return result;
}

interface TimersResult {
  namespace: string;
  pending: number;
  due: number;
  profiles: number;
  instanceBytes: number;
  fill: {
    ms: number;
    perSecond: number;
    cpu: CpuUse;
    memoryBefore: Record<string, number>;
    memoryAfter: Record<string, number>;
  };
  bytesPerInstance: number;
  makeDueMs: number;
  /** BGREWRITEAOF after the fill, waited for (not timed). */
  aofSettleMs: number;
  fire: {
    fired: number;
    ms: number;
    perSecond: number;
    cpu: CpuUse;
    sendsEnqueued: number;
    pendingAfter: number;
    sent: number;
    redisCommandsPerFire: number;
  };
  cancelUs: Quantiles | undefined;
  cancelled: number;
  instancesOfUs: Quantiles | undefined;
  instancesPerProfile: number;
  cancelByEventUs: Quantiles | undefined;
  cancelledByEvent: number;
}

async function fill(
  context: Context,
  store: AutomationStore,
  shape: { namespace: string; profiles: number; nowMs: number },
) {
  const { pending } = context.settings;
  let next = 100_000;
  return timed(context, () =>
    inWindows(
      pending,
      async (index) => {
        await store.schedule(shape.namespace, timerInstance(shape, index));
        if (index + 1 >= next) {
          next += 100_000;
          console.log(`    ${index + 1} scheduled`);
        }
      },
      5000,
    ),
  );
}

/** Measures `calls` sequential calls of `task` in µs. */
async function latencies(calls: number, task: (index: number) => Promise<unknown>): Promise<Quantiles | undefined> {
  const values: number[] = [];
  for (let index = 0; index < calls; index++) {
    const started = performance.now();
    await task(index);
    values.push((performance.now() - started) * 1000);
  }
  const result = quantiles(values);
  return result === undefined
    ? undefined
    : {
        count: result.count,
        p50: round(result.p50),
        p90: round(result.p90),
        p99: round(result.p99),
        max: round(result.max),
      };
}

async function timersPhase(context: Context): Promise<TimersResult> {
  const { settings } = context;
  const namespace = freshNamespace("timers");
  const profiles = Math.min(settings.timerProfiles, settings.pending);
  console.log(
    `timers: ${profiles} profiles, ${settings.pending} pending instances, ${settings.due} made due (${namespace})`,
  );
  await createProfiles(context, namespace, profiles);
  const automations = timerAutomations(namespace);
  const engage = await openEngage(context, "timers", automations);
  const sends = `bench_timer_sends_${Date.now().toString(36)}`;
  await context.jsm.consumers.add(Streams.sends, {
    durable_name: sends,
    filter_subject: Subjects.send(namespace, SENDER),
    ack_policy: AckPolicy.Explicit,
  });
  try {
    const shape = { namespace, profiles, nowMs: Date.now() };
    const memoryBefore = await memoryInfo(context.redis);
    const filled = await fill(context, engage.store, shape);
    const memoryAfter = await memoryInfo(context.redis);
    // The fill grew the AOF by about a GB: rewrite it now, untimed, rather than during the fires.
    const aofSettleMs = await settleAof(context.redis, performance.now() + settings.timeoutS * 1000);
    const zcard = await engage.store.pending(namespace);
    if (zcard !== settings.pending) throw new Error(`timer ZSET holds ${zcard}, not ${settings.pending}`);
    console.log(
      `    filled in ${(filled.ms / 1000).toFixed(1)} s; Redis used_memory ${mib(memoryAfter.used_memory ?? 0)} MiB`,
    );
    // The slice made due: spread over the ZSET, every stride-th instance.
    const stride = Math.max(1, Math.floor(settings.pending / settings.due));
    const dueIndex = (n: number): number => n * stride;
    const madeDue = await timed(context, () =>
      makeDue(context.redis, namespace, settings.due, (n) => timerInstance(shape, dueIndex(n)).key),
    );
    const commandsBefore = engage.redisCommands();
    const fired = await timed(context, () => engage.timers.tick());
    const fireCommands = engage.redisCommands() - commandsBefore;
    const info = await context.jsm.consumers.info(Streams.sends, sends);
    const pendingAfter = await engage.store.pending(namespace);
    const stats = await Promise.all(automations.map((automation) => engage.store.stats(namespace, automation.name)));
    console.log(`    fired ${fired.value} in ${(fired.ms / 1000).toFixed(1)} s`);
    const costs = await cancelCosts(context, engage, { shape, stride });
    return {
      namespace,
      pending: settings.pending,
      due: settings.due,
      profiles,
      instanceBytes: Buffer.byteLength(JSON.stringify(timerInstance(shape, 0))),
      fill: {
        ms: round(filled.ms),
        perSecond: round(settings.pending / (filled.ms / 1000)),
        cpu: filled.cpu,
        memoryBefore,
        memoryAfter,
      },
      bytesPerInstance: round(((memoryAfter.used_memory ?? 0) - (memoryBefore.used_memory ?? 0)) / settings.pending),
      makeDueMs: round(madeDue.ms),
      aofSettleMs: round(aofSettleMs),
      fire: {
        fired: fired.value,
        ms: round(fired.ms),
        perSecond: round(fired.value / (fired.ms / 1000)),
        cpu: fired.cpu,
        sendsEnqueued: info.num_pending,
        pendingAfter,
        sent: stats.reduce((sum, counters) => sum + (counters.sent ?? 0), 0),
        redisCommandsPerFire: round(fireCommands / Math.max(1, fired.value), 2),
      },
      instancesPerProfile: round(settings.pending / profiles, 1),
      ...costs,
    };
  } finally {
    await engage.stop();
    await context.jsm.consumers.delete(Streams.sends, sends).catch(() => undefined);
  }
}

async function aofRewriting(redis: Redis): Promise<boolean> {
  const text = await redis.info("persistence");
  return /aof_rewrite_in_progress:1|aof_rewrite_scheduled:1/.test(text);
}

/** Waits for a running AOF rewrite, starts one and waits for it; resolves the ms it took. */
async function settleAof(redis: Redis, deadline: number): Promise<number> {
  const started = performance.now();
  while ((await aofRewriting(redis)) && performance.now() < deadline) await sleep(250);
  await redis.bgrewriteaof().catch(() => undefined);
  while ((await aofRewriting(redis)) && performance.now() < deadline) await sleep(250);
  return performance.now() - started;
}

/** ZADD XX <now> for `count` instance keys, pipelined 5000 at a time. */
async function makeDue(redis: Redis, namespace: string, count: number, key: (n: number) => string): Promise<void> {
  const timers = RedisKeys.timers(namespace);
  const dueAt = Date.now() - 1000;
  for (let start = 0; start < count; start += 5000) {
    const pipeline = redis.pipeline();
    for (let n = start; n < Math.min(count, start + 5000); n++) pipeline.zadd(timers, "XX", dueAt, key(n));
    await pipeline.exec();
  }
}

/** store.cancel and store.instancesOf one at a time, and a cancel by event through the engine. */
async function cancelCosts(
  context: Context,
  engage: EngageProcess,
  run: { shape: { namespace: string; profiles: number; nowMs: number }; stride: number },
) {
  const { shape, stride } = run;
  const { settings } = context;
  // Instances still waiting: offsets 1 and 2 in each stride (never made due), or a spread when stride is 1.
  const waiting = (n: number, offset: number): Instance =>
    timerInstance(shape, stride > 2 ? n * stride + offset : (settings.due + n * 3 + offset) % settings.pending);
  const calls = Math.min(settings.cancels, Math.floor(settings.pending / Math.max(stride, 3)));
  let cancelled = 0;
  const cancelUs = await latencies(calls, async (n) => {
    const instance = waiting(n, 1);
    cancelled += await engage.store.cancel(shape.namespace, instance.profileId, [instance.key]);
  });
  const instancesOfUs = await latencies(Math.min(500, calls), (n) =>
    engage.store.instancesOf(shape.namespace, profileId((n * 97) % shape.profiles)),
  );
  const cancelledSoFar = async (): Promise<number> => {
    let total = 0;
    for (let index = 0; index < TIMER_AUTOMATIONS; index++)
      total += (await engage.store.stats(shape.namespace, `cart-${index}`)).cancelled ?? 0;
    return total;
  };
  const byEvent = Math.min(300, calls);
  const before = await cancelledSoFar();
  const cancelByEventUs = await latencies(byEvent, async (n) => {
    const instance = waiting(n, 2);
    const at = new Date().toISOString();
    await engage.engine.handleEvent({
      id: `purchase-${n}`,
      namespace: shape.namespace,
      profileId: instance.profileId,
      name: "purchase",
      timestamp: at,
      receivedAt: at,
      attributes: { cartId: instance.trigger.attributes.cartId },
    });
  });
  const cancelledByEvent = (await cancelledSoFar()) - before;
  return { cancelUs, cancelled, instancesOfUs, cancelByEventUs, cancelledByEvent };
}

// ---------------------------------------------------------------------------------------------
// Machine info and report

function versionOf(tool: "nats-server" | "redis-server"): string {
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
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: `${release()} ${arch()}`,
    loadAverage1m: round(loadavg()[0] ?? 0, 2),
    node: process.version,
    natsServer: versionOf("nats-server"),
    redisServer: `${versionOf("redis-server")} (appendonly yes, appendfsync everysec: the harness default)`,
    natsJs: packageVersion("@nats-io/jetstream"),
    ioredis: packageVersion("ioredis"),
    celJs: packageVersion("@marcbachmann/cel-js"),
  };
}

const whole = (value: number | undefined): string =>
  value === undefined ? "-" : Math.round(value).toLocaleString("en-US");
const fixed = (value: number | undefined, digits: number): string =>
  value === undefined ? "-" : value.toFixed(digits);

function cpuCell(cpu: CpuUse | undefined): string {
  if (cpu === undefined) return "-";
  return [cpu.bench, cpu.nats, cpu.redis, cpu.others]
    .map((value) => (value === undefined ? "-" : String(value)))
    .join("/");
}

interface TableRow {
  measurement: string;
  count: string;
  wallS: string;
  perSecond: string;
  ratio: string;
  p50: string;
  p99: string;
  cpu: string;
  notes: string;
}

const HEADER: TableRow = {
  measurement: "measurement",
  count: "count",
  wallS: "wall s",
  perSecond: "per s",
  ratio: "/bare",
  p50: "p50",
  p99: "p99",
  cpu: "CPU% b/n/r/o",
  notes: "notes",
};

function printTable(rows: TableRow[]): void {
  const keys = Object.keys(HEADER) as (keyof TableRow)[];
  const all = [HEADER, ...rows];
  const widths = keys.map((key) => Math.max(...all.map((row) => row[key].length)));
  const line = (row: TableRow): string =>
    keys
      .map((key, i) =>
        i === 0 || key === "notes" ? row[key].padEnd(widths[i] ?? 0) : row[key].padStart(widths[i] ?? 0),
      )
      .join("  ")
      .trimEnd();
  console.log(line(HEADER));
  console.log("-".repeat(widths.reduce((sum, width) => sum + width + 2, -2)));
  for (const row of rows) console.log(line(row));
}

const blank: Omit<TableRow, "measurement"> = {
  count: "",
  wallS: "",
  perSecond: "",
  ratio: "",
  p50: "",
  p99: "",
  cpu: "",
  notes: "",
};

function bareMean(rows: RateRow[]): number | undefined {
  const bare = rows.filter((row) => row.name.includes("consume+ack") && row.perSecond !== undefined);
  return bare.length === 0 ? undefined : bare.reduce((sum, row) => sum + (row.perSecond ?? 0), 0) / bare.length;
}

function rateTableRow(row: RateRow, bare: number | undefined, notes: string): TableRow {
  return {
    ...blank,
    measurement: row.name,
    count: whole(row.messages),
    wallS: fixed(row.wallS, 2),
    perSecond: whole(row.perSecond),
    ratio: bare === undefined || row.perSecond === undefined ? "-" : fixed(row.perSecond / bare, 3),
    cpu: cpuCell(row.cpu),
    notes: row.error ?? notes,
  };
}

function skippedTotal(outcomes: Record<string, number>): number {
  return Object.entries(outcomes)
    .filter(([counter]) => counter.startsWith("skipped:"))
    .reduce((sum, [, value]) => sum + value, 0);
}

function latencyRow(latency: LatencyResult): TableRow {
  const problems = latency.duplicates + latency.publishErrors > 0;
  return {
    ...blank,
    measurement: `trigger -> enqueued, zero-wait (${latency.rate}/s x ${latency.seconds} s)`,
    count: whole(latency.received),
    perSecond: whole(latency.achievedRate),
    p50: `${fixed(latency.ms?.p50, 2)} ms`,
    p99: `${fixed(latency.ms?.p99, 2)} ms`,
    cpu: cpuCell(latency.cpu),
    notes:
      `p90 ${fixed(latency.ms?.p90, 2)} ms, max ${fixed(latency.ms?.max, 1)} ms; received ${latency.received}/${latency.published}` +
      (problems ? `, dup ${latency.duplicates}, publish errors ${latency.publishErrors}` : ""),
  };
}

function eventsRows(events: EventsResult): TableRow[] {
  const bare = bareMean(events.rows);
  const o = events.outcomes;
  const engage = events.rows.find((row) => row.name.startsWith("engage"));
  const steady = engage?.steadyPerSecond;
  const engageNotes =
    `steady ${whole(steady)}/s; evaluations ${events.evaluated}/${events.expectedEvaluations};` +
    ` triggered ${o.triggered ?? 0}, filteredOut ${o.filteredOut ?? 0}, sent ${o.sent ?? 0}, cancelled ${o.cancelled ?? 0},` +
    ` skipped ${skippedTotal(o)}, send jobs on stream ${events.backlogSends};` +
    ` Redis commands ${fixed(events.redisCommands / (engage?.messages ?? 1), 2)}/event,` +
    ` ${fixed(events.redisCommands / Math.max(1, events.matchingEvents), 1)}/matching event (${events.matchingEvents})`;
  const rows = events.rows.map((row) =>
    rateTableRow(row, bare, row.name.startsWith("engage") ? engageNotes : `steady ${whole(row.steadyPerSecond)}/s`),
  );
  rows.push(...events.latency.map(latencyRow));
  return rows;
}

function coldRow(cold: ColdResult, bare: number | undefined): TableRow {
  const missed = cold.expectedEvaluations - cold.evaluated;
  return rateTableRow(
    cold.row,
    bare,
    `startup ${fixed(cold.startupMs, 0)} ms incl.; evaluations ${cold.evaluated}/${cold.expectedEvaluations}` +
      (missed > 0 ? ` - ${missed} trigger evaluations MISSED` : ""),
  );
}

function timerRows(t: TimersResult): TableRow[] {
  const us = (q: Quantiles | undefined, key: "p50" | "p99"): string => (q === undefined ? "-" : `${whole(q[key])} us`);
  return [
    {
      ...blank,
      measurement: "timer fill: AutomationStore.schedule (5000 in flight)",
      count: whole(t.pending),
      wallS: fixed(t.fill.ms / 1000, 1),
      perSecond: whole(t.fill.perSecond),
      cpu: cpuCell(t.fill.cpu),
      notes:
        `Redis used_memory ${mib(t.fill.memoryBefore.used_memory ?? 0)} -> ${mib(t.fill.memoryAfter.used_memory ?? 0)} MiB` +
        ` (rss ${mib(t.fill.memoryAfter.used_memory_rss ?? 0)} MiB), ${whole(t.bytesPerInstance)} B/instance (JSON ${t.instanceBytes} B)`,
    },
    {
      ...blank,
      measurement: `timer fires: TimerPoller.tick() at ${whole(t.pending)} pending`,
      count: whole(t.fire.fired),
      wallS: fixed(t.fire.ms / 1000, 2),
      perSecond: whole(t.fire.perSecond),
      cpu: cpuCell(t.fire.cpu),
      notes:
        `${whole(t.due)} made due (ZADD XX, ${whole(t.makeDueMs)} ms) after an AOF rewrite (${fixed(t.aofSettleMs / 1000, 1)} s); ${t.fire.redisCommandsPerFire} Redis commands/fire; sent ${t.fire.sent}, jobs on stream ${t.fire.sendsEnqueued};` +
        ` ${whole(t.fire.pendingAfter)} still pending`,
    },
    {
      ...blank,
      measurement: `store.cancel, 1 key (ZREM...) at ${whole(t.pending - t.due)} pending`,
      count: whole(t.cancelUs?.count),
      p50: us(t.cancelUs, "p50"),
      p99: us(t.cancelUs, "p99"),
      notes: `cancelled ${t.cancelled}; max ${whole(t.cancelUs?.max)} us; sequential calls`,
    },
    {
      ...blank,
      measurement: `store.instancesOf (${t.instancesPerProfile} instances/profile)`,
      count: whole(t.instancesOfUs?.count),
      p50: us(t.instancesOfUs, "p50"),
      p99: us(t.instancesOfUs, "p99"),
      notes: "what every cancelling event pays before its CEL filters",
    },
    {
      ...blank,
      measurement: "cancel by event: engine.handleEvent(purchase)",
      count: whole(t.cancelByEventUs?.count),
      p50: us(t.cancelByEventUs, "p50"),
      p99: us(t.cancelByEventUs, "p99"),
      notes: `cancelled ${t.cancelledByEvent}; profile load + instancesOf + a CEL cancel filter per instance + CANCEL`,
    },
  ];
}

interface Report {
  command: string;
  machine: Record<string, string | number>;
  settings: Settings;
  events?: EventsResult;
  cold?: ColdResult;
  timers?: TimersResult;
  errors: string[];
}

function headline(report: Report): string[] {
  const lines: string[] = [];
  const events = report.events;
  const engage = events?.rows.find((row) => row.name.startsWith("engage"));
  const bare = events === undefined ? undefined : bareMean(events.rows);
  if (engage?.perSecond !== undefined && bare !== undefined)
    lines.push(
      `engage ${whole(engage.perSecond)} events/s with 100 automations = ${fixed((engage.perSecond / bare) * 100, 1)}%` +
        ` of bare nats.js consume+ack (${whole(bare)}/s, mean of before/after), ${whole(engage.messages)} events`,
    );
  for (const latency of events?.latency ?? [])
    if (latency.ms !== undefined)
      lines.push(
        `trigger -> enqueued (zero wait) at ${latency.rate}/s: p50 ${fixed(latency.ms.p50, 2)} ms,` +
          ` p99 ${fixed(latency.ms.p99, 2)} ms`,
      );
  if (report.cold !== undefined && report.cold.evaluated < report.cold.expectedEvaluations)
    lines.push(
      `runEngage cold start: ${report.cold.expectedEvaluations - report.cold.evaluated} of ${report.cold.expectedEvaluations}` +
        " trigger evaluations missed (events consumed before the KV watch delivered the automations; acked, lost)",
    );
  const t = report.timers;
  if (t !== undefined)
    lines.push(
      `timers: ${whole(t.fire.perSecond)} fires/s with ${whole(t.pending)} pending; fill ${whole(t.fill.perSecond)}/s,` +
        ` ${whole(t.bytesPerInstance)} B/instance in Redis; cancel p50 ${whole(t.cancelUs?.p50)} us, p99 ${whole(t.cancelUs?.p99)} us`,
    );
  return lines;
}

/** Timed stretches during which other processes used more than a quarter of a core. */
function noiseWarnings(report: Report): string[] {
  const stretches: [string, CpuUse][] = [
    ...(report.events?.rows ?? []).map((row): [string, CpuUse] => [row.name, row.cpu]),
    ...(report.events?.latency ?? []).map((latency): [string, CpuUse] => [`latency ${latency.rate}/s`, latency.cpu]),
  ];
  if (report.cold !== undefined) stretches.push([report.cold.row.name, report.cold.row.cpu]);
  if (report.timers !== undefined)
    stretches.push(["timer fill", report.timers.fill.cpu], ["timer fires", report.timers.fire.cpu]);
  return stretches
    .filter(([, cpu]) => (cpu.others ?? 0) > 25)
    .map(([name, cpu]) => `${name}: processes outside the bench used ${cpu.others ?? 0}% of a core (noisy machine)`);
}

function printReport(report: Report): void {
  const rows: TableRow[] = [];
  if (report.events !== undefined) rows.push(...eventsRows(report.events));
  if (report.cold !== undefined)
    rows.push(coldRow(report.cold, report.events === undefined ? undefined : bareMean(report.events.rows)));
  if (report.timers !== undefined) rows.push(...timerRows(report.timers));
  console.log("");
  printTable(rows);
  console.log(
    "\nper s: count / wall time, from the consumer's start until the durable shows num_pending + num_ack_pending = 0" +
      " (polled every 25 ms); steady: 10% -> 90%. /bare: over the mean of the two bare nats.js consume+ack runs." +
      "\nCPU%: % of one core over the timed stretch: b = this process (the engage process and the orchestrator)," +
      " n = nats-server, r = redis-server, o = every other process on the machine.",
  );
  console.log("\nHeadline:");
  for (const line of headline(report)) console.log(`  ${line}`);
  for (const warning of noiseWarnings(report)) console.log(`  WARNING ${warning}`);
  for (const error of report.errors) console.log(`  ERROR ${error}`);
}

function writeReport(report: Report): void {
  const dir = join(import.meta.dirname, "..", "..", "bench-results");
  mkdirSync(dir, { recursive: true });
  const json = JSON.stringify({ ...report, headline: headline(report) }, null, 2);
  writeFileSync(join(dir, "engage.json"), `${json}\n`);
  console.log(`\n${json}`);
  console.log(`\nwritten to ${relative(process.cwd(), join(dir, "engage.json"))}`);
}

// ---------------------------------------------------------------------------------------------
// Main

async function openContext(stack: Stack, settings: Settings): Promise<Context> {
  const natsUrl = stack.nats?.url ?? "";
  const redisUrl = stack.redis?.url ?? "";
  const nc = await connectNats(natsUrl, "relais-engage-bench");
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const redis = connectRedis(redisUrl, "relais-engage-bench");
  const pids: Partial<Record<CpuRole, number>> = { bench: process.pid };
  if (stack.nats?.process.pid !== undefined) pids.nats = stack.nats.process.pid;
  if (stack.redis?.process.pid !== undefined) pids.redis = stack.redis.process.pid;
  return {
    stack,
    natsUrl,
    redisUrl,
    nc,
    js: jetstream(nc),
    jsm,
    kv: await openConfigBucket(nc),
    redis,
    profiles: new ProfileStore(redis),
    settings,
    pids,
  };
}

async function runPhase<T>(report: Report, name: string, task: () => Promise<T>): Promise<T | undefined> {
  try {
    return await task();
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    report.errors.push(`${name}: ${message}`);
    console.error(`${name} failed:`, error);
    return undefined;
  }
}

async function measure(context: Context, report: Report): Promise<void> {
  const { phases } = context.settings;
  if (phases.includes("events")) {
    const events = await runPhase(report, "events", () => eventsPhase(context));
    if (events !== undefined) report.events = events;
  }
  if (phases.includes("cold") && context.settings.coldEvents > 0) {
    const cold = await runPhase(report, "cold", () => coldPhase(context));
    if (cold !== undefined) report.cold = cold;
  }
  if (phases.includes("timers")) {
    const timers = await runPhase(report, "timers", () => timersPhase(context));
    if (timers !== undefined) report.timers = timers;
  }
}

async function main(): Promise<void> {
  const settings = readSettings();
  const started: { stack?: Stack } = {};
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${settings.budgetS} s; stopping everything`);
    void (started.stack?.stop() ?? Promise.resolve()).finally(() => process.exit(2));
  }, settings.budgetS * 1000);
  watchdog.unref();

  const report: Report = { command: commandLine(import.meta.filename), machine: machineInfo(), settings, errors: [] };
  console.log("Relais engage benchmark - one engage process vs bare JetStream consume+ack");
  console.log(`command: ${report.command}`);
  for (const [key, value] of Object.entries(report.machine)) console.log(`${key}: ${value}`);

  const stack = await startStack({ components: ["nats", "redis"] });
  started.stack = stack;
  let context: Context | undefined;
  try {
    context = await openContext(stack, settings);
    await measure(context, report);
    printReport(report);
    writeReport(report);
  } finally {
    await context?.nc.drain().catch(() => undefined);
    await context?.redis.quit().catch(() => undefined);
    await stack.stop();
    clearTimeout(watchdog);
  }
  if (report.errors.length > 0) process.exitCode = 1;
}

main().then(
  () => {
    // Everything this bench started is stopped; leftover handles must not keep it alive.
    process.exit(process.exitCode ?? 0);
  },
  (error: unknown) => {
    console.error("bench failed:", error);
    process.exit(1);
  },
);
