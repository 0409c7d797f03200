// Chaos: automation timers survive a SIGKILL of `relais engage`. TIMERS instances wait in Redis,
// due over SPREAD_MS; the engage process is killed with SIGKILL a third of the way through (at a
// moment it holds claims: instances leased and not yet done), a second one starts DOWN_MS later,
// and runs until every timer fired. Every instance must reach RELAIS_SENDS exactly once, none
// before its due time, and none later than 1 s past due, or past the moment the second process is
// back (its /readyz answers) for those due while none ran. Volume: RELAIS_CHAOS_TIMERS (default
// 5,000; npm run test:chaos runs 100,000).
//
// The instances are written with AutomationStore.schedule (what the engine does for a trigger
// event whose date is in attributes.at), the automation is in the config KV, and the test reads
// the namespace's send subject with its own durable consumer, acking what it reads. It reads once
// every timer has fired (the stream keeps the jobs until then): a fire's time is the job's
// createdAt, stamped by engage, so reading live would only take CPU from the process under test
// on this 2-core machine, where in production deliver pools read from other hosts.
//
// Instances the killed process had claimed come back when their lease ends (LEASE_MS, 3 s, renewed
// while a live process fires them): before the second process is ready, so the same 1 s bound
// holds for them (a subtest, to report them apart).
//
// RELAIS_CHAOS_CPU_PROF=<dir> makes the engage processes write V8 CPU profiles there (the second
// one's on its exit), to see where the restart's time goes.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Redis } from "ioredis";
import { automationSpecSchema } from "#crds";
import { AutomationStore, instanceKey, LEASE_MS } from "#engage";
import type { Instance } from "#engage";
import { defer, spawnRelais, uniqueName, useStack, waitUntil, within } from "#harness";
import { ProfileStore } from "#ingest";
import { ConfigKeys, connectNats, connectRedis, ensureStreams, openConfigBucket, Streams, Subjects } from "#runtime";
import type { EventMessage, SendJob } from "#runtime";

const stack = useStack(["nats", "redis"]);

const TIMERS = Number(process.env.RELAIS_CHAOS_TIMERS ?? 5000);
const AUTOMATION = "reminder";
const SENDER = "mail";
const EVENT = "appointment_booked";
/** From the start of scheduling to the first due time. */
const LEAD_MS = 3000;
/** Due times are spread evenly over this. */
const SPREAD_MS = 30_000;
/** The kill comes this far into the spread: timers are due before, during and after the outage. */
const KILL_AT = 1 / 3;
/** Between the killed process's exit and the second one's start. */
const DOWN_MS = 3000;
/** The acceptance bound: how late past due (or past the restart) a timer may fire. */
const LATE_MS = 1000;
const TIMER_INTERVAL_MS = 200;
const CHUNK = 2000;

assert.ok(Number.isInteger(TIMERS) && TIMERS >= 100, `RELAIS_CHAOS_TIMERS must be an integer >= 100, got ${TIMERS}`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number): string => (ms / 1000).toFixed(1);

interface Engage {
  name: string;
  child: ChildProcess;
  pid: number;
  baseUrl: string;
  exited: Promise<string>;
  output(): string;
}

/** Spawns one `relais engage` (see spawnRelais: killed with the test and with this process). */
async function startEngage(t: TestContext, name: string): Promise<Engage> {
  return spawnRelais(t, {
    command: "engage",
    name,
    env: {
      RELAIS_NATS_URL: stack.natsUrl,
      RELAIS_REDIS_URL: stack.redisUrl,
      RELAIS_TIMER_INTERVAL_MS: String(TIMER_INTERVAL_MS),
      RELAIS_LOG_LEVEL: "warn",
      ...(process.env.RELAIS_CHAOS_CPU_PROF !== undefined && {
        NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.RELAIS_CHAOS_CPU_PROF}`,
      }),
    },
  });
}

/** Resolves with the time (Date.now) /readyz first answered 200. */
async function awaitReady(engage: Engage): Promise<number> {
  const reason = await waitUntil(
    async () => {
      if (engage.child.exitCode !== null) throw new Error(`exited with code ${engage.child.exitCode}`);
      return (await fetch(`${engage.baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok;
    },
    { timeoutMs: 30_000, intervalMs: 25 },
  );
  assert.equal(reason, "", `${engage.name} never ready: ${reason}\n${engage.output()}`);
  return Date.now();
}

/** One send job as read from RELAIS_SENDS. */
interface Fire {
  createdMs: number;
}

/** Reads the namespace's send subject into `fires` (by instance key) until stopped. */
interface Reader {
  fires: Map<string, Fire[]>;
  /** Messages read whose runId is not one of this test's instances. */
  foreign: string[];
  stop(): Promise<void>;
}

async function startReader(t: TestContext, js: JetStreamClient, durable: string): Promise<Reader> {
  const consumer = await js.consumers.get(Streams.sends, durable);
  const messages = await consumer.consume({ max_messages: 2000 });
  const fires = new Map<string, Fire[]>();
  const foreign: string[] = [];
  let failure: unknown;
  const reading = (async () => {
    for await (const message of messages) {
      const job = message.json<SendJob>();
      const key = job.source.runId ?? "";
      const list = fires.get(key);
      if (list === undefined && !key.startsWith(`${AUTOMATION}|`)) foreign.push(job.id);
      const fire = { createdMs: Date.parse(job.createdAt) };
      if (list === undefined) fires.set(key, [fire]);
      else list.push(fire);
      message.ack();
    }
  })().catch((error: unknown) => {
    failure = error;
  });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await messages.close();
      await reading;
      if (failure !== undefined)
        throw failure instanceof Error ? failure : new Error("reading RELAIS_SENDS failed", { cause: failure });
    })());
  defer(t, stop);
  return { fires, foreign, stop };
}

