// Every benchmark in one run, against baselines from the same run: the physical baseline first
// (`nats bench js` pub and consume, the same loops bare in nats.js), then each stage (the stage
// benches run as they are, each as its own process with its own servers, figures read from their
// JSON), then the whole pipeline on this script's servers (events over HTTP → automation → a deliver
// replica on a null transport; a 1,000,000-profile campaign → the same replica) and the same
// campaign fan-out built on BullMQ over the same Redis. One table: throughput, latency, baseline,
// ratio, goal (issue 11), peak RSS; load averages beside every phase (the machine is shared).
//
// Run: npm run bench   (or: node test/bench/all.ts)
// Settings (environment): BENCH_SCALE (1; 0.1 for a quick check: every count and duration times
// it), BENCH_STAGES ("ingest,engage,deliver,campaign,pipeline,bullmq"), BENCH_TIMEOUT_S (per wait,
// 1800). Figures go to stdout and bench-results/<timestamp>.json; each stage's output to
// bench-results/<timestamp>-<stage>.log.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join, relative } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { startStack, toolPath } from "#harness";
import { connectNats, connectRedis, ensureStreams, openConfigBucket } from "#runtime";
import { measureBaselines } from "./baselines.ts";
import type { BaselineRates } from "./baselines.ts";
import { bullmqFanout } from "./bullmq-fanout.ts";
import type { FanoutResult } from "./bullmq-fanout.ts";
import { campaignPipeline, eventsPipeline, seedCampaignAudience } from "./pipeline.ts";
import type { PipelineContext, PipelineResult, Quantiles } from "./pipeline.ts";
import { commandLine, numberSetting, packageVersion, treeRssSampler } from "./support.ts";

const STAGES = ["ingest", "engage", "deliver", "campaign", "pipeline", "bullmq"] as const;
type Stage = (typeof STAGES)[number];

function readSettings() {
  const scale = Number(process.env.BENCH_SCALE ?? "1");
  if (!Number.isFinite(scale) || scale <= 0 || scale > 10)
    throw new Error(`BENCH_SCALE must be a number above 0 and at most 10, got "${process.env.BENCH_SCALE ?? ""}"`);
  const stages = (process.env.BENCH_STAGES ?? STAGES.join(",")).split(",").filter(Boolean);
  for (const stage of stages)
    if (!STAGES.includes(stage as Stage)) throw new Error(`BENCH_STAGES: unknown "${stage}" (${STAGES.join(", ")})`);
  const count = (full: number, min: number): number => Math.max(min, Math.round(full * scale));
  return {
    scale,
    stages: stages as Stage[],
    timeoutS: numberSetting("BENCH_TIMEOUT_S", 1800, { min: 30, max: 7200 }),
    baselineMessages: count(200_000, 10_000),
    ingestSeconds: count(10, 2),
    engageEvents: count(50_000, 2000),
    latencySeconds: count(10, 2),
    deliverMessages: count(50_000, 2000),
    campaignProfiles: count(1_000_000, 1000),
    pipelineEvents: count(50_000, 2000),
  };
}
type Settings = ReturnType<typeof readSettings>;

// ---------------------------------------------------------------------------------------------
// Rows of the table

interface Row {
  stage: string;
  throughput: number;
  unit: string;
  latencyMs?: Quantiles | undefined;
  baseline?: { name: string; perSecond: number } | undefined;
  /** throughput / baseline, or the ratio the goal is about. */
  ratio?: number | undefined;
  goal: string;
  met?: boolean | undefined;
  peakRssMiB: Record<string, number>;
  load: string;
  note?: string;
  error?: string;
}

const loadNow = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(" ");

function versionOf(tool: "nats-server" | "redis-server" | "nats"): string {
  try {
    return execFileSync(toolPath(tool), ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
  } catch (error) {
    return `unavailable (${error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error)})`;
  }
}

function machine(): Record<string, string | number> {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAtStart: loadNow(),
    node: process.version,
    natsServer: versionOf("nats-server"),
    redisServer: versionOf("redis-server"),
    natsCli: versionOf("nats"),
    natsJs: packageVersion("@nats-io/jetstream"),
    ioredis: packageVersion("ioredis"),
    bullmq: packageVersion("bullmq"),
    fastify: packageVersion("fastify"),
  };
}

// ---------------------------------------------------------------------------------------------
// Stage benches, each run as it is in its own process

const resultsDir = join(import.meta.dirname, "..", "..", "bench-results");

interface StageRun {
  json: Record<string, unknown>;
  peakRssMiB: Record<string, number>;
  load: string;
}

