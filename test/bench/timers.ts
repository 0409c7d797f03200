// Durable automation timers, two candidate mechanisms measured in the same run on the same machine:
//   A. the Redis sorted set Relais uses today (AutomationStore from #engage: one Lua script per
//      schedule / claimDue / done / cancel; a poller claims due instances in batches of 500 every
//      200 ms, as TimerPoller does);
//   B. NATS JetStream message schedules (nats-server 2.12+, ADR-51): a stream with
//      allow_msg_schedules; one schedule message per timer on its own subject timers.s.<key> with
//      `Nats-Schedule: @at <RFC 3339>` and `Nats-Schedule-Target: timers.fire`; at the time the
//      server stores the body on timers.fire (same stream) and removes the schedule; a durable pull
//      consumer on timers.fire receives and acks it.
//
// Per mechanism, in this order: N far-future timers scheduled in windows of concurrent calls (rate,
// then memory and disk per pending timer); cancel latency with N pending, one call at a time (A:
// cancel() by key; B: delete by sequence, purge by subject, and a publish carrying
// Nats-Scheduler + Nats-Schedule-Next: purge); a burst of M timers all due at the same instant
// (a sample of them cancelled first: none may fire) for fire throughput and lateness; M timers
// spread over a few seconds for lateness at a steady rate; then timers due during a graceful
// restart of the server, to see that they survive and how late they fire. Lateness = time the
// bench sees the timer (A: claimDue returned it; B: the consumer received it) - due time; for B
// the server's store time of the fired message - due time is reported too.
//
// Run: npm run bench:timers   (or: node test/bench/timers.ts)
// Settings (environment): BENCH_TIMERS (pending timers N, 100000), BENCH_TIMERS_FIRE (timers per
// fire phase M, 10000), BENCH_TIMERS_CANCELS (sequential cancels per method, 1000),
// BENCH_TIMERS_WINDOW (concurrent schedule calls per window, 500), BENCH_TIMERS_SPREAD_S (spread
// phase length, 5), BENCH_TIMERS_MECHANISMS ("redis,nats"), BENCH_TIMERS_RESTART (1; 0 skips the
// restart phase), BENCH_TIMEOUT_S (watchdog for the whole run, 600).
// Figures go to stdout and bench-results/timers.json.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { arch, availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import type { ConsumerMessages, JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import { AutomationStore, instanceKey } from "#engage";
import type { Instance } from "#engage";
import { startStack, toolPath } from "#harness";
import type { Server, Stack } from "#harness";
import { connectNats, connectRedis } from "#runtime";
import type { EventMessage } from "#runtime";
import { commandLine, cpuSeconds, numberSetting, packageVersion, ticksPerSecond } from "./support.ts";

// ---------------------------------------------------------------------------------------------
// Settings

type Mechanism = "redis" | "nats";
const MECHANISMS: readonly Mechanism[] = ["redis", "nats"];

interface Settings {
  timers: number;
  fire: number;
  cancels: number;
  window: number;
  spreadS: number;
  mechanisms: Mechanism[];
  restart: boolean;
  timeoutS: number;
}

function readSettings(): Settings {
  const raw = process.env.BENCH_TIMERS_MECHANISMS;
  const mechanisms = (raw === undefined || raw === "" ? MECHANISMS.join(",") : raw)
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  for (const mechanism of mechanisms) {
    if (!MECHANISMS.includes(mechanism as Mechanism))
      throw new Error(`BENCH_TIMERS_MECHANISMS: unknown mechanism "${mechanism}" (${MECHANISMS.join(", ")})`);
  }
  const timers = numberSetting("BENCH_TIMERS", 100_000, { min: 1000, max: 10_000_000 });
  return {
    timers,
    fire: numberSetting("BENCH_TIMERS_FIRE", 10_000, { min: 100, max: 1_000_000 }),
    // Every cancel method takes its own sample out of the N pending timers.
    cancels: Math.min(numberSetting("BENCH_TIMERS_CANCELS", 1000, { min: 10, max: 100_000 }), Math.floor(timers / 4)),
    window: numberSetting("BENCH_TIMERS_WINDOW", 500, { min: 1, max: 10_000 }),
    spreadS: numberSetting("BENCH_TIMERS_SPREAD_S", 5, { min: 1, max: 120 }),
    mechanisms: mechanisms as Mechanism[],
    restart: numberSetting("BENCH_TIMERS_RESTART", 1, { min: 0, max: 1 }) === 1,
    timeoutS: numberSetting("BENCH_TIMEOUT_S", 600, { min: 30, max: 7200 }),
  };
}

// ---------------------------------------------------------------------------------------------
// Timers: the same instance JSON for both mechanisms (A keeps it in the instance hash, B in the
// schedule message's body)

const NAMESPACE = "benchtimers";
const AUTOMATION = "bench-welcome";
const HOUR_MS = 3_600_000;
/** The poller of A, as TimerPoller runs by default. */
const CLAIM_BATCH = 500;
const POLL_MS = 200;

function makeInstance(index: number, dueMs: number): Instance {
  const profileId = `p${index}`;
  const eventId = `e${index}`;
  const at = new Date(dueMs - HOUR_MS).toISOString();
  const trigger: EventMessage = {
    id: eventId,
    namespace: NAMESPACE,
    profileId,
    name: "signed_up",
    timestamp: at,
    receivedAt: at,
    attributes: { plan: "pro", source: "bench" },
  };
  return {
    key: instanceKey(AUTOMATION, profileId, eventId),
    automation: AUTOMATION,
    generation: 1,
    profileId,
    trigger,
    dueMs,
  };
}