interface Setup {
  namespace: string;
  redis: Redis;
  store: AutomationStore;
  js: JetStreamClient;
  prefix: string;
}

/** The connections, the automation in the KV, the profiles, and the test's reader consumer. */
async function setUp(t: TestContext): Promise<Setup & { reader: string }> {
  const namespace = uniqueName("chaos");
  const nc = await connectNats(stack.natsUrl, "chaos-test");
  defer(t, () => nc.drain());
  const redis = connectRedis(stack.redisUrl, "chaos-test");
  defer(t, () => redis.quit());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const kv = await openConfigBucket(nc);
  const prefix = `relais:{${namespace}}:`;
  const reader = `test_${namespace.replace(/-/g, "_")}`;
  // Leave the shared servers as found: the reader, the config and this namespace's keys.
  defer(t, async () => {
    await jsm.consumers.delete(Streams.sends, reader).catch(() => false);
    await kv.delete(ConfigKeys.of(namespace, "Automation", AUTOMATION));
    await removeKeys(redis, prefix);
  });
  // RELAIS_SENDS is a work queue: one acking consumer on the namespace's subject (no pool runs).
  await jsm.consumers.add(Streams.sends, {
    durable_name: reader,
    filter_subject: Subjects.send(namespace, SENDER),
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 10_000,
  });
  const spec = automationSpecSchema.parse({
    senderRef: { name: SENDER },
    trigger: { event: EVENT },
    wait: { until: { field: "attributes.at", offset: "0s" } },
    message: { email: { subject: "See you soon", html: "<p>Your appointment is coming up.</p>" } },
  });
  await kv.put(ConfigKeys.of(namespace, "Automation", AUTOMATION), JSON.stringify({ generation: 1, spec }));
  const profiles = new ProfileStore(redis);
  for (let start = 0; start < TIMERS; start += CHUNK) {
    const batch = Array.from({ length: Math.min(CHUNK, TIMERS - start) }, (_, k) => start + k);
    await Promise.all(batch.map((i) => profiles.identify(namespace, `p${i}`, { email: `p${i}@example.com` })));
  }
  return { namespace, redis, store: new AutomationStore(redis), js, prefix, reader };
}

async function removeKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
}

/** Timer i: profile p<i>, due `base + LEAD_MS + i / TIMERS * SPREAD_MS`, as the engine writes it. */
function instanceOf(namespace: string, i: number, base: number): Instance {
  const dueMs = base + LEAD_MS + Math.floor((i / TIMERS) * SPREAD_MS);
  const at = new Date(base).toISOString();
  const trigger: EventMessage = {
    id: `ev-${i}`,
    namespace,
    profileId: `p${i}`,
    name: EVENT,
    timestamp: at,
    receivedAt: at,
    attributes: { at: new Date(dueMs).toISOString() },
  };
  const key = instanceKey(AUTOMATION, `p${i}`, trigger.id);
  return { key, automation: AUTOMATION, generation: 1, profileId: `p${i}`, trigger, dueMs };
}

