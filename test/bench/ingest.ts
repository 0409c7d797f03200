// Throughput and latency of ONE ingest process on POST /v1/events, measured next to a bare fastify
// app (same fastify, a POST route that parses the same JSON body and answers 202) under the same
// load, in the same run. The ratios (ingest / bare) are the headline figures.
//
// Run: npm run bench:ingest   (or: node test/bench/ingest.ts)
// Settings (environment): BENCH_DURATION_S (10, per scenario), BENCH_WARMUP_S (2), BENCH_CONNECTIONS
// (50), BENCH_BATCH (100 events per batched request), BENCH_LOG_LEVEL (unset: no request logging,
// as the tests run ingest; "info": the production default, lines written to a file).
//
// Processes: this one orchestrates and owns the harness stack (nats-server, redis-server); for each
// scenario one child serves (the ingest app or the bare app, started fresh) and another child
// generates the load (autocannon), so neither shares the other's event loop. Every request carries
// fresh event ids, so no event is a duplicate. Children exit when their IPC channel to this process
// closes; a watchdog bounds the whole run. Figures go to stdout and to bench-results/ingest.json.
// CPU use of each process is read from /proc; a run during which processes outside the bench used
// a noticeable share of a core (another test run on the machine) is flagged as disturbed.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, availableParallelism, cpus, release, totalmem } from "node:os";
import { join, relative } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import Fastify from "fastify";
import type { FastifyInstance } from "fastify";
import {
  ApiKeys,
  buildApp,
  createIngestMetrics,
  createIngestService,
  hashSecret,
  jetStreamPublisher,
  ProfileStore,
  RateLimiter,
} from "#ingest";
import { startStack, toolPath } from "#harness";
import type { Stack } from "#harness";
import { connectNats, connectRedis, createLogger, ensureStreams, Streams } from "#runtime";
import type { Logger } from "#runtime";
import { commandLine, cpuSeconds, nextMessage, stopChild, ticksPerSecond } from "./support.ts";

// ---------------------------------------------------------------------------------------------
// Shapes shared by the three processes

type ServerKind = "bare" | "ingest";
type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

interface ServeConfig {
  kind: ServerKind;
  natsUrl: string;
  redisUrl: string;
  namespace: string;
  secret: string;
  logLevel: LogLevel | undefined;
}

interface LoadConfig {
  url: string;
  auth: string;
  connections: number;
  warmupS: number;
  durationS: number;
  eventsPerRequest: number;
}

interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

interface LoadResult {
  elapsedS: number;
  /** 2xx responses of the measured run (the warm-up's are in warmupOk). */
  ok: number;
  warmupOk: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  latencyMs: Latency;
  bodyBytes: number;
}

type ChildMessage =
  | { type: "listening"; port: number; fastifyVersion: string }
  | { type: "measuring" }
  | { type: "result"; result: LoadResult };

const PROFILES = 10_000;
/** CPU (% of one core) that processes outside the bench may use before a run is flagged. */
const OTHERS_TOLERATED = 15;
const RATE_LIMIT = 10_000_000;
const TOKEN_SECRET = "bench-token-secret-of-at-least-32-characters";

function send(message: ChildMessage): void {
  if (process.send === undefined) throw new Error("this mode is started by the bench itself, with an IPC channel");
  process.send(message);
}

/** A child exits as soon as the bench that started it is gone. */
function exitWithParent(): void {
  process.on("disconnect", () => process.exit(1));
}

// ---------------------------------------------------------------------------------------------
// Server child: `node ingest.ts serve <ServeConfig>`

async function buildIngest(config: ServeConfig): Promise<{ app: FastifyInstance; close: () => Promise<void> }> {
  const nc = await connectNats(config.natsUrl, "relais-ingest-bench");
  const redis = connectRedis(config.redisUrl, "relais-ingest-bench");
  await redis.ping();
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const store = new ProfileStore(redis);
  const publisher = jetStreamPublisher(js);
  const logger: Logger | undefined =
    config.logLevel === undefined ? undefined : createLogger({ name: "relais-ingest", level: config.logLevel });
  const service = createIngestService({
    store,
    publisher,
    onUnavailable: (dependency, error) => logger?.warn({ err: error, dependency }, "dependency unavailable"),
  });
  const app = await buildApp({
    service,
    publisher,
    keys: new ApiKeys([{ keyId: "bench", namespace: config.namespace, secretSha256: hashSecret(config.secret) }]),
    limiter: new RateLimiter({ perSecond: RATE_LIMIT, burst: RATE_LIMIT }),
    metrics: createIngestMetrics(),
    tokenSecret: TOKEN_SECRET,
    isReady: () => true,
    ...(logger !== undefined && { logger }),
  });
  return {
    app,
    close: async () => {
      await app.close();
      await nc.drain();
      await redis.quit();
    },
  };
}