/** Far-future due times: 1 h to 25 h ahead, in a scrambled order (triggers do not arrive sorted). */
function farDue(index: number, baseMs: number): number {
  return baseMs + HOUR_MS + ((index * 2_654_435_761) % 86_400_000);
}

// ---------------------------------------------------------------------------------------------
// Statistics, CPU and machine

interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function distribution(values: readonly number[]): Distribution | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
  const round = (value: number): number => Math.round(value * 1000) / 1000;
  const sum = values.reduce((total, value) => total + value, 0);
  return {
    count: values.length,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(sorted[sorted.length - 1] ?? 0),
    mean: round(sum / values.length),
  };
}

function machineSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const times = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map((value) => Number(value) / ticksPerSecond());
    const [, , , idle = 0, iowait = 0, , , steal = 0] = times;
    const total = times.reduce((sum, value) => sum + value, 0);
    return { busy: total - idle - iowait - steal, total };
  } catch {
    return undefined;
  }
}

type Role = "bench" | "server";
interface CpuSample {
  at: number;
  processes: Partial<Record<Role, number>>;
  machine: { busy: number; total: number } | undefined;
}
/** % of one core: this process, the mechanism's server, every other process; machine: busy % of all cores. */
type CpuUse = Partial<Record<Role | "others" | "machine", number>>;

function sampleCpu(serverPid: number | undefined): CpuSample {
  const processes: Partial<Record<Role, number>> = {};
  const bench = cpuSeconds(process.pid);
  const server = cpuSeconds(serverPid);
  if (bench !== undefined) processes.bench = bench;
  if (server !== undefined) processes.server = server;
  return { at: performance.now(), processes, machine: machineSeconds() };
}

function cpuPercent(from: CpuSample, to: CpuSample): CpuUse {
  const wall = (to.at - from.at) / 1000;
  const result: CpuUse = {};
  if (wall <= 0) return result;
  let ours = 0;
  for (const role of ["bench", "server"] as const) {
    const start = from.processes[role];
    const end = to.processes[role];
    if (start === undefined || end === undefined) continue;
    result[role] = Math.round(((end - start) / wall) * 100);
    ours += end - start;
  }
  if (from.machine !== undefined && to.machine !== undefined && to.machine.total > from.machine.total) {
    const busy = to.machine.busy - from.machine.busy;
    result.others = Math.max(0, Math.round(((busy - ours) / wall) * 100));
    result.machine = Math.round((busy / (to.machine.total - from.machine.total)) * 100);
  }
  return result;
}

