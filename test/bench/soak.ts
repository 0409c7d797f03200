// Soak: the whole product at a steady mixed load for RELAIS_SOAK_MINUTES (30 by default), with
// memory and lag sampled every minute. Local mode's operator runs the ingest, engage and deliver
// pools (two deliver replicas to an SMTP sink) on their own NATS and Redis (test/fixtures/system.ts);
// events go in over HTTP and trigger an Automation, and a recurring Campaign sends every minute.
//
// Each minute it prints the RSS of every process (operator, pools, nats-server, redis-server) and
// the consumers' lag (num_pending + num_ack_pending of deliver's and engage's consumers); at the end,
// the least-squares slope per series (MiB/min, messages/min) over the samples after the first
// (warm-up: JIT, connection pools, first run), a verdict per series, and whether every accepted
// event and every campaign recipient was sent exactly once.
//
//   npm run soak                                    # 30 minutes
//   RELAIS_SOAK_MINUTES=5 npm run soak              # a short proof
//   RELAIS_SOAK_EVENTS_PER_SECOND=20 RELAIS_SOAK_PROFILES=5000 (defaults)
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { waitUntil } from "#harness";
import { abortOnSignals, delay, readCampaignRuns, Streams } from "#runtime";
import { EventStream, NAMESPACE, SENDER, startSystem } from "../fixtures/system.ts";
import type { System } from "../fixtures/system.ts";

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw ?? ""}"`);
  return value;
}

const MINUTES = setting("RELAIS_SOAK_MINUTES", 30);
const PROFILES = Math.round(setting("RELAIS_SOAK_PROFILES", 5000));
const EVENTS_PER_SECOND = setting("RELAIS_SOAK_EVENTS_PER_SECOND", 20);
const SAMPLE_MS = 60_000;
const CAMPAIGN = "every-minute";
/** The recurring campaign's audience: points < 20, a fifth of the profiles per run. */
const AUDIENCE_POINTS = 20;
/** A series is flat when its slope is below these (per minute); stored streams are expected to grow (7-day retention). */
const FLAT_MIB_PER_MIN = 1;
const FLAT_LAG_PER_MIN = 50;

interface Sample {
  minute: number;
  rssMiB: Map<string, number>;
  lag: { deliver: number; engage: number };
  /** Bytes JetStream keeps for RELAIS_EVENTS and RELAIS_FEEDBACK (limits retention: 7 days). */
  streamsMiB: number;
  /** Keys in Redis (profiles, send records kept 7 days, histories, reports). */
  redisKeys: number;
  received: number;
  accepted: number;
  load: number;
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) / 1024;
  } catch {
    return Number.NaN;
  }
}

async function streamsMiB(system: System): Promise<number> {
  let bytes = 0;
  for (const stream of [Streams.events, Streams.feedback]) bytes += (await system.jsm.streams.info(stream)).state.bytes;
  return bytes / 2 ** 20;
}

async function processes(system: System): Promise<Map<string, number | undefined>> {
  const named = new Map<string, number | undefined>([
    ["operator", system.operator().pid],
    ["nats-server", system.stack.nats?.process.pid],
    ["redis-server", system.stack.redis?.process.pid],
  ]);
  const pools = (await system.pools()).sort((a, b) => a.kind.localeCompare(b.kind) || a.pid - b.pid);
  const seen = new Map<string, number>();
  for (const pool of pools) {
    const index = seen.get(pool.kind) ?? 0;
    seen.set(pool.kind, index + 1);
    named.set(pool.kind === "deliver" ? `deliver-${index}` : pool.kind, pool.pid);
  }
  return named;
}

/** Least-squares slope of y over x, and its standard error (NaN with fewer than 3 points). */
function slope(points: readonly { x: number; y: number }[]): { perMin: number; stderr: number } {
  const n = points.length;
  if (n < 2) return { perMin: Number.NaN, stderr: Number.NaN };
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - meanX) * (p.y - meanY);
    den += (p.x - meanX) ** 2;
  }
  const perMin = num / den;
  const residuals = points.reduce((sum, p) => sum + (p.y - meanY - perMin * (p.x - meanX)) ** 2, 0);
  return { perMin, stderr: n < 3 ? Number.NaN : Math.sqrt(residuals / (n - 2) / den) };
}

/**
 * A trend is reported only when the slope is above `flat` and more than twice its standard error:
 * a Node process's RSS moves by tens of MiB with each major GC, so a few samples show noise.
 */
function trend(fit: { perMin: number; stderr: number }, flat: number, words: [string, string, string]): string {
  const [none, up, down] = words;
  if (Math.abs(fit.perMin) < flat || !(Math.abs(fit.perMin) > 2 * fit.stderr)) return none;
  return fit.perMin > 0 ? up : down;
}