/** Schedules every timer in due order; resolves with them and how many were written after due. */
async function schedule(setup: Setup, base: number): Promise<{ due: Map<string, number>; lateWrites: number }> {
  const due = new Map<string, number>();
  let lateWrites = 0;
  for (let start = 0; start < TIMERS; start += CHUNK) {
    const chunk = Array.from({ length: Math.min(CHUNK, TIMERS - start) }, (_, k) =>
      instanceOf(setup.namespace, start + k, base),
    );
    const created = await Promise.all(chunk.map((instance) => setup.store.schedule(setup.namespace, instance)));
    assert.ok(
      created.every((result) => result.created),
      "every instance is new",
    );
    const written = Date.now();
    for (const instance of chunk) {
      due.set(instance.key, instance.dueMs);
      if (written > instance.dueMs) lateWrites++;
    }
  }
  return { due, lateWrites };
}

/** Waits until the engage process holds claims (a fire in progress), at most `ms`. */
async function awaitClaims(setup: Setup, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await setup.redis.zcard(`${setup.prefix}lease`)) > 0) return true;
    await sleep(1);
  }
  return false;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

function summary(values: readonly number[]): string {
  if (values.length === 0) return "none";
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => percentile(sorted, p).toFixed(0);
  return `${values.length} timers, min ${at(0)} ms, p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`;
}

/** The outage as the test saw it (Date.now), and what the killed process held. */
interface Outage {
  killedAt: number;
  backAt: number;
  /** Instances leased by the killed process when it died. */
  claims: Set<string>;
}

/** The latest a timer may fire: 1 s past due while a process ran, else 1 s past the restart. */
function deadline(dueMs: number, outage: Outage): number {
  return dueMs + LATE_MS <= outage.killedAt ? dueMs + LATE_MS : Math.max(dueMs, outage.backAt) + LATE_MS;
}

interface Verdict {
  missing: string[];
  duplicated: string[];
  early: string[];
  /** Not in flight at the kill, and later than their deadline. */
  late: string[];
  /** In flight at the kill, and later than their deadline. */
  lateClaims: string[];
  lateness: { beforeKill: number[]; afterKill: number[]; afterBack: number[]; claims: number[] };
  /** Timers the second process fired that were due before it was back, and the last such fire. */
  backlog: { count: number; lastMs: number };
}

function judge(due: ReadonlyMap<string, number>, fires: ReadonlyMap<string, Fire[]>, outage: Outage): Verdict {
  const verdict: Verdict = {
    missing: [],
    duplicated: [],
    early: [],
    late: [],
    lateClaims: [],
    lateness: { beforeKill: [], afterKill: [], afterBack: [], claims: [] },
    backlog: { count: 0, lastMs: outage.backAt },
  };
  for (const [key, dueMs] of due) {
    const list = fires.get(key) ?? [];
    const first = list[0];
    if (first === undefined) {
      verdict.missing.push(key);
      continue;
    }
    if (list.length > 1) verdict.duplicated.push(key);
    const created = first.createdMs;
    if (created < dueMs) verdict.early.push(key);
    const late = created > deadline(dueMs, outage);
    if (outage.claims.has(key)) {
      verdict.lateness.claims.push(created - dueMs);
      if (late) verdict.lateClaims.push(key);
      continue;
    }
    if (late) verdict.late.push(key);
    if (created < outage.killedAt) verdict.lateness.beforeKill.push(created - dueMs);
    else if (dueMs < outage.backAt) {
      verdict.lateness.afterBack.push(created - outage.backAt);
      verdict.backlog.count++;
      verdict.backlog.lastMs = Math.max(verdict.backlog.lastMs, created);
    } else verdict.lateness.afterKill.push(created - dueMs);
  }
  return verdict;
}

function describeKeys(keys: readonly string[], due: ReadonlyMap<string, number>, fires: ReadonlyMap<string, Fire[]>) {
  return keys
    .slice(0, 5)
    .map((key) => `${key} due ${due.get(key) ?? "?"} fired ${(fires.get(key) ?? []).map((f) => f.createdMs).join(",")}`)
    .join("; ");
}

/** The most of `times` (ms) that fall in one second. */
function peakPerSecond(times: readonly number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to++) {
    while ((sorted[to] ?? 0) - (sorted[from] ?? 0) >= 1000) from++;
    peak = Math.max(peak, to - from + 1);
  }
  return peak;
}

/** For each second after `fromMs`, the worst createdAt - max(due, fromMs) of the fires in it: where a run fell behind. */
function latenessBySecond(
  due: ReadonlyMap<string, number>,
  fires: ReadonlyMap<string, Fire[]>,
  fromMs: number,
): string {
  const worst: number[] = [];
  for (const [key, dueMs] of due) {
    const created = fires.get(key)?.[0]?.createdMs;
    if (created === undefined || created < fromMs) continue;
    const second = Math.floor((created - fromMs) / 1000);
    worst[second] = Math.max(worst[second] ?? 0, created - Math.max(dueMs, fromMs));
  }
  return Array.from({ length: worst.length }, (_, second) => (worst[second] ?? 0).toFixed(0)).join(" ");
}