async function runStageBench(
  script: string,
  env: Record<string, string>,
  log: { prefix: string; timeoutS: number },
): Promise<StageRun> {
  const logFile = join(resultsDir, `${log.prefix}-${script}.log`);
  const out = openSync(logFile, "w");
  const child = spawn(process.execPath, [join(import.meta.dirname, `${script}.ts`)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  const rss = treeRssSampler(child.pid ?? process.pid);
  const timer = setTimeout(() => child.kill("SIGKILL"), log.timeoutS * 1000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  const peakRssMiB = rss.stop();
  if (code !== 0) throw new Error(`${script}.ts exited with ${String(code)}; see ${relative(process.cwd(), logFile)}`);
  const json = JSON.parse(readFileSync(join(resultsDir, `${script}.json`), "utf8")) as Record<string, unknown>;
  return { json, peakRssMiB, load: loadNow() };
}

// The stage benches' JSON, read loosely: a missing figure shows as an error in the row.
type Loose = Record<string, unknown>;
const at = (value: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>(
    (node, key) => (typeof node === "object" && node !== null ? (node as Loose)[key] : undefined),
    value,
  );
const num = (value: unknown): number => (typeof value === "number" ? value : Number.NaN);

/** `rate` over the mean of a stage bench's own baseline runs, e.g. "0.123 (of 12,345/s)". */
function ownRatio(rate: number, baselines: number[]): string {
  if (baselines.length === 0) return "-";
  const mean = baselines.reduce((sum, value) => sum + value, 0) / baselines.length;
  return `${(rate / mean).toFixed(3)} (of ${Math.round(mean).toLocaleString("en-US")}/s)`;
}

function ratioRow(row: Omit<Row, "ratio" | "met">, threshold: number): Row {
  const ratio = row.baseline === undefined ? undefined : row.throughput / row.baseline.perSecond;
  return { ...row, ratio, met: ratio === undefined || Number.isNaN(ratio) ? undefined : ratio >= threshold };
}

function ingestRow(run: StageRun, base: BaselineRates): Row {
  const batch = at(run.json, "results", "batch", "ingest");
  const single = at(run.json, "results", "single", "ingest");
  return ratioRow(
    {
      stage: "ingest: POST /v1/events (100/request)",
      throughput: num(at(batch, "eventsPerSecond")),
      unit: "events/s",
      latencyMs: { p50: num(at(batch, "latencyMs", "p50")), p99: num(at(batch, "latencyMs", "p99")) },
      baseline: { name: "nats.js publish", perSecond: base.natsJsPublish },
      goal: "≥ 50 % of bare nats.js publish",
      peakRssMiB: run.peakRssMiB,
      load: run.load,
      note:
        `1 event/request: ${Math.round(num(at(single, "eventsPerSecond")))} events/s; ` +
        `vs bare fastify: ${num(at(run.json, "results", "batch", "ratio", "throughput")).toFixed(3)} (batch)`,
    },
    0.5,
  );
}

function engageRow(run: StageRun, base: BaselineRates): Row {
  const rows = at(run.json, "events", "rows");
  const engage = Array.isArray(rows)
    ? (rows as Loose[]).find((row) => String(row.name).startsWith("engage"))
    : undefined;
  const bare = Array.isArray(rows)
    ? (rows as Loose[])
        .filter((row) => String(row.name).startsWith("bare nats.js consume+ack"))
        .map((row) => num(row.perSecond))
    : [];
  const latency = at(run.json, "events", "latency");
  const last = Array.isArray(latency) ? (latency.at(-1) as Loose | undefined) : undefined;
  return ratioRow(
    {
      stage: "engage: events → 100 automations",
      throughput: num(engage?.perSecond),
      unit: "events/s",
      latencyMs: { p50: num(at(last, "ms", "p50")), p99: num(at(last, "ms", "p99")) },
      baseline: { name: "nats.js consume+ack", perSecond: base.natsJsConsume },
      goal: "≥ 50 % of bare nats.js consume+ack",
      peakRssMiB: run.peakRssMiB,
      load: run.load,
      note:
        `latency: event published → send job enqueued, at ${String(at(last, "rate"))} events/s; ` +
        `vs its own bare consume+ack on its server: ${ownRatio(num(engage?.perSecond), bare)}`,
    },
    0.5,
  );
}

function deliverRow(run: StageRun, base: BaselineRates): Row {
  const results = at(run.json, "results");
  const nulls = Array.isArray(results) ? (results as Loose[]).filter((result) => result.transport === "null") : [];
  const best = nulls.reduce<Loose | undefined>(
    (top, result) => (top === undefined || num(result.msgsPerSecond) > num(top.msgsPerSecond) ? result : top),
    undefined,
  );
  const baselines = at(run.json, "baselines");
  const own = Array.isArray(baselines)
    ? (baselines as Loose[])
        .filter((baseline) => baseline.tool === "nats.js" && baseline.mode === "consume")
        .map((baseline) => num(baseline.msgsPerSecond))
    : [];
  return ratioRow(
    {
      stage: `deliver: null transport (${String(best?.name)})`,
      throughput: num(best?.msgsPerSecond),
      unit: "msgs/s",
      latencyMs: { p50: num(at(best, "sendDurationMs", "p50")), p99: num(at(best, "sendDurationMs", "p99")) },
      baseline: { name: "nats.js consume+ack", perSecond: base.natsJsConsume },
      goal: "≥ 50 % of bare nats.js consume+ack",
      peakRssMiB: run.peakRssMiB,
      load: run.load,
      note:
        "latency: the pipeline's send duration histogram (render, policies, claim, channel); " +
        `vs its own bare consume+ack on its server: ${ownRatio(num(best?.msgsPerSecond), own)}`,
    },
    0.5,
  );
}

function campaignRow(run: StageRun, base: BaselineRates, profiles: number): Row {
  const seconds = num(at(run.json, "planSeconds"));
  // The goal is for 1,000,000 profiles; a shorter run is judged at the same rate.
  const projected = (seconds * 1_000_000) / profiles;
  const row = ratioRow(
    {
      stage: `campaign: ${profiles.toLocaleString("en-US")} profiles planned + enqueued`,
      throughput: num(at(run.json, "enqueuedPerSecond")),
      unit: "jobs/s",
      baseline: { name: "nats.js publish", perSecond: base.natsJsPublish },
      goal: "1M enqueued < 60 s",
      peakRssMiB: run.peakRssMiB,
      load: run.load,
      note:
        `${seconds} s${profiles === 1_000_000 ? "" : ` (${projected.toFixed(1)} s per 1M at this rate)`}; ` +
        `vs raw publish in the same process: ${String(at(run.json, "ratio"))}`,
    },
    0,
  );
  return { ...row, met: projected < 60 };
}

async function stageRows(settings: Settings, base: BaselineRates, prefix: string): Promise<Row[]> {
  const runs: [Stage, string, Record<string, string>, (run: StageRun) => Row][] = [
    [
      "ingest",
      "ingest",
      { BENCH_DURATION_S: String(settings.ingestSeconds), BENCH_WARMUP_S: "2" },
      (run) => ingestRow(run, base),
    ],
    [
      "engage",
      "engage",
      {
        BENCH_PHASES: "events",
        BENCH_EVENTS: String(settings.engageEvents),
        BENCH_LATENCY_SECONDS: String(settings.latencySeconds),
      },
      (run) => engageRow(run, base),
    ],
    [
      "deliver",
      "deliver",
      { BENCH_TRANSPORTS: "null", BENCH_MESSAGES: String(settings.deliverMessages), BENCH_POLICIES: "0" },
      (run) => deliverRow(run, base),
    ],
    [
      "campaign",
      "campaign",
      { BENCH_PROFILES: String(settings.campaignProfiles) },
      (run) => campaignRow(run, base, settings.campaignProfiles),
    ],
  ];
  const rows: Row[] = [];
  for (const [stage, script, env, toRow] of runs) {
    if (!settings.stages.includes(stage)) continue;
    console.log(`${stage}: node test/bench/${script}.ts (load ${loadNow()})`);
    try {
      rows.push(toRow(await runStageBench(script, env, { prefix, timeoutS: settings.timeoutS })));
    } catch (error) {
      rows.push(failedRow(stage, error));
    }
  }
  return rows;
}

function failedRow(stage: string, error: unknown): Row {
  const message = error instanceof Error ? error.message : String(error);
  console.log(`  ERROR ${message}`);
  return { stage, throughput: Number.NaN, unit: "", goal: "", peakRssMiB: {}, load: loadNow(), error: message };
}

// ---------------------------------------------------------------------------------------------
// Pipelines and BullMQ, on this script's servers

async function sampled<T>(task: () => Promise<T>): Promise<{ value: T; peakRssMiB: Record<string, number> }> {
  const rss = treeRssSampler(process.pid);
  try {
    const value = await task();
    return { value, peakRssMiB: rss.stop() };
  } catch (error) {
    rss.stop();
    throw error;
  }
}

function eventsRow(result: PipelineResult, peakRssMiB: Record<string, number>, base: BaselineRates): Row {
  return ratioRow(
    {
      stage: "pipeline: event → automation → null",
      throughput: result.perSecond,
      unit: "events/s",
      latencyMs: result.latencyMs,
      baseline: { name: "nats bench js consume", perSecond: base.natsBenchConsume },
      goal: "≥ 25 % of nats bench js consume",
      peakRssMiB,
      load: loadNow(),
      note: "latency: POST /v1/events → null transport, at saturation",
      ...(result.error !== undefined && { error: result.error }),
    },
    0.25,
  );
}

function fanoutRows(
  ours: { result: PipelineResult; peakRssMiB: Record<string, number> },
  bull: { result: FanoutResult; peakRssMiB: Record<string, number> } | undefined,
  base: BaselineRates,
): Row[] {
  const profiles = ours.result.messages.toLocaleString("en-US");
  const versus = bull === undefined ? undefined : ours.result.perSecond / bull.result.perSecond;
  const rows: Row[] = [
    {
      ...ratioRow(
        {
          stage: `pipeline: campaign ${profiles} → null`,
          throughput: ours.result.perSecond,
          unit: "msgs/s",
          baseline: { name: "nats bench js consume", perSecond: base.natsBenchConsume },
          goal: "≥ 2× BullMQ fan-out",
          peakRssMiB: ours.peakRssMiB,
          load: loadNow(),
          note:
            `enqueued in ${(ours.result.enqueueSeconds ?? Number.NaN).toFixed(1)} s, last send at ` +
            `${ours.result.seconds.toFixed(1)} s; ratio to BullMQ ${versus?.toFixed(2) ?? "-"}`,
          ...(ours.result.error !== undefined && { error: ours.result.error }),
        },
        0,
      ),
      ...(versus !== undefined && { met: versus >= 2 }),
    },
  ];
  if (bull !== undefined)
    rows.push({
      stage: `BullMQ fan-out ${profiles} → null`,
      throughput: bull.result.perSecond,
      unit: "msgs/s",
      baseline: { name: "nats bench js consume", perSecond: base.natsBenchConsume },
      ratio: bull.result.perSecond / base.natsBenchConsume,
      goal: "(the alternative)",
      peakRssMiB: bull.peakRssMiB,
      load: loadNow(),
      note:
        `addBulk done in ${bull.result.enqueueSeconds.toFixed(1)} s, last job at ${bull.result.seconds.toFixed(1)} s` +
        `, ${bull.result.failed} failed`,
    });
  return rows;
}

async function pipelineRows(settings: Settings, base: BaselineRates, context: PipelineContext): Promise<Row[]> {
  const rows: Row[] = [];
  if (settings.stages.includes("pipeline")) {
    console.log(`pipeline: ${settings.pipelineEvents} events over HTTP (load ${loadNow()})`);
    try {
      const events = await sampled(() => eventsPipeline(context, { events: settings.pipelineEvents, profiles: 5000 }));
      rows.push(eventsRow(events.value, events.peakRssMiB, base));
    } catch (error) {
      rows.push(failedRow("pipeline: events", error));
    }
  }
  const fanout = settings.stages.includes("pipeline") || settings.stages.includes("bullmq");
  if (!fanout) return rows;
  const profiles = settings.campaignProfiles;
  console.log(`seeding ${profiles} profiles for the campaign fan-outs (load ${loadNow()})`);
  const namespace = await seedCampaignAudience(context, profiles);
  try {
    const bull = settings.stages.includes("bullmq")
      ? await measureBullmq(context, { namespace, profiles }, settings.timeoutS)
      : undefined;
    if (settings.stages.includes("pipeline")) {
      console.log(`pipeline: campaign over ${profiles} profiles (load ${loadNow()})`);
      const ours = await sampled(() => campaignPipeline(context, { namespace, profiles }));
      rows.push(...fanoutRows({ result: ours.value, peakRssMiB: ours.peakRssMiB }, bull, base));
    }
  } catch (error) {
    rows.push(failedRow("campaign fan-out", error));
  }
  return rows;
}

async function measureBullmq(
  context: PipelineContext,
  audience: { namespace: string; profiles: number },
  timeoutS: number,
) {
  console.log(`bullmq: the same fan-out on BullMQ (load ${loadNow()})`);
  const run = await sampled(() => bullmqFanout({ redisUrl: context.redisUrl, ...audience }, timeoutS));
  return { result: run.value, peakRssMiB: run.peakRssMiB };
}

// ---------------------------------------------------------------------------------------------
// Report

const whole = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value) ? "-" : Math.round(value).toLocaleString("en-US");
const ms = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value) ? "-" : value < 10 ? value.toFixed(2) : value.toFixed(0);

/** The largest process of a row's peak RSS set, and the number of processes. */
function rssCell(peaks: Record<string, number>): string {
  const entries = Object.entries(peaks).sort((a, b) => b[1] - a[1]);
  const [top] = entries;
  return top === undefined ? "-" : `${top[1]} MiB (${top[0].replace(/ \d+$/, "")})`;
}

function tableLines(rows: Row[]): string[] {
  const header = ["stage", "throughput", "p50 ms", "p99 ms", "baseline", "ratio", "goal", "met", "peak RSS", "load"];
  const cells = rows.map((row) => [
    row.stage,
    row.error === undefined ? `${whole(row.throughput)} ${row.unit}` : "ERROR",
    ms(row.latencyMs?.p50),
    ms(row.latencyMs?.p99),
    row.baseline === undefined ? "-" : `${whole(row.baseline.perSecond)} (${row.baseline.name})`,
    row.ratio === undefined ? "-" : row.ratio.toFixed(3),
    row.goal,
    row.met === undefined ? "-" : row.met ? "yes" : "no",
    rssCell(row.peakRssMiB),
    row.load,
  ]);
  const widths = header.map((_, i) => Math.max(...[header, ...cells].map((line) => (line[i] ?? "").length)));
  const line = (values: string[]): string => values.map((value, i) => value.padEnd(widths[i] ?? 0)).join(" | ");
  return [line(header), widths.map((width) => "-".repeat(width)).join("-|-"), ...cells.map(line)];
}

function printReport(report: { baselines: BaselineRates; rows: Row[]; machine: Record<string, string | number> }) {
  const { baselines: base } = report;
  console.log(
    `\nbaselines (${whole(base.messages)} msgs of ${base.bytes} B): nats bench js pub ${whole(base.natsBenchPublish)}/s, ` +
      `consume ${whole(base.natsBenchConsume)}/s; nats.js publish ${whole(base.natsJsPublish)}/s, ` +
      `consume+ack ${whole(base.natsJsConsume)}/s\n`,
  );
  for (const line of tableLines(report.rows)) console.log(line);
  console.log("\nnotes:");
  for (const row of report.rows) if (row.note !== undefined) console.log(`  ${row.stage}: ${row.note}`);
  for (const row of report.rows) if (row.error !== undefined) console.log(`  ERROR ${row.stage}: ${row.error}`);
  console.log("\npeak RSS per process (MiB):");
  for (const row of report.rows) {
    const peaks = Object.entries(row.peakRssMiB).sort((a, b) => b[1] - a[1]);
    console.log(`  ${row.stage}: ${peaks.map(([name, mib]) => `${name.replace(/ \d+$/, "")} ${mib}`).join(", ")}`);
  }
}

async function main(): Promise<void> {
  const settings = readSettings();
  const startedAt = new Date();
  const prefix = startedAt.toISOString().replace(/[:.]/g, "-");
  mkdirSync(resultsDir, { recursive: true });
  const info = machine();
  console.log(`Relais benchmarks - command: ${commandLine(import.meta.filename)}`);
  for (const [key, value] of Object.entries(info)) console.log(`  ${key}: ${value}`);
  const stack = await startStack({ components: ["nats", "redis"] });
  const natsUrl = stack.nats?.url ?? "";
  const redisUrl = stack.redis?.url ?? "";
  const nc = await connectNats(natsUrl, "relais-bench-all");
  const redis = connectRedis(redisUrl, "relais-bench-all");
  try {
    await ensureStreams(await jetstreamManager(nc));
    console.log(`baselines: nats bench js + bare nats.js, ${settings.baselineMessages} messages (load ${loadNow()})`);
    const baselines = await measureBaselines(natsUrl, {
      messages: settings.baselineMessages,
      bytes: 256,
      timeoutS: settings.timeoutS,
    });
    const context: PipelineContext = {
      natsUrl,
      redisUrl,
      redis,
      kv: await openConfigBucket(nc),
      timeoutS: settings.timeoutS,
    };
    const rows = [
      ...(await stageRows(settings, baselines, prefix)),
      ...(await pipelineRows(settings, baselines, context)),
    ];
    const report = {
      command: commandLine(import.meta.filename),
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: { ...info, loadAtEnd: loadNow() },
      settings,
      baselines,
      rows,
    };
    printReport(report);
    const file = join(resultsDir, `${prefix}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwritten to ${relative(process.cwd(), file)}`);
  } finally {
    await nc.drain().catch(() => undefined);
    await redis.quit().catch(() => undefined);
    await stack.stop();
  }
}

await main();