function buildBare(): { app: FastifyInstance; close: () => Promise<void> } {
  // Fastify's defaults: the JSON parser with a 1 MiB body limit, no logger, no schema.
  const app = Fastify();
  app.post("/v1/events", async (request, reply) => {
    const events = (request.body as { events?: unknown[] } | undefined)?.events ?? [];
    return reply.code(202).send({ accepted: events.length });
  });
  return { app, close: () => app.close() };
}

async function serve(config: ServeConfig): Promise<void> {
  exitWithParent();
  const { app, close } = config.kind === "ingest" ? await buildIngest(config) : buildBare();
  await app.listen({ host: "127.0.0.1", port: 0 });
  process.once("SIGTERM", () => {
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error("bench server: close failed", error);
        process.exit(1);
      },
    );
  });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  send({ type: "listening", port: address.port, fastifyVersion: app.version });
}

// ---------------------------------------------------------------------------------------------
// Load child: `node ingest.ts load <LoadConfig>` (autocannon, programmatic, one unique body per request)

interface AutocannonRequest {
  body?: string;
}
interface AutocannonOptions {
  url: string;
  method: "POST";
  connections: number;
  duration: number;
  timeout: number;
  headers: Record<string, string>;
  requests: { setupRequest: (request: AutocannonRequest) => AutocannonRequest }[];
}
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonInstance {
  on(
    event: "response",
    listener: (client: unknown, statusCode: number | string, bytes: number, responseTimeMs: number) => void,
  ): void;
}
type Autocannon = (
  options: AutocannonOptions,
  done: (error: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance;

// autocannon ships no type declarations; this is the part of its API the bench uses.
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

const pad = (value: number, width: number): string => String(value).padStart(width, "0");

/**
 * A body of `events` events whose ids are unique to (prefix, request); fixed-width numbers keep
 * every body the same size. Profiles rotate over PROFILES ids.
 */
function eventsBody(prefix: string, request: number, events: number): string {
  const parts: string[] = [];
  for (let i = 0; i < events; i++) {
    const seq = request * events + i;
    parts.push(
      `{"profileId":"user-${pad(seq % PROFILES, 5)}","name":"cart_updated","id":"${prefix}-${pad(request, 10)}-${pad(i, 4)}",` +
        `"attributes":{"sku":"SKU-${pad(seq % 9973, 4)}","price":19.99,"currency":"EUR","quantity":2,"source":"web"}}`,
    );
  }
  return `{"events":[${parts.join(",")}]}`;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

function summarise(latencies: number[]): Latency {
  const sorted = Float64Array.from(latencies).sort();
  const total = latencies.reduce((sum, value) => sum + value, 0);
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? 0,
    mean: latencies.length === 0 ? 0 : total / latencies.length,
  };
}

interface Run {
  ok: number;
  latencies: number[];
  elapsedS: number;
  result: AutocannonResult;
}

async function cannon(config: LoadConfig, durationS: number, prefix: string): Promise<Run> {
  let request = 0;
  const latencies: number[] = [];
  const started = performance.now();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${config.url}/v1/events`,
        method: "POST",
        connections: config.connections,
        duration: durationS,
        timeout: 10,
        headers: { "content-type": "application/json", authorization: config.auth },
        requests: [
          {
            setupRequest: (req) => {
              req.body = eventsBody(prefix, request++, config.eventsPerRequest);
              return req;
            },
          },
        ],
      },
      (error, done) => {
        if (error === null) resolve(done);
        else reject(error);
      },
    );
    instance.on("response", (_client, statusCode, _bytes, responseTimeMs) => {
      const status = Number(statusCode);
      if (status >= 200 && status < 300) latencies.push(responseTimeMs);
    });
  });
  return { ok: latencies.length, latencies, elapsedS: (performance.now() - started) / 1000, result };
}

async function load(config: LoadConfig): Promise<void> {
  exitWithParent();
  const prefix = randomBytes(6).toString("base64url");
  const warmup = config.warmupS > 0 ? await cannon(config, config.warmupS, `${prefix}w`) : undefined;
  send({ type: "measuring" });
  const run = await cannon(config, config.durationS, `${prefix}m`);
  send({
    type: "result",
    result: {
      elapsedS: run.elapsedS,
      ok: run.ok,
      warmupOk: warmup?.ok ?? 0,
      non2xx: run.result.non2xx,
      errors: run.result.errors,
      timeouts: run.result.timeouts,
      statusCodes: Object.fromEntries(
        Object.entries(run.result.statusCodeStats).map(([code, stats]) => [code, stats.count]),
      ),
      latencyMs: summarise(run.latencies),
      bodyBytes: Buffer.byteLength(eventsBody(`${prefix}m`, 0, config.eventsPerRequest)),
    },
  });
  // The bench stops this process once it has the result.
}

// ---------------------------------------------------------------------------------------------
// Orchestrator: children, CPU accounting, scenarios, report

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function spawnSelf(mode: "serve" | "load", config: ServeConfig | LoadConfig, stdout: "inherit" | number): ChildProcess {
  const child = spawn(process.execPath, [import.meta.filename, mode, JSON.stringify(config)], {
    stdio: ["ignore", stdout, "inherit", "ipc"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

interface MachineTimes {
  /** Time in processes (user, nice, system), interrupts (irq, softirq), taken by the hypervisor (steal), all. */
  tasks: number;
  interrupts: number;
  steal: number;
  total: number;
}

/** CPU seconds of the whole machine so far (all cores). */
function machineSeconds(): MachineTimes | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map((value) => Number(value) / ticksPerSecond());
    return {
      tasks: user + nice + system,
      interrupts: irq + softirq,
      steal,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
    };
  } catch {
    return undefined;
  }
}

type CpuRole = "server" | "loadgen" | "nats" | "redis" | "orchestrator";
interface CpuSample {
  at: number;
  processes: Partial<Record<CpuRole, number>>;
  machine: MachineTimes | undefined;
}

function sampleCpu(pids: Record<CpuRole, number | undefined>): CpuSample {
  const processes: Partial<Record<CpuRole, number>> = {};
  for (const [role, pid] of Object.entries(pids) as [CpuRole, number | undefined][]) {
    const seconds = cpuSeconds(pid);
    if (seconds !== undefined) processes[role] = seconds;
  }
  return { at: performance.now(), processes, machine: machineSeconds() };
}

type CpuUse = Partial<Record<CpuRole | "others" | "interrupts" | "steal" | "machine", number>>;

/**
 * CPU use between two samples, as % of one core: per process of the bench; `others`, every other
 * process on the machine (a disturbance); `interrupts` (irq and softirq time not charged to a
 * process: loopback networking) and `steal`. `machine` is the busy share of all cores.
 */
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
  const before = from.machine;
  const after = to.machine;
  if (before !== undefined && after !== undefined && after.total > before.total) {
    const tasks = after.tasks - before.tasks;
    const interrupts = after.interrupts - before.interrupts;
    const steal = after.steal - before.steal;
    result.others = Math.max(0, ((tasks - ours) / wall) * 100);
    result.interrupts = (interrupts / wall) * 100;
    result.steal = (steal / wall) * 100;
    result.machine = ((tasks + interrupts + steal) / (after.total - before.total)) * 100;
  }
  return result;
}

interface Settings {
  durationS: number;
  warmupS: number;
  connections: number;
  batch: number;
  logLevel: LogLevel | undefined;
}

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return value;
}

function readSettings(): Settings {
  const logLevel = process.env.BENCH_LOG_LEVEL;
  if (logLevel !== undefined && logLevel !== "" && !LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new Error(`BENCH_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return {
    durationS: Math.max(1, positiveNumber("BENCH_DURATION_S", 10)),
    warmupS: positiveNumber("BENCH_WARMUP_S", 2),
    connections: Math.max(1, Math.round(positiveNumber("BENCH_CONNECTIONS", 50))),
    batch: Math.min(1000, Math.max(1, Math.round(positiveNumber("BENCH_BATCH", 100)))),
    logLevel: logLevel === undefined || logLevel === "" ? undefined : (logLevel as LogLevel),
  };
}

interface Measurement {
  server: ServerKind;
  fastifyVersion: string;
  eventsPerRequest: number;
  bodyBytes: number;
  requestsPerSecond: number;
  eventsPerSecond: number;
  latencyMs: Latency;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  cpuPercent: CpuUse;
  /** Ingest only: events RELAIS_EVENTS gained over the scenario, and events acknowledged with 2xx. */
  stored?: { onStream: number; acknowledged: number };
}

interface Scenario {
  name: "single" | "batch";
  eventsPerRequest: number;
}

interface Context {
  stack: Stack;
  settings: Settings;
  streamMessages: () => Promise<number>;
}

async function startServer(
  context: Context,
  kind: ServerKind,
  namespace: string,
): Promise<{ child: ChildProcess; port: number; fastifyVersion: string; secret: string }> {
  const secret = randomBytes(24).toString("base64url");
  const logFd = openSync(join(context.stack.dir, `${namespace}-${kind}.log`), "a");
  try {
    const child = spawnSelf(
      "serve",
      {
        kind,
        natsUrl: context.stack.nats?.url ?? "",
        redisUrl: context.stack.redis?.url ?? "",
        namespace,
        secret,
        logLevel: context.settings.logLevel,
      },
      logFd,
    );
    const { port, fastifyVersion } = await nextMessage<ChildMessage, "listening">(child, "listening", 60_000).catch(
      async (error: unknown) => {
        await stopChild(child, 1000);
        throw error;
      },
    );
    return { child, port, fastifyVersion, secret };
  } finally {
    closeSync(logFd);
  }
}

async function runLoad(
  context: Context,
  config: LoadConfig,
  pids: { server: number | undefined },
): Promise<{ result: LoadResult; cpu: CpuUse }> {
  const child = spawnSelf("load", config, "inherit");
  try {
    const budgetMs = (config.warmupS + config.durationS) * 1000 + 60_000;
    const measuring = nextMessage<ChildMessage, "measuring">(child, "measuring", budgetMs);
    const finished = nextMessage<ChildMessage, "result">(child, "result", budgetMs);
    finished.catch(() => undefined); // awaited below; a rejection before then is not unhandled
    await measuring;
    const all = {
      ...pids,
      loadgen: child.pid,
      nats: context.stack.nats?.process.pid,
      redis: context.stack.redis?.process.pid,
      orchestrator: process.pid,
    };
    const before = sampleCpu(all);
    const { result } = await finished;
    return { result, cpu: cpuPercent(before, sampleCpu(all)) };
  } finally {
    await stopChild(child, 2000);
  }
}

async function measure(context: Context, scenario: Scenario, kind: ServerKind): Promise<Measurement> {
  const namespace = `bench-${scenario.name}`;
  const server = await startServer(context, kind, namespace);
  let streamBefore = 0;
  let run: Awaited<ReturnType<typeof runLoad>>;
  try {
    if (kind === "ingest") streamBefore = await context.streamMessages();
    run = await runLoad(
      context,
      {
        url: `http://127.0.0.1:${server.port}`,
        auth: `Bearer bench.${server.secret}`,
        connections: context.settings.connections,
        warmupS: context.settings.warmupS,
        durationS: context.settings.durationS,
        eventsPerRequest: scenario.eventsPerRequest,
      },
      { server: server.child.pid },
    );
  } finally {
    // Closing the app waits for in-flight requests, so the stream count below is final.
    await stopChild(server.child);
  }
  const { result } = run;
  const requestsPerSecond = result.ok / result.elapsedS;
  return {
    server: kind,
    fastifyVersion: server.fastifyVersion,
    eventsPerRequest: scenario.eventsPerRequest,
    bodyBytes: result.bodyBytes,
    requestsPerSecond,
    eventsPerSecond: requestsPerSecond * scenario.eventsPerRequest,
    latencyMs: result.latencyMs,
    ok: result.ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: result.statusCodes,
    cpuPercent: run.cpu,
    ...(kind === "ingest" && {
      stored: {
        onStream: (await context.streamMessages()) - streamBefore,
        acknowledged: (result.ok + result.warmupOk) * scenario.eventsPerRequest,
      },
    }),
  };
}

function versionOf(tool: "nats-server" | "redis-server"): string {
  try {
    return execFileSync(toolPath(tool), ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
  } catch (error) {
    return `unknown (${error instanceof Error ? error.message : String(error)})`;
  }
}

function machineInfo(): Record<string, string | number> {
  const require = createRequire(import.meta.url);
  const autocannonVersion = (require("autocannon/package.json") as { version: string }).version;
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${release()} ${arch()}`,
    node: process.version,
    natsServer: versionOf("nats-server"),
    redisServer: versionOf("redis-server"),
    autocannon: autocannonVersion,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const fixed = (value: number, digits: number): string => value.toFixed(digits);
const whole = (value: number): string => Math.round(value).toLocaleString("en-US");

function cpuCell(cpu: Measurement["cpuPercent"]): string {
  const cell = (value: number | undefined): string => (value === undefined ? "-" : String(Math.round(value)));
  return [cpu.server, cpu.loadgen, cpu.nats, cpu.redis, cpu.interrupts, cpu.others].map(cell).join("/");
}

function row(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
}

interface Comparison {
  bare: Measurement;
  ingest: Measurement;
  ratio: { throughput: number; p50: number; p99: number };
}

function compare(bare: Measurement, ingest: Measurement): Comparison {
  return {
    bare,
    ingest,
    ratio: {
      throughput: ingest.requestsPerSecond / bare.requestsPerSecond,
      p50: ingest.latencyMs.p50 / bare.latencyMs.p50,
      p99: ingest.latencyMs.p99 / bare.latencyMs.p99,
    },
  };
}

function printTable(results: Record<Scenario["name"], Comparison>): void {
  const widths = [24, 7, 9, 10, 7, 7, 9, 10, 32];
  const header = [
    "scenario",
    "server",
    "req/s",
    "events/s",
    "p50 ms",
    "p99 ms",
    "2xx",
    "non2xx/err",
    "CPU% srv/lg/nats/redis/irq/other",
  ];
  console.log(row(header, widths));
  console.log("-".repeat(widths.reduce((sum, width) => sum + width + 2, -2)));
  for (const [name, comparison] of Object.entries(results)) {
    const first = comparison.bare;
    const label = `${name} (${first.eventsPerRequest} ev, ${first.bodyBytes} B)`;
    for (const m of [comparison.bare, comparison.ingest]) {
      console.log(
        row(
          [
            m === first ? label : "",
            m.server,
            whole(m.requestsPerSecond),
            whole(m.eventsPerSecond),
            fixed(m.latencyMs.p50, 2),
            fixed(m.latencyMs.p99, 2),
            whole(m.ok),
            `${m.non2xx}/${m.errors + m.timeouts}`,
            cpuCell(m.cpuPercent),
          ],
          widths,
        ),
      );
    }
    const r = comparison.ratio;
    console.log(
      row(
        ["", "ratio", fixed(r.throughput, 3), fixed(r.throughput, 3), `${fixed(r.p50, 1)}x`, `${fixed(r.p99, 1)}x`],
        widths,
      ),
    );
  }
}

function printHeadline(results: Record<Scenario["name"], Comparison>): void {
  const { single, batch } = results;
  console.log(
    "CPU%: % of one core over the measured run, for the server process, the load generator, nats-server," +
      " redis-server, interrupts (loopback networking) and every other process on the machine.\n" +
      "Latency: autocannon's per-request times of 2xx responses; closed loop, so latency ~ connections / req/s.",
  );
  console.log("\nHeadline (ingest / bare fastify, same load, same run):");
  console.log(
    `  single-event requests/s: ${whole(single.ingest.requestsPerSecond)} vs ${whole(single.bare.requestsPerSecond)}` +
      ` = ${fixed(single.ratio.throughput * 100, 1)}% of bare; p50 ${fixed(single.ingest.latencyMs.p50, 2)} ms,` +
      ` p99 ${fixed(single.ingest.latencyMs.p99, 2)} ms`,
  );
  console.log(
    `  batched events/s (${batch.ingest.eventsPerRequest}/request): ${whole(batch.ingest.eventsPerSecond)} vs` +
      ` ${whole(batch.bare.eventsPerSecond)} = ${fixed(batch.ratio.throughput * 100, 1)}% of bare;` +
      ` p50 ${fixed(batch.ingest.latencyMs.p50, 2)} ms, p99 ${fixed(batch.ingest.latencyMs.p99, 2)} ms`,
  );
  for (const [name, comparison] of Object.entries(results)) {
    const stored = comparison.ingest.stored;
    if (stored === undefined) continue;
    const verdict = stored.onStream >= stored.acknowledged ? "ok" : "FEWER STORED THAN ACKNOWLEDGED";
    console.log(
      `  ${name}: ${whole(stored.onStream)} events stored on ${Streams.events} for ${whole(stored.acknowledged)}` +
        ` acknowledged (warm-up included; extra = in flight at stop) - ${verdict}`,
    );
  }
  for (const m of [single.bare, single.ingest, batch.bare, batch.ingest]) {
    if (m.non2xx + m.errors + m.timeouts > 0) {
      console.log(`  WARNING ${m.server} ${m.eventsPerRequest} ev: status codes ${JSON.stringify(m.statusCodes)}`);
    }
    const others = m.cpuPercent.others ?? 0;
    if (others > OTHERS_TOLERATED) {
      console.log(
        `  WARNING ${m.server} ${m.eventsPerRequest} ev: processes outside the bench used ${Math.round(others)}% of a` +
          " core during the run; its figures are disturbed (rerun on a quiet machine)",
      );
    }
  }
}

async function scenarios(context: Context): Promise<Record<Scenario["name"], Comparison>> {
  const list: Scenario[] = [
    { name: "single", eventsPerRequest: 1 },
    { name: "batch", eventsPerRequest: context.settings.batch },
  ];
  const results: Partial<Record<Scenario["name"], Comparison>> = {};
  for (const scenario of list) {
    const bare = await measure(context, scenario, "bare");
    console.log(`  ${scenario.name}/bare: ${whole(bare.requestsPerSecond)} req/s`);
    const ingest = await measure(context, scenario, "ingest");
    console.log(`  ${scenario.name}/ingest: ${whole(ingest.requestsPerSecond)} req/s`);
    results[scenario.name] = compare(bare, ingest);
  }
  const { single, batch } = results;
  if (single === undefined || batch === undefined) throw new Error("a scenario did not run");
  return { single, batch };
}

async function main(): Promise<void> {
  const settings = readSettings();
  const perServerS = settings.warmupS + settings.durationS;
  const budgetMs = (4 * (perServerS + 60) + 120) * 1000;
  const started: { stack?: Stack } = {};
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${budgetMs / 1000} s; stopping everything`);
    for (const child of children) child.kill("SIGKILL");
    void (started.stack?.stop() ?? Promise.resolve()).finally(() => process.exit(2));
  }, budgetMs);
  watchdog.unref();

  const command = commandLine(import.meta.filename);
  const machine = machineInfo();
  console.log("Relais ingest benchmark - one ingest process vs bare fastify");
  console.log(`command: ${command}`);
  for (const [key, value] of Object.entries(machine)) console.log(`${key}: ${value}`);
  console.log(
    `load: autocannon in its own process, ${settings.connections} connections, ${settings.warmupS} s warm-up +` +
      ` ${settings.durationS} s measured per server; unique event ids; server log level: ${settings.logLevel ?? "none"}`,
  );

  const stack = await startStack({ components: ["nats", "redis"] });
  started.stack = stack;
  const nc = await connectNats(stack.nats?.url ?? "", "relais-ingest-bench-probe");
  try {
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm);
    const context: Context = {
      stack,
      settings,
      streamMessages: async () => (await jsm.streams.info(Streams.events)).state.messages,
    };
    console.log("\nrunning (bare, then ingest, per scenario):");
    const results = await scenarios(context);
    console.log("");
    printTable(results);
    printHeadline(results);
    const report = { command, machine, settings, fastify: results.single.ingest.fastifyVersion, results };
    const json = JSON.stringify(report, null, 2);
    const dir = join(import.meta.dirname, "..", "..", "bench-results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "ingest.json"), `${json}\n`);
    console.log(`\n${json}`);
    console.log(`\nwritten to ${relative(process.cwd(), join(dir, "ingest.json"))}`);
  } finally {
    await nc.drain().catch(() => undefined);
    for (const child of children) await stopChild(child, 2000);
    await stack.stop();
    clearTimeout(watchdog);
  }
}

// ---------------------------------------------------------------------------------------------

const [mode, rawConfig] = process.argv.slice(2);
const entry =
  mode === "serve"
    ? serve(JSON.parse(rawConfig ?? "{}") as ServeConfig)
    : mode === "load"
      ? load(JSON.parse(rawConfig ?? "{}") as LoadConfig)
      : main();
entry.catch((error: unknown) => {
  console.error(mode === undefined ? "bench failed:" : `bench ${mode} failed:`, error);
  process.exit(1);
});