/** Waits until the test's consumer has a job for every timer, without reading them. */
async function awaitAllFired(setup: Setup & { reader: string }, ms: number): Promise<string> {
  const consumer = await setup.js.consumers.get(Streams.sends, setup.reader);
  return waitUntil(async () => (await consumer.info()).num_pending >= TIMERS, { timeoutMs: ms, intervalMs: 250 });
}

/** Generous bound on setup (profiles and instances) on a loaded 2-core machine. */
const setupBudgetMs = 60_000 + TIMERS * 0.5;
const runBudgetMs = LEAD_MS + SPREAD_MS + LEASE_MS + 60_000 + TIMERS * 0.5;

describe("engage timers under a process crash", () => {
  it(
    `fires each of ${TIMERS} waiting timers once, never early, at most ${LATE_MS} ms late, across a SIGKILL`,
    { timeout: setupBudgetMs + runBudgetMs + 60_000 },
    async (t) => {
      const started = Date.now();
      const setup = await setUp(t);
      const { namespace, prefix } = setup;
      t.diagnostic(`${TIMERS} profiles created in ${seconds(Date.now() - started)} s`);

      const first = await startEngage(t, "engage-1");
      await awaitReady(first);
      const base = Date.now();
      const { due, lateWrites } = await schedule(setup, base);
      const scheduledMs = Date.now() - base;
      t.diagnostic(
        `${TIMERS} instances scheduled in ${seconds(scheduledMs)} s (${((TIMERS / scheduledMs) * 1000).toFixed(0)}/s), ` +
          `due from ${seconds(LEAD_MS)} s to ${seconds(LEAD_MS + SPREAD_MS)} s after the start of scheduling`,
      );
      assert.equal(lateWrites, 0, `${lateWrites} instances were written after their due time: raise LEAD_MS`);

      // Kill the first process when a third of the spread has passed, at a moment it holds claims.
      const killTarget = base + LEAD_MS + SPREAD_MS * KILL_AT;
      await sleep(Math.max(0, killTarget - Date.now()));
      assert.equal(first.child.exitCode, null, `engage-1 exited early:\n${first.output()}`);
      const heldClaims = await awaitClaims(setup, 2000);
      first.child.kill("SIGKILL");
      const killedAt = Date.now();
      assert.equal(await first.exited, "by SIGKILL");
      const [leased, waiting] = await Promise.all([
        setup.redis.zrange(`${prefix}lease`, "0", "-1"),
        setup.redis.zcard(`${prefix}timers`),
      ]);
      const claims = new Set(leased);
      t.diagnostic(
        `killed engage-1 (pid ${first.pid}) ${seconds(killedAt - base)} s after the start of scheduling` +
          `${heldClaims ? "" : " (it held no claim within 2 s)"}: ${claims.size} instances leased, ${waiting} waiting`,
      );

      await sleep(DOWN_MS);
      const second = await startEngage(t, "engage-2");
      const backAt = await awaitReady(second);
      const outage: Outage = { killedAt, backAt, claims };
      const dueWhileDown = [...due.values()].filter((ms) => ms >= killedAt && ms < backAt).length;
      t.diagnostic(
        `engage-2 ready ${seconds(backAt - killedAt)} s after the kill; ${dueWhileDown} timers came due in between`,
      );

      const lastDue = [...due.values()].reduce((max, ms) => Math.max(max, ms), 0);
      const budget = Math.max(lastDue, killedAt + LEASE_MS) - Date.now() + 60_000 + TIMERS * 0.5;
      const progress = await awaitAllFired(setup, budget);
      assert.equal(second.child.exitCode, null, `engage-2 exited:\n${second.output()}`);
      assert.equal(progress, "", `not every one of ${TIMERS} timers fired:\n${second.output()}`);
      const allFiredAt = Date.now();
      // Room for a late duplicate to show, and for the last fires' counters to land.
      await sleep(2000);
      const reader = await startReader(t, setup.js, setup.reader);
      const read = await waitUntil(async () => reader.fires.size >= TIMERS, { timeoutMs: 60_000, intervalMs: 100 });
      assert.equal(read, "", `read ${reader.fires.size} of ${TIMERS} jobs from RELAIS_SENDS`);
      const settled = await waitUntil(async () => (await setup.store.stats(namespace, AUTOMATION)).sent === TIMERS, {
        timeoutMs: 10_000,
      });
      const stats = await setup.store.stats(namespace, AUTOMATION);
      const [timersLeft, leasesLeft] = await Promise.all([
        setup.redis.zcard(`${prefix}timers`),
        setup.redis.zcard(`${prefix}lease`),
      ]);
      second.child.kill("SIGTERM");
      const how = await within(second.exited, 20_000);
      await reader.stop();

      const verdict = judge(due, reader.fires, outage);
      const published = [...reader.fires.values()].reduce((sum, list) => sum + list.length, 0);
      const lastFire = [...reader.fires.values()].reduce((max, list) => Math.max(max, list[0]?.createdMs ?? 0), 0);
      const backlogMs = verdict.backlog.lastMs - backAt;
      const firedBeforeKill = [...reader.fires.values()].filter((list) => (list[0]?.createdMs ?? 0) < killedAt).length;
      const afterBack = [...reader.fires.values()].filter((list) => (list[0]?.createdMs ?? 0) >= killedAt);
      const peak = peakPerSecond(afterBack.map((list) => list[0]?.createdMs ?? 0));
      t.diagnostic(
        `lateness (createdAt - due) while engage-1 ran: ${summary(verdict.lateness.beforeKill)}; ` +
          `due after engage-2 was back: ${summary(verdict.lateness.afterKill)}`,
      );
      t.diagnostic(
        `due before engage-2 was back, lateness past its readiness: ${summary(verdict.lateness.afterBack)}; ` +
          `this backlog of ${verdict.backlog.count} fired within ${seconds(backlogMs)} s of readiness ` +
          `(${backlogMs > 0 ? ((verdict.backlog.count / backlogMs) * 1000).toFixed(0) : "-"}/s)`,
      );
      t.diagnostic(
        `engage-1's ${claims.size} claims at the kill, lateness past due: ${summary(verdict.lateness.claims)} ` +
          `(lease ${seconds(LEASE_MS)} s)`,
      );
      t.diagnostic(
        `engage-2 fired ${afterBack.length} timers, the last ${seconds(lastFire - backAt)} s after readiness, ` +
          `at most ${peak}/s (fires in one second); engage-1 fired ${firedBeforeKill} before the kill`,
      );
      t.diagnostic(
        `worst lateness past due by second after readiness (ms): ${latenessBySecond(due, reader.fires, backAt)}`,
      );
      if (second.output().trim() !== "") t.diagnostic(`engage-2 said: ${second.output().trim().slice(-600)}`);
      t.diagnostic(
        `RELAIS_SENDS: ${published} messages for ${reader.fires.size} instances (duplicates ${published - reader.fires.size}); ` +
          `counters ${JSON.stringify(stats)}; total ${seconds(allFiredAt - started)} s, ` +
          `${seconds(allFiredAt - base)} s from the start of scheduling`,
      );

      // Leases are short (LEASE_MS) and renewed while firing: a killed process's claims lapse
      // before its successor is ready, which claims them first.
      await t.test(
        `the ${claims.size} instances engage-1 held at the kill fire within ${LATE_MS} ms of the restart too (lease ${LEASE_MS} ms)`,
        () => {
          assert.equal(
            verdict.lateClaims.length,
            0,
            `${verdict.lateClaims.length} fired late: ${describeKeys(verdict.lateClaims, due, reader.fires)}`,
          );
        },
      );

      assert.deepEqual(reader.foreign, [], "only this test's instances were sent");
      assert.deepEqual(verdict.missing, [], "every timer fired");
      assert.deepEqual(verdict.duplicated, [], "no timer fired twice");
      assert.equal(settled, "", `counter sent is ${stats.sent ?? 0}, not ${TIMERS}`);
      assert.deepEqual(stats, { triggered: TIMERS, waiting: 0, sent: TIMERS }, "the automation's counters");
      assert.deepEqual([timersLeft, leasesLeft], [0, 0], "no timer or lease left");
      assert.deepEqual(verdict.early, [], `none early: ${describeKeys(verdict.early, due, reader.fires)}`);
      assert.equal(
        verdict.late.length,
        0,
        `${verdict.late.length} timers fired more than ${LATE_MS} ms past due (or past the restart): ` +
          describeKeys(verdict.late, due, reader.fires),
      );
      assert.equal(how, "with code 0", `engage-2 exited ${how}:\n${second.output()}`);
    },
  );
});