/** Busy share of the machine over `ms`, before anything of this bench runs: the noise floor. */
async function idleProbe(ms: number): Promise<CpuUse> {
  const from = sampleCpu(undefined);
  await sleep(ms);
  return cpuPercent(from, sampleCpu(undefined));
}

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
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${release()} ${arch()}`,
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    node: process.version,
    natsServer: versionOf("nats-server"),
    redisServer: versionOf("redis-server"),
    natsJs: packageVersion("@nats-io/jetstream"),
    ioredis: packageVersion("ioredis"),
  };
}

function directoryBytes(dir: string): number {
  let total = 0;
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      total += entry.isDirectory() ? directoryBytes(path) : statSync(path).size;
    }
  } catch {
    // Files come and go while the server compacts; the total is an estimate either way.
  }
  return total;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// ---------------------------------------------------------------------------------------------
// The two mechanisms behind one interface

interface Footprint {
  /** Server memory the mechanism can attribute to its data (A: used_memory; B: RSS). */
  memoryBytes: number;
  /** Server RSS. */
  rssBytes: number;
  /** On-disk size of the server's data folder. */
  diskBytes: number;
  /** Stored bytes as the server counts them (B: JetStream storage), when it does. */
  storedBytes: number | undefined;
  /** How many timers the server reports as pending. */
  pending: number;
}

/** One timer seen firing: its key, due time, when the bench saw it, and (B) when the server stored it. */
type FireHandler = (key: string, dueMs: number, seenMs: number, storedMs: number | undefined) => void;

/** ms: SIGTERM until exited; start until the harness's readiness probe passes; then until this client is served. */
interface RestartTimes {
  stopMs: number;
  readyMs: number;
  answerMs: number;
}

async function restartServer(server: Server | undefined, answers: () => Promise<unknown>): Promise<RestartTimes> {
  if (server === undefined) throw new Error("no server to restart");
  const t0 = performance.now();
  await server.process.stop();
  const t1 = performance.now();
  await server.process.start();
  const t2 = performance.now();
  for (;;) {
    try {
      await answers();
      break;
    } catch {
      await sleep(10);
    }
  }
  const round = (value: number): number => Math.round(value);
  return { stopMs: round(t1 - t0), readyMs: round(t2 - t1), answerMs: round(performance.now() - t2) };
}

interface CancelMethod {
  name: string;
  /** Resolves true when the timer was cancelled. */
  cancel: (instance: Instance) => Promise<boolean>;
}

interface Backend {
  readonly label: string;
  serverPid(): number | undefined;
  schedule(instance: Instance): Promise<void>;
  readonly cancelMethods: readonly CancelMethod[];
  /** Starts firing due timers into `onFire`; resolves a stop function. */
  startFiring(onFire: FireHandler): Promise<() => Promise<void>>;
  footprint(): Promise<Footprint>;
  /** Graceful restart with the same data; resolves when the mechanism answers again. */
  restart(): Promise<RestartTimes>;
  close(): Promise<void>;
}

class RedisBackend implements Backend {
  readonly label = "A: Redis ZSET (AutomationStore)";
  readonly cancelMethods: readonly CancelMethod[];
  readonly #stack: Stack;
  readonly #redis: Redis;
  readonly #store: AutomationStore;
  pollErrors = 0;

  constructor(stack: Stack, url: string) {
    this.#stack = stack;
    this.#redis = connectRedis(url, "bench-timers");
    this.#store = new AutomationStore(this.#redis);
    this.cancelMethods = [
      {
        name: "cancel() by key",
        cancel: async (instance) => (await this.#store.cancel(NAMESPACE, instance.profileId, [instance.key])) === 1,
      },
    ];
  }

  serverPid(): number | undefined {
    return this.#stack.redis?.process.pid;
  }

  async schedule(instance: Instance): Promise<void> {
    if (!(await this.#store.schedule(NAMESPACE, instance)).created)
      throw new Error(`timer ${instance.key} existed already`);
  }

  async startFiring(onFire: FireHandler): Promise<() => Promise<void>> {
    const controller = new AbortController();
    const loop = this.#poll(controller.signal, onFire);
    return async () => {
      controller.abort();
      await loop;
    };
  }

  /** TimerPoller's loop: claim batches until one comes back short, then wait the interval. */
  async #poll(signal: AbortSignal, onFire: FireHandler): Promise<void> {
    while (!signal.aborted) {
      try {
        for (;;) {
          const due = await this.#store.claimDue(NAMESPACE, Date.now(), CLAIM_BATCH);
          const seen = Date.now();
          for (const instance of due) onFire(instance.key, instance.dueMs, seen, undefined);
          // Relais fires the batch (decide, send jobs, done); here only done ends the instances.
          await this.#store.done(NAMESPACE, due);
          if (due.length < CLAIM_BATCH) break;
        }
      } catch {
        this.pollErrors++;
      }
      await sleep(POLL_MS);
    }
  }

  async footprint(): Promise<Footprint> {
    const info = await this.#redis.info("memory");
    const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? 0);
    const dir = this.#stack.redis === undefined ? undefined : join(this.#stack.dir, "redis");
    return {
      memoryBytes: field("used_memory"),
      rssBytes: field("used_memory_rss"),
      diskBytes: dir === undefined ? 0 : directoryBytes(dir),
      storedBytes: undefined,
      pending: await this.#store.pending(NAMESPACE),
    };
  }

  async restart(): Promise<RestartTimes> {
    // The harness's probe gets +PONG only once the AOF is loaded.
    return restartServer(this.#stack.redis, () => this.#redis.ping());
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => undefined);
  }
}

const STREAM = "BENCH_TIMERS";
const SCHEDULE_PREFIX = "timers.s.";
const FIRE_SUBJECT = "timers.fire";
const CANCEL_SUBJECT = "timers.cancel";
const CONSUMER = "bench-fire";

class NatsBackend implements Backend {
  readonly label = "B: JetStream message schedules";
  readonly cancelMethods: readonly CancelMethod[];
  readonly #stack: Stack;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #monitorUrl: string;
  /** Each timer's schedule message sequence, for delete-by-sequence. */
  readonly #seqs = new Map<string, number>();

  private constructor(stack: Stack, nc: NatsConnection, jsm: JetStreamManager) {
    this.#stack = stack;
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = jetstream(nc);
    this.#monitorUrl = stack.nats?.monitorUrl ?? "";
    this.cancelMethods = [
      { name: "delete msg by seq", cancel: (instance) => this.#deleteBySeq(instance) },
      {
        name: "purge subject (by key)",
        cancel: async (instance) =>
          (await this.#jsm.streams.purge(STREAM, { filter: `${SCHEDULE_PREFIX}${instance.key}` })).purged === 1,
      },
      {
        name: "cancel publish (Nats-Scheduler)",
        cancel: async (instance) => {
          await this.#js.publish(CANCEL_SUBJECT, undefined, {
            cancelSchedule: { scheduleSubject: `${SCHEDULE_PREFIX}${instance.key}` },
          });
          return true;
        },
      },
    ];
  }

  /** Connects and creates the stream and the fire consumer; rejects with the server's words if it refuses. */
  static async open(stack: Stack): Promise<NatsBackend> {
    const nats = stack.nats;
    if (nats === undefined) throw new Error("the stack has no nats-server");
    const nc = await connectNats(nats.url, "bench-timers");
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: STREAM,
        subjects: ["timers.>"],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        allow_msg_schedules: true,
      });
      await jsm.consumers.add(STREAM, {
        durable_name: CONSUMER,
        filter_subject: FIRE_SUBJECT,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
        max_ack_pending: 20_000,
      });
      return new NatsBackend(stack, nc, jsm);
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  serverPid(): number | undefined {
    return this.#stack.nats?.process.pid;
  }

  async #deleteBySeq(instance: Instance): Promise<boolean> {
    const seq = this.#seqs.get(instance.key);
    if (seq === undefined) throw new Error(`no sequence for ${instance.key}`);
    return this.#jsm.streams.deleteMessage(STREAM, seq, false);
  }

  async schedule(instance: Instance): Promise<void> {
    const ack = await this.#js.publish(`${SCHEDULE_PREFIX}${instance.key}`, JSON.stringify(instance), {
      schedule: { specification: { at: new Date(instance.dueMs) }, target: FIRE_SUBJECT },
    });
    this.#seqs.set(instance.key, ack.seq);
  }

  async startFiring(onFire: FireHandler): Promise<() => Promise<void>> {
    const consumer = await this.#js.consumers.get(STREAM, CONSUMER);
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 1000 });
    const loop = (async () => {
      for await (const message of messages) {
        const seen = Date.now();
        const instance = message.json<Instance>();
        // nats.js parses the ack subject's nanosecond timestamp into a number (sub-microsecond precision lost).
        const stored = message.info.timestampNanos / 1e6;
        onFire(instance.key, instance.dueMs, seen, stored);
        message.ack();
      }
    })();
    return async () => {
      messages.stop();
      await loop;
    };
  }

  async footprint(): Promise<Footprint> {
    const varz = (await (await fetch(`${this.#monitorUrl}/varz`)).json()) as { mem: number };
    const jsz = (await (await fetch(`${this.#monitorUrl}/jsz`)).json()) as { storage: number };
    const info = await this.#jsm.streams.info(STREAM);
    // Pending timers = subjects under timers.s. (one schedule message per subject): every subject
    // but timers.fire and timers.cancel when they hold messages.
    let others = 0;
    for (const subject of [FIRE_SUBJECT, CANCEL_SUBJECT]) {
      const state = (await this.#jsm.streams.info(STREAM, { subjects_filter: subject })).state;
      others += Object.keys(state.subjects ?? {}).length;
    }
    const dir = join(this.#stack.dir, "nats", "jetstream");
    return {
      memoryBytes: varz.mem,
      rssBytes: varz.mem,
      diskBytes: directoryBytes(dir),
      storedBytes: jsz.storage,
      // Pending timers = subjects under timers.s. (one schedule message per subject).
      pending: (info.state.num_subjects ?? 0) - others,
    };
  }

  async restart(): Promise<RestartTimes> {
    // The harness's probe is healthz?js-enabled-only; full healthz also waits for the streams to
    // be recovered. A short request timeout, so a request lost in the reconnect costs 250 ms, not 5 s.
    const jsm = await jetstreamManager(this.#nc, { timeout: 250 });
    return restartServer(this.#stack.nats, async () => {
      const health = await fetch(`${this.#monitorUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (!health.ok) throw new Error(`healthz ${health.status}`);
      await jsm.streams.info(STREAM);
    });
  }

  async close(): Promise<void> {
    await this.#nc.drain().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Phases

/** What one fire phase expects and what it saw. */
class FireLog {
  readonly expected = new Map<string, number>();
  readonly cancelled = new Set<string>();
  readonly seen = new Set<string>();
  readonly lateness: number[] = [];
  readonly storedLateness: number[] = [];
  duplicates = 0;
  cancelledFired = 0;
  firstSeenMs: number | undefined;
  lastSeenMs: number | undefined;

  record(key: string, dueMs: number, seenMs: number, storedMs: number | undefined): void {
    if (!this.expected.has(key)) return;
    if (this.cancelled.has(key)) this.cancelledFired++;
    if (this.seen.has(key)) {
      this.duplicates++;
      return;
    }
    this.seen.add(key);
    this.lateness.push(seenMs - dueMs);
    if (storedMs !== undefined) this.storedLateness.push(storedMs - dueMs);
    this.firstSeenMs ??= seenMs;
    this.lastSeenMs = seenMs;
  }

  get awaited(): number {
    return this.expected.size - this.cancelled.size;
  }

  /** Fired timers that were not cancelled. */
  get fired(): number {
    return this.seen.size - this.cancelledFired;
  }
}

interface Timed<T> {
  elapsedMs: number;
  cpu: CpuUse;
  value: T;
}

async function timed<T>(backend: Backend, work: () => Promise<T>): Promise<Timed<T>> {
  const cpuFrom = sampleCpu(backend.serverPid());
  const started = performance.now();
  const value = await work();
  const elapsedMs = performance.now() - started;
  return { elapsedMs, cpu: cpuPercent(cpuFrom, sampleCpu(backend.serverPid())), value };
}

/** Schedules the instances in windows of `window` concurrent calls. */
async function scheduleAll(backend: Backend, instances: (index: number) => Instance, count: number, window: number) {
  for (let start = 0; start < count; start += window) {
    const batch: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + window); i++) batch.push(backend.schedule(instances(i)));
    await Promise.all(batch);
  }
}

interface CancelResult {
  method: string;
  count: number;
  failed: number;
  latencyMs: Distribution | undefined;
  error?: string;
}

/** One cancel at a time, each on a distinct pending far-future timer. */
async function measureCancels(backend: Backend, sample: (method: number, k: number) => Instance, count: number) {
  const results: CancelResult[] = [];
  for (const [m, method] of backend.cancelMethods.entries()) {
    const latencies: number[] = [];
    let failed = 0;
    try {
      for (let k = 0; k < count; k++) {
        const instance = sample(m, k);
        const started = performance.now();
        const ok = await method.cancel(instance);
        latencies.push(performance.now() - started);
        if (!ok) failed++;
      }
      results.push({ method: method.name, count, failed, latencyMs: distribution(latencies) });
    } catch (error) {
      results.push({
        method: method.name,
        count: latencies.length,
        failed,
        latencyMs: distribution(latencies),
        error: errorText(error),
      });
    }
  }
  return results;
}

interface FireResult {
  scheduled: number;
  cancelled: number;
  awaited: number;
  fired: number;
  cancelledFired: number;
  duplicates: number;
  missing: number;
  /** Schedule of the phase's timers (with the cancels of its sample). */
  scheduleMs: number;
  /** Due instant of the first timer - the end of the phase's scheduling. */
  leadMs: number;
  /** Last timer seen - first due instant. */
  drainMs: number | undefined;
  /** Fired timers / drainMs (a burst: how fast a backlog of due timers empties). */
  perSecond: number | undefined;
  latenessMs: Distribution | undefined;
  storedLatenessMs: Distribution | undefined;
  cpu: CpuUse;
}

interface FirePlan {
  first: number;
  count: number;
  /** Due time of the k-th timer given the first due instant. */
  dueOf: (k: number, firstDueMs: number) => number;
  /** Lead before the first due instant, so scheduling ends before it. */
  leadMs: number;
  /** Every how many timers one is cancelled before it is due (0: none). */
  cancelEvery: number;
  /** The last due instant, relative to the first. */
  spanMs: number;
}

function setCurrent(log: FireLog | undefined): void {
  current = log;
}
let current: FireLog | undefined;

async function cancelSample(backend: Backend, log: FireLog, instances: Instance[], every: number): Promise<void> {
  if (every <= 0) return;
  let m = 0;
  for (let k = 0; k < instances.length; k += every) {
    const instance = instances[k];
    const method = backend.cancelMethods[m++ % backend.cancelMethods.length];
    if (instance === undefined || method === undefined) continue;
    if (await method.cancel(instance)) log.cancelled.add(instance.key);
  }
}

async function waitForFires(log: FireLog, deadlineMs: number): Promise<void> {
  while (log.fired < log.awaited && Date.now() < deadlineMs) await sleep(20);
  // A cancelled timer that fires, or a duplicate, would come soon after the others.
  await sleep(1500);
}

async function runFirePhase(backend: Backend, plan: FirePlan, window: number): Promise<FireResult> {
  const log = new FireLog();
  const firstDueMs = Date.now() + plan.leadMs;
  const instances = Array.from({ length: plan.count }, (_, k) =>
    makeInstance(plan.first + k, plan.dueOf(k, firstDueMs)),
  );
  for (const instance of instances) log.expected.set(instance.key, instance.dueMs);
  setCurrent(log);
  const cpuFrom = sampleCpu(backend.serverPid());
  const started = performance.now();
  await scheduleAll(backend, (k) => instances[k] ?? makeInstance(0, 0), instances.length, window);
  await cancelSample(backend, log, instances, plan.cancelEvery);
  const scheduleMs = performance.now() - started;
  const leadMs = firstDueMs - Date.now();
  await waitForFires(log, firstDueMs + plan.spanMs + 60_000);
  setCurrent(undefined);
  const drainMs = log.lastSeenMs === undefined ? undefined : log.lastSeenMs - firstDueMs;
  return {
    scheduled: plan.count,
    cancelled: log.cancelled.size,
    awaited: log.awaited,
    fired: log.fired,
    cancelledFired: log.cancelledFired,
    duplicates: log.duplicates,
    missing: log.awaited - log.fired,
    scheduleMs: Math.round(scheduleMs),
    leadMs: Math.round(leadMs),
    drainMs,
    perSecond: drainMs === undefined || drainMs <= 0 ? undefined : Math.round((log.fired / drainMs) * 1000),
    latenessMs: distribution(log.lateness),
    storedLatenessMs: distribution(log.storedLateness),
    cpu: cpuPercent(cpuFrom, sampleCpu(backend.serverPid())),
  };
}

interface RestartResult {
  timers: number;
  /** From the restart call until the mechanism answers again. */
  restartMs: number;
  times: RestartTimes;
  /** Pending timers before the restart's own timers were scheduled, and after they all fired. */
  pendingBefore: number;
  pendingAfter: number;
  /** After the restart and the fires: the recovered server holding the pending timers. */
  footprintAfter: Footprint;
  fired: number;
  missing: number;
  latenessMs: Distribution | undefined;
  error?: string;
}

/** Timers due 0.5 s ahead, then a graceful restart at once: they must fire after it, late. */
async function runRestartPhase(backend: Backend, first: number, window: number): Promise<RestartResult> {
  const count = 1000;
  const log = new FireLog();
  const dueMs = Date.now() + 500;
  const instances = Array.from({ length: count }, (_, k) => makeInstance(first + k, dueMs + k));
  for (const instance of instances) log.expected.set(instance.key, instance.dueMs);
  const pendingBefore = (await backend.footprint()).pending;
  await scheduleAll(backend, (k) => instances[k] ?? makeInstance(0, 0), count, window);
  setCurrent(log);
  const started = performance.now();
  const times = await backend.restart();
  const restartMs = performance.now() - started;
  await waitForFires(log, Date.now() + 30_000);
  setCurrent(undefined);
  const footprintAfter = await backend.footprint();
  return {
    timers: count,
    restartMs: Math.round(restartMs),
    times,
    pendingBefore,
    pendingAfter: footprintAfter.pending,
    footprintAfter,
    fired: log.fired,
    missing: log.awaited - log.fired,
    latenessMs: distribution(log.lateness),
  };
}

interface MechanismResult {
  mechanism: Mechanism;
  label: string;
  error?: string;
  pending?: number;
  schedule?: { count: number; elapsedMs: number; perSecond: number; cpu: CpuUse };
  footprint?: {
    before: Footprint;
    after: Footprint;
    perTimer: Record<string, number | undefined>;
    /** Server RSS after the restart over the pending timers then (a fresh process: no write buffers). */
    rssPerTimerAfterRestart?: number | undefined;
  };
  cancels?: CancelResult[];
  burst?: FireResult;
  spread?: FireResult;
  restart?: RestartResult;
  pollErrors?: number;
}

function perTimer(before: Footprint, after: Footprint, count: number): Record<string, number | undefined> {
  const per = (a: number | undefined, b: number | undefined): number | undefined =>
    a === undefined || b === undefined ? undefined : Math.round((b - a) / count);
  return {
    memoryBytes: per(before.memoryBytes, after.memoryBytes),
    rssBytes: per(before.rssBytes, after.rssBytes),
    diskBytes: per(before.diskBytes, after.diskBytes),
    storedBytes: per(before.storedBytes, after.storedBytes),
  };
}

function progress(label: string, text: string): void {
  console.log(`  [${label.slice(0, 1)}] ${text}`);
}

async function scheduleFar(backend: Backend, settings: Settings, result: MechanismResult, baseMs: number) {
  const before = await backend.footprint();
  const run = await timed(backend, () =>
    scheduleAll(backend, (i) => makeInstance(i, farDue(i, baseMs)), settings.timers, settings.window),
  );
  // Let the AOF (appendfsync everysec) and the file store write out before measuring the disk.
  await sleep(1500);
  const after = await backend.footprint();
  const perSecond = Math.round((settings.timers / run.elapsedMs) * 1000);
  result.schedule = { count: settings.timers, elapsedMs: Math.round(run.elapsedMs), perSecond, cpu: run.cpu };
  result.footprint = { before, after, perTimer: perTimer(before, after, settings.timers) };
  result.pending = after.pending;
  progress(
    backend.label,
    `scheduled ${settings.timers} in ${(run.elapsedMs / 1000).toFixed(1)} s (${perSecond}/s); pending ${after.pending}`,
  );
  return perSecond;
}

function firePlans(settings: Settings, scheduleRate: number): { burst: FirePlan; spread: FirePlan } {
  const m = settings.fire;
  // Scheduling the phase's timers must end before the first is due: twice the measured rate, + 1.5 s.
  const leadMs = Math.round(1500 + (2 * m * 1000) / Math.max(1, scheduleRate));
  const cancelEvery = Math.max(10, Math.floor(m / 300));
  const spanMs = settings.spreadS * 1000;
  return {
    burst: { first: settings.timers, count: m, dueOf: (_k, first) => first, leadMs, cancelEvery, spanMs: 0 },
    spread: {
      first: settings.timers + m,
      count: m,
      dueOf: (k, first) => first + Math.floor((k * spanMs) / m),
      leadMs,
      cancelEvery,
      spanMs,
    },
  };
}

function describeFire(name: string, fire: FireResult): string {
  const late = fire.latenessMs;
  return (
    `${name}: ${fire.fired}/${fire.awaited} fired (${fire.cancelled} cancelled, ${fire.cancelledFired} of them fired,` +
    ` ${fire.duplicates} dup), drain ${fire.drainMs ?? "-"} ms, ${fire.perSecond ?? "-"}/s, lateness p50 ${late?.p50 ?? "-"}` +
    ` p99 ${late?.p99 ?? "-"} max ${late?.max ?? "-"} ms`
  );
}

async function runPhases(backend: Backend, settings: Settings, result: MechanismResult): Promise<void> {
  const baseMs = Date.now();
  const rate = await scheduleFar(backend, settings, result, baseMs);
  const methods = backend.cancelMethods.length;
  const stride = Math.max(methods, Math.floor(settings.timers / (settings.cancels * methods)) * methods);
  result.cancels = await measureCancels(
    backend,
    (m, k) => {
      const index = (k * stride + m) % settings.timers;
      return makeInstance(index, farDue(index, baseMs));
    },
    settings.cancels,
  );
  for (const cancel of result.cancels)
    progress(
      backend.label,
      `${cancel.method}: p50 ${cancel.latencyMs?.p50 ?? "-"} p99 ${cancel.latencyMs?.p99 ?? "-"} ms${cancel.error === undefined ? "" : ` ERROR ${cancel.error}`}`,
    );
  const plans = firePlans(settings, rate);
  const stop = await backend.startFiring((key, dueMs, seenMs, storedMs) =>
    current?.record(key, dueMs, seenMs, storedMs),
  );
  try {
    result.burst = await runFirePhase(backend, plans.burst, settings.window);
    progress(backend.label, describeFire("burst", result.burst));
    result.spread = await runFirePhase(backend, plans.spread, settings.window);
    progress(backend.label, describeFire(`spread over ${settings.spreadS} s`, result.spread));
    if (settings.restart) {
      result.restart = await runRestartPhase(backend, settings.timers + 2 * settings.fire, settings.window);
      const r = result.restart;
      if (result.footprint !== undefined && r.pendingAfter > 0)
        result.footprint.rssPerTimerAfterRestart = perTimer(
          result.footprint.before,
          r.footprintAfter,
          r.pendingAfter,
        ).rssBytes;
      progress(
        backend.label,
        `restart ${r.restartMs} ms, pending ${r.pendingBefore} -> ${r.pendingAfter}, ${r.fired}/${r.timers} due-during-restart fired, lateness p50 ${r.latenessMs?.p50 ?? "-"} max ${r.latenessMs?.max ?? "-"} ms`,
      );
    }
  } finally {
    await stop();
  }
}

async function runMechanism(stack: Stack, mechanism: Mechanism, settings: Settings): Promise<MechanismResult> {
  const label = mechanism === "redis" ? "A: Redis ZSET (AutomationStore)" : "B: JetStream message schedules";
  const result: MechanismResult = { mechanism, label };
  console.log(`${label}:`);
  let backend: Backend | undefined;
  try {
    backend = mechanism === "redis" ? new RedisBackend(stack, stack.redis?.url ?? "") : await NatsBackend.open(stack);
    await runPhases(backend, settings, result);
  } catch (error) {
    result.error = errorText(error);
    progress(label, `FAILED: ${result.error}`);
  } finally {
    if (backend instanceof RedisBackend) result.pollErrors = backend.pollErrors;
    await backend?.close();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Report

const ms = (value: number | undefined): string =>
  value === undefined ? "-" : value < 10 ? value.toFixed(2) : String(Math.round(value));
const count = (value: number | undefined): string =>
  value === undefined ? "-" : Math.round(value).toLocaleString("en-US");

function triple(d: Distribution | undefined): string {
  return d === undefined ? "-" : `${ms(d.p50)} / ${ms(d.p99)} / ${ms(d.max)}`;
}

function fireCells(fire: FireResult | undefined): Record<string, string> {
  if (fire === undefined) return {};
  return {
    fired: `${count(fire.fired)}/${count(fire.awaited)}`,
    wrong: `${fire.cancelledFired} / ${fire.duplicates} / ${fire.missing}`,
    drain: fire.drainMs === undefined ? "-" : `${(fire.drainMs / 1000).toFixed(2)} s`,
    rate: count(fire.perSecond),
    late: triple(fire.latenessMs),
    stored: triple(fire.storedLatenessMs),
    cpu: cpuCell(fire.cpu),
  };
}

function cpuCell(cpu: CpuUse | undefined): string {
  if (cpu === undefined) return "-";
  return [cpu.bench, cpu.server, cpu.others].map((value) => (value === undefined ? "-" : String(value))).join("/");
}

type Column = Record<string, string>;

function restartCells(restart: RestartResult | undefined): Column {
  if (restart === undefined) return {};
  const late = `late p50 ${ms(restart.latenessMs?.p50)} max ${ms(restart.latenessMs?.max)}`;
  return {
    restart: `${(restart.restartMs / 1000).toFixed(2)} s`,
    restartParts: `${restart.times.stopMs} / ${restart.times.readyMs} / ${restart.times.answerMs}`,
    restartPending: `${count(restart.pendingBefore)} -> ${count(restart.pendingAfter)}`,
    restartFired: `${restart.fired}/${restart.timers}, ${late}`,
  };
}

function column(result: MechanismResult): Column {
  if (result.error !== undefined && result.schedule === undefined) return { error: result.error };
  const cancel = (name: string): string => {
    const found = result.cancels?.find((c) => c.method === name);
    if (found === undefined) return "n/a";
    const text = `${ms(found.latencyMs?.p50)} / ${ms(found.latencyMs?.p99)}`;
    return found.error === undefined ? text : `${text} (ERROR)`;
  };
  const kb = (value: number | undefined): string => (value === undefined ? "-" : String(value));
  const burst = fireCells(result.burst);
  const spread = fireCells(result.spread);
  return {
    pending: count(result.pending),
    scheduleRate: count(result.schedule?.perSecond),
    scheduleCpu: cpuCell(result.schedule?.cpu),
    cancelKey: result.mechanism === "redis" ? cancel("cancel() by key") : cancel("purge subject (by key)"),
    cancelSeq: cancel("delete msg by seq"),
    cancelPublish: cancel("cancel publish (Nats-Scheduler)"),
    ...Object.fromEntries(Object.entries(burst).map(([key, value]) => [`burst.${key}`, value])),
    ...Object.fromEntries(Object.entries(spread).map(([key, value]) => [`spread.${key}`, value])),
    memory: kb(result.footprint?.perTimer.memoryBytes),
    rss: kb(result.footprint?.perTimer.rssBytes),
    rssRestart: kb(result.footprint?.rssPerTimerAfterRestart),
    disk: kb(result.footprint?.perTimer.diskBytes),
    stored: kb(result.footprint?.perTimer.storedBytes),
    ...restartCells(result.restart),
    error: result.error ?? "",
  };
}

function rows(settings: Settings): [string, string][] {
  const m = count(settings.fire);
  return [
    ["pending timers (N)", "pending"],
    [`schedule rate, timers/s (${settings.window} concurrent)`, "scheduleRate"],
    ["  CPU% bench/server/others while scheduling", "scheduleCpu"],
    ["cancel by key, ms p50 / p99 (N pending)", "cancelKey"],
    ["cancel by stored seq, ms p50 / p99", "cancelSeq"],
    ["cancel by publish (Nats-Scheduler), ms p50 / p99", "cancelPublish"],
    [`burst: ${m} due at one instant, fired`, "burst.fired"],
    ["  cancelled-but-fired / duplicates / missing", "burst.wrong"],
    ["  drained (last fired - due)", "burst.drain"],
    ["  fire throughput, timers/s", "burst.rate"],
    ["  lateness ms p50 / p99 / max (seen by bench)", "burst.late"],
    ["  lateness ms p50 / p99 / max (server store)", "burst.stored"],
    ["  CPU% bench/server/others", "burst.cpu"],
    [`spread: ${m} due over ${settings.spreadS} s, fired`, "spread.fired"],
    ["  cancelled-but-fired / duplicates / missing", "spread.wrong"],
    ["  lateness ms p50 / p99 / max (seen by bench)", "spread.late"],
    ["  lateness ms p50 / p99 / max (server store)", "spread.stored"],
    ["  CPU% bench/server/others", "spread.cpu"],
    ["bytes per pending timer: memory (A used_memory, B RSS)", "memory"],
    ["  server RSS", "rss"],
    ["  server RSS after the restart (recovered process)", "rssRestart"],
    ["  data folder on disk", "disk"],
    ["  JetStream storage (jsz)", "stored"],
    ["graceful restart with N pending, until answering", "restart"],
    ["  ms: stop / start until ready / until client served", "restartParts"],
    ["  pending before -> after (far-future timers kept)", "restartPending"],
    ["  1000 timers due during the restart: fired", "restartFired"],
    ["error", "error"],
  ];
}

function printTable(results: MechanismResult[], settings: Settings): void {
  const columns = results.map(column);
  const labelWidth = 56;
  const widths = results.map((result, i) =>
    Math.max(result.label.length, ...Object.values(columns[i] ?? {}).map((value) => Math.min(value.length, 60))),
  );
  const line = (label: string, cells: string[]): string =>
    [label.padEnd(labelWidth), ...cells.map((cell, i) => cell.padEnd(widths[i] ?? 0))].join("  ").trimEnd();
  console.log(
    line(
      "",
      results.map((result) => result.label),
    ),
  );
  console.log("-".repeat(labelWidth + widths.reduce((sum, width) => sum + width + 2, 0)));
  for (const [label, key] of rows(settings)) {
    const cells = columns.map((col) => col[key] ?? "-");
    if (key === "error" && cells.every((cell) => cell === "" || cell === "-")) continue;
    console.log(line(label, cells));
  }
}

function writeReport(report: Record<string, unknown>): void {
  const json = JSON.stringify(report, null, 2);
  const dir = join(import.meta.dirname, "..", "..", "bench-results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "timers.json"), `${json}\n`);
  console.log(`\n${json}`);
  console.log(`\nwritten to ${relative(process.cwd(), join(dir, "timers.json"))}`);
}

const NOTES = [
  "Lateness: A = when claimDue returned the timer (poller: batches of 500 every 200 ms, done() per timer);",
  "  B = when the durable pull consumer received the fired message on timers.fire (server store time separately).",
  "Cancel: one call at a time with N timers pending; every method cancels its own timers.",
  "Burst/spread: ~1 in max(10, M/300) of the phase's timers is cancelled before due (B: the three methods in turn).",
  "CPU%: % of one core, this process / the mechanism's server / every other process on the machine.",
];

async function main(): Promise<void> {
  const settings = readSettings();
  const started: { stack?: Stack } = {};
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${settings.timeoutS} s; stopping everything`);
    void (started.stack?.stop() ?? Promise.resolve()).finally(() => process.exit(2));
  }, settings.timeoutS * 1000);
  watchdog.unref();

  const command = commandLine(import.meta.filename);
  const machine = machineInfo();
  console.log("Relais timers benchmark - Redis sorted set (today) vs JetStream message schedules");
  console.log(`command: ${command}`);
  for (const [key, value] of Object.entries(machine)) console.log(`${key}: ${value}`);
  const idle = await idleProbe(2000);
  console.log(
    `machine busy before start (2 s, all cores): ${idle.machine ?? "-"}% (${idle.others ?? "-"}% of one core by other processes)`,
  );
  console.log(`settings: ${JSON.stringify(settings)}`);

  const stack = await startStack({ components: ["nats", "redis"] });
  started.stack = stack;
  const results: MechanismResult[] = [];
  try {
    for (const mechanism of settings.mechanisms) results.push(await runMechanism(stack, mechanism, settings));
    const loadAfter = Math.round((loadavg()[0] ?? 0) * 100) / 100;
    console.log("");
    printTable(results, settings);
    console.log("");
    for (const note of NOTES) console.log(note);
    console.log(`load average 1m: ${machine.loadAverage1m} before, ${loadAfter} after`);
    writeReport({
      command,
      machine: { ...machine, loadAverage1mAfter: loadAfter, idleProbe: idle },
      settings,
      results,
    });
  } finally {
    await stack.stop();
    clearTimeout(watchdog);
  }
}

main().then(
  () => {
    process.exit(0);
  },
  (error: unknown) => {
    console.error("bench failed:", error);
    process.exit(1);
  },
);