const signed = (value: number, digits: number): string => `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;

const pad = (text: string, width: number): string => text.padStart(width);

function printSample(sample: Sample, names: readonly string[]): void {
  if (sample.minute === 0) {
    console.log("RSS in MiB per process; lag = num_pending + num_ack_pending; sent = messages at the sink");
    const header = [
      "min",
      ...names,
      "streams MiB",
      "redis keys",
      "deliver lag",
      "engage lag",
      "sent",
      "events",
      "load",
    ];
    console.log(header.map((cell) => pad(cell, 13)).join(""));
  }
  const cells = [
    String(sample.minute),
    ...names.map((name) => (sample.rssMiB.get(name) ?? Number.NaN).toFixed(1)),
    sample.streamsMiB.toFixed(1),
    String(sample.redisKeys),
    String(sample.lag.deliver),
    String(sample.lag.engage),
    String(sample.received),
    String(sample.accepted),
    sample.load.toFixed(2),
  ];
  console.log(cells.map((cell) => pad(cell, 13)).join(""));
}

function verdicts(samples: readonly Sample[], names: readonly string[]): string[] {
  // The first sample is the start; the first minute is warm-up (JIT, pools, the first run).
  const steady = samples.filter((sample) => sample.minute >= 1);
  const lines: string[] = [
    `slopes over minutes 1–${samples.at(-1)?.minute ?? 0} (least squares ± standard error; a trend needs > ${FLAT_MIB_PER_MIN} MiB/min or ${FLAT_LAG_PER_MIN} messages/min and > 2 standard errors):`,
  ];
  const series: [string, (s: Sample) => number, string, number, [string, string, string]][] = [
    ...names.map((name): [string, (s: Sample) => number, string, number, [string, string, string]] => [
      `${name} RSS`,
      (s) => s.rssMiB.get(name) ?? Number.NaN,
      "MiB/min",
      FLAT_MIB_PER_MIN,
      ["no growth trend", "GROWING", "shrinking"],
    ]),
    ["streams stored", (s) => s.streamsMiB, "MiB/min", 0.01, ["flat", "growing (retention)", "shrinking"]],
    [
      "deliver lag",
      (s) => s.lag.deliver,
      "messages/min",
      FLAT_LAG_PER_MIN,
      ["no lag growth", "LAG GROWING", "lag shrinking"],
    ],
    [
      "engage lag",
      (s) => s.lag.engage,
      "messages/min",
      FLAT_LAG_PER_MIN,
      ["no lag growth", "LAG GROWING", "lag shrinking"],
    ],
  ];
  for (const [label, value, unit, flat, words] of series) {
    const fit = slope(steady.map((s) => ({ x: s.minute, y: value(s) })));
    lines.push(
      `  ${label.padEnd(20)} ${signed(fit.perMin, 2)} ± ${fit.stderr.toFixed(2)} ${unit}: ${trend(fit, flat, words)}`,
    );
  }
  return lines;
}

async function settle(system: System, stream: EventStream): Promise<string> {
  stream.pause();
  const reason = await waitUntil(
    async () => {
      system.tally.update();
      const lag = await system.lag();
      return lag.deliver + lag.engage === 0 && system.tally.missing(stream.expectedJobs()).length === 0;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  const runs = await readCampaignRuns(system.redis, { namespace: NAMESPACE, campaign: CAMPAIGN, limit: 1000 });
  const runIds = new Set(runs.map((run) => run.id));
  let campaignSends = 0;
  for (const id of system.tally.counts.keys()) if (id.startsWith(`cmp|${CAMPAIGN}|`)) campaignSends++;
  const planned = runs.reduce((sum, run) => sum + run.enqueued, 0);
  return [
    `settled: ${reason === "" ? "yes" : reason}`,
    `events accepted ${stream.accepted.size}, their sends missing ${system.tally.missing(stream.expectedJobs()).length}`,
    `campaign runs ${runIds.size}, enqueued ${planned}, distinct sends received ${campaignSends}`,
    `duplicates ${system.tally.duplicates()} (goal 0); requests refused and retried ${stream.refused}`,
  ].join("\n");
}

/** Ctrl-C (or SIGTERM) ends the sampling early; the summary is printed and everything stopped. */
async function main(signal: AbortSignal): Promise<void> {
  const teardowns: (() => unknown)[] = [];
  try {
    const system = await startSystem({
      profiles: PROFILES,
      deliverReplicas: 2,
      concurrency: 50,
      defer: (teardown) => teardowns.push(teardown),
    });
    await system.startOperator();
    await system.writeCampaign(CAMPAIGN, {
      senderRef: { name: SENDER },
      audience: { segment: `profile.attributes.points < ${AUDIENCE_POINTS}` },
      schedule: { recurring: { cron: "* * * * *" } },
      message: { email: { subject: "News for {{ profile.id }}", html: "<p>This minute's news.</p>" } },
    });
    const batch = Math.max(1, Math.round(EVENTS_PER_SECOND / 5));
    const stream = new EventStream(system, { profiles: PROFILES, batch, intervalMs: 200 });
    const stop = new AbortController();
    const streaming = stream.run(stop.signal);
    console.log(
      `soak: ${MINUTES} min, ${PROFILES} profiles, ${batch * 5} events/s over HTTP → Automation, ` +
        `Campaign every minute to ${(PROFILES * AUDIENCE_POINTS) / 100} profiles, 2 deliver replicas → SMTP sink`,
    );
    const samples: Sample[] = [];
    let names: string[] = [];
    const started = performance.now();
    const interrupted = (): boolean => signal.aborted;
    for (let minute = 0; minute <= MINUTES; minute++) {
      await delay(Math.max(0, started + minute * SAMPLE_MS - performance.now()), signal);
      if (interrupted()) break;
      system.tally.update();
      const pids = await processes(system);
      if (minute === 0) names = [...pids.keys()];
      const sample: Sample = {
        minute,
        rssMiB: new Map([...pids].map(([name, pid]) => [name, rssMiB(pid)])),
        lag: await system.lag(),
        streamsMiB: await streamsMiB(system),
        redisKeys: await system.redis.dbsize(),
        received: [...system.tally.counts.values()].reduce((sum, count) => sum + count, 0),
        accepted: stream.accepted.size,
        load: loadavg()[0] ?? 0,
      };
      samples.push(sample);
      printSample(sample, names);
    }
    console.log(verdicts(samples, names).join("\n"));
    console.log(await settle(system, stream));
    stop.abort();
    await streaming;
  } finally {
    for (let next = teardowns.pop(); next !== undefined; next = teardowns.pop()) await next();
  }
}

await main(abortOnSignals());
