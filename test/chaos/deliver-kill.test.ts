// Chaos: three `relais deliver` processes share one Sender's work; one is killed with SIGKILL
// part-way through and never comes back. The two survivors must finish: every send job ends with
// exactly one final record in Redis and is acked, every message reaches the SMTP sink, and the
// only duplicates allowed are sends the killed replica made but had not yet recorded (at most its
// in-flight batch; the goal is 0). Volume: RELAIS_CHAOS_SENDS (default 2,000; npm run test:chaos
// runs 20,000).
//
// The killed replica's unfinished jobs come back only after JetStream's ack_wait (60 s), so this
// test lasts over a minute whatever the volume; one that comes back before the replica's claim on
// it lapses (also 60 s, taken a few ms after delivery) is "busy" and waits 30 s more.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { hostname } from "node:os";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { Redis } from "ioredis";
import { campaignSpecSchema, senderSpecSchema } from "#crds";
import { defer, spawnRelais, startSmtpSink, uniqueName, useStack, waitUntil, within } from "#harness";
import type { SmtpSink } from "#harness";
import { ProfileStore } from "#ingest";
import {
  ConfigKeys,
  ConsumerNames,
  connectNats,
  connectRedis,
  ensureStreams,
  openConfigBucket,
  RedisKeys,
  Streams,
  Subjects,
} from "#runtime";
import type { SendJob } from "#runtime";

const stack = useStack(["nats", "redis"]);

const JOBS = Number(process.env.RELAIS_CHAOS_SENDS ?? 2000);
const REPLICAS = 3;
const CONCURRENCY = 50;
/** The fraction of JOBS received by the sink when one replica is killed. */
const KILL_AT = 0.4;
const SENDER = "mail";
const CAMPAIGN = "promo";
const CHUNK = 1000;
/** Redelivery after ack_wait (60 s) plus a "busy" nak (30 s), with room for a slow machine. */
const RECOVERY_BUDGET_MS = 150_000;
/** Generous lower bound on the pool's rate on a loaded 2-core machine, to bound each phase. */
const MIN_RATE_PER_S = 40;
const phaseBudgetMs = (jobs: number): number => 60_000 + (jobs / MIN_RATE_PER_S) * 1000;

assert.ok(Number.isInteger(JOBS) && JOBS >= 100, `RELAIS_CHAOS_SENDS must be an integer >= 100, got ${JOBS}`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number): string => (ms / 1000).toFixed(1);

interface Replica {
  name: string;
  child: ChildProcess;
  pid: number;
  metricsUrl: string;
  /** Resolves with how the process ended. */
  exited: Promise<string>;
  /** The end of its stdout and stderr, for failure messages. */
  output(): string;
}

interface Scrape {
  sent: number;
  duplicate: number;
  retried: number;
  failed: number;
  inflight: number;
}

function metricValue(text: string, name: string, outcome?: string): number {
  const label = outcome === undefined ? "" : `[^}]*outcome="${outcome}"`;
  const match = new RegExp(`^${name}\\{${label}[^}]*\\} ([0-9.e+]+)$`, "m").exec(text);
  return Number(match?.[1] ?? 0);
}

async function scrape(replica: Replica): Promise<Scrape> {
  const text = await (await fetch(replica.metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
  const outcome = (name: string) => metricValue(text, "relais_deliver_messages_total", name);
  return {
    sent: outcome("sent"),
    duplicate: outcome("duplicate"),
    retried: outcome("retried"),
    failed: outcome("failed"),
    inflight: metricValue(text, "relais_deliver_inflight_messages"),
  };
}

interface Setup {
  namespace: string;
  redis: Redis;
  js: JetStreamClient;
  jsm: JetStreamManager;
  sink: SmtpSink;
  ids: string[];
}

/** The sink, the connections, the Sender and its Campaign in the KV, the profiles, the jobs. */
async function setUp(t: TestContext): Promise<Setup & { setupMs: number }> {
  const started = performance.now();
  const namespace = uniqueName("chaos");
  const nc = await connectNats(stack.natsUrl, "chaos-test");
  defer(t, () => nc.drain());
  const redis = connectRedis(stack.redisUrl, "chaos-test");
  defer(t, () => redis.quit());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const kv = await openConfigBucket(nc);
  const sink = await startSmtpSink({ tls: "none" });
  defer(t, () => sink.stop());
  // Leave the shared servers as found: the pool's consumer, the config and this namespace's keys.
  defer(t, async () => {
    await jsm.consumers.delete(Streams.sends, ConsumerNames.deliver(namespace, SENDER)).catch(() => false);
    await kv.delete(ConfigKeys.of(namespace, "Sender", SENDER));
    await kv.delete(ConfigKeys.of(namespace, "Campaign", CAMPAIGN));
    await removeKeys(redis, namespace);
  });

  const sender = senderSpecSchema.parse({
    channel: "email",
    email: {
      from: { address: "news@shop.example", name: "Shop" },
      transport: { smtp: { host: "127.0.0.1", port: sink.port, tls: "none", maxConnections: 5 } },
    },
    retry: { maxAttempts: 5, initialBackoff: "200ms", maxBackoff: "2s" },
    pool: { concurrency: CONCURRENCY },
  });
  await kv.put(ConfigKeys.of(namespace, "Sender", SENDER), JSON.stringify({ generation: 1, spec: sender }));
  const campaign = campaignSpecSchema.parse({
    senderRef: { name: SENDER },
    message: { email: { subject: "Hello {{ profile.id }}", html: "<p>Hi {{ profile.email }}, this week only.</p>" } },
  });
  await kv.put(ConfigKeys.of(namespace, "Campaign", CAMPAIGN), JSON.stringify({ generation: 1, spec: campaign }));

  const profiles = new ProfileStore(redis);
  const ids = Array.from({ length: JOBS }, (_, i) => `run-1:p${i}`);
  for (let start = 0; start < JOBS; start += CHUNK) {
    const batch = Array.from({ length: Math.min(CHUNK, JOBS - start) }, (_, k) => start + k);
    await Promise.all(batch.map((i) => profiles.identify(namespace, `p${i}`, { email: `p${i}@example.com` })));
  }
  const createdAt = new Date().toISOString();
  for (let start = 0; start < JOBS; start += CHUNK) {
    await Promise.all(
      ids.slice(start, start + CHUNK).map((id, k) => {
        const job: SendJob = {
          id,
          namespace,
          sender: SENDER,
          profileId: `p${start + k}`,
          source: { kind: "Campaign", name: CAMPAIGN, runId: "run-1" },
          transactional: false,
          createdAt,
        };
        return js.publish(Subjects.send(namespace, SENDER), JSON.stringify(job), { msgID: id });
      }),
    );
  }
  return { namespace, redis, js, jsm, sink, ids, setupMs: performance.now() - started };
}

async function removeKeys(redis: Redis, namespace: string): Promise<void> {
  const pattern = `${RedisKeys.sendRecord(namespace, "").slice(0, -"send:".length)}*`;
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
}

/** Spawns one `relais deliver` (see spawnRelais: killed with the test and with this process). */
async function startReplica(t: TestContext, namespace: string, name: string): Promise<Replica> {
  const replica = await spawnRelais(t, {
    command: "deliver",
    name,
    env: {
      RELAIS_NATS_URL: stack.natsUrl,
      RELAIS_REDIS_URL: stack.redisUrl,
      RELAIS_NAMESPACE: namespace,
      RELAIS_SENDER: SENDER,
      RELAIS_TOKEN_SECRET: "chaos-test-token-secret-at-least-32-chars",
      RELAIS_PUBLIC_BASE_URL: "https://engage.shop.example",
      RELAIS_LOG_LEVEL: "warn",
    },
  });
  return { ...replica, metricsUrl: `${replica.baseUrl}/metrics` };
}

async function awaitReady(replica: Replica): Promise<void> {
  const url = replica.metricsUrl.replace(/metrics$/, "readyz");
  const reason = await waitUntil(async () => (await fetch(url)).ok, { timeoutMs: 30_000, intervalMs: 100 });
  assert.equal(reason, "", `${replica.name} never ready: ${reason}\n${replica.output()}`);
}

/** The send records of `ids` (null when absent), in chunks. */
async function records(redis: Redis, namespace: string, ids: readonly string[]): Promise<Map<string, string | null>> {
  const result = new Map<string, string | null>();
  for (let start = 0; start < ids.length; start += CHUNK) {
    const chunk = ids.slice(start, start + CHUNK);
    const values = await redis.mget(...chunk.map((id) => RedisKeys.sendRecord(namespace, id)));
    chunk.forEach((id, k) => result.set(id, values[k] ?? null));
  }
  return result;
}

function receivedIds(sink: SmtpSink, from = 0, to = sink.received.length): string[] {
  return sink.received.slice(from, to).map((mail) => mail.headers["x-relais-message"] ?? "");
}

/** Received counts sampled over time, to tell the survivors' rate from the redelivery tail. */
interface Sample {
  at: number;
  received: number;
}

interface Recovery {
  /** When every job's record was done, ms after the kill. */
  allDoneMs: number;
  /** When the last of the killed replica's claims was done, ms after the kill. */
  victimDoneMs: number;
  /** When the first of them was done, ms after the kill. */
  victimFirstDoneMs: number;
  samples: Sample[];
}

/** Polls the records of jobs not yet done until all are, noting when the victim's claims were. */
async function awaitAllDone(setup: Setup, killedAt: number, victimClaims: ReadonlySet<string>): Promise<Recovery> {
  const deadline = killedAt + phaseBudgetMs(JOBS * (1 - KILL_AT)) + RECOVERY_BUDGET_MS;
  let open = [...setup.ids];
  let victimOpen = victimClaims.size;
  const result: Recovery = { allDoneMs: -1, victimDoneMs: -1, victimFirstDoneMs: -1, samples: [] };
  while (open.length > 0) {
    const now = performance.now();
    result.samples.push({ at: now - killedAt, received: setup.sink.received.length });
    assert.ok(now < deadline, `${open.length} jobs still not done ${seconds(now - killedAt)} s after the kill`);
    const current = await records(setup.redis, setup.namespace, open);
    open = open.filter((id) => !(current.get(id) ?? "").startsWith("done:"));
    const stillVictim = open.filter((id) => victimClaims.has(id)).length;
    if (stillVictim < victimClaims.size && result.victimFirstDoneMs < 0) result.victimFirstDoneMs = now - killedAt;
    if (stillVictim === 0 && victimOpen > 0) result.victimDoneMs = now - killedAt;
    victimOpen = stillVictim;
    if (open.length > 0) await sleep(250);
  }
  result.allDoneMs = performance.now() - killedAt;
  if (victimClaims.size === 0) result.victimDoneMs = result.victimFirstDoneMs = 0;
  return result;
}

/** Survivors' send rate: sink receipts from the kill to the last growth before any redelivery. */
function survivorRate(samples: readonly Sample[], receivedAtKill: number): number {
  let last: Sample | undefined;
  let previous = receivedAtKill;
  for (const sample of samples) {
    if (sample.at > 55_000) break;
    if (sample.received > previous) last = sample;
    previous = sample.received;
  }
  return last === undefined ? 0 : ((last.received - receivedAtKill) / last.at) * 1000;
}

/** Waits until the consumer has nothing pending and nothing unacked: every job was settled. */
async function awaitConsumerDrained(setup: Setup): Promise<void> {
  const name = ConsumerNames.deliver(setup.namespace, SENDER);
  let last = "";
  const reason = await waitUntil(
    async () => {
      const info = await setup.jsm.consumers.info(Streams.sends, name);
      last = `num_pending ${info.num_pending}, num_ack_pending ${info.num_ack_pending}`;
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { timeoutMs: RECOVERY_BUDGET_MS, intervalMs: 250 },
  );
  assert.equal(reason, "", `the consumer kept unsettled jobs: ${last}`);
}

describe("deliver pool under a replica crash", () => {
  it(
    `sends each of ${JOBS} messages once when one of ${REPLICAS} replicas is killed with SIGKILL midway`,
    { timeout: 2 * phaseBudgetMs(JOBS) + 2 * RECOVERY_BUDGET_MS },
    async (t) => {
      const { setupMs, ...setup } = await setUp(t);
      const { sink, namespace } = setup;
      t.diagnostic(`${JOBS} profiles created and jobs enqueued in ${seconds(setupMs)} s`);

      const started = performance.now();
      const replicas = await Promise.all(
        Array.from({ length: REPLICAS }, (_, i) => startReplica(t, namespace, `replica-${i}`)),
      );
      await Promise.all(replicas.map(awaitReady));
      const [victim, ...survivors] = replicas;
      assert.ok(victim !== undefined);

      // Kill one replica once KILL_AT of the jobs reached the sink, right after reading its metrics.
      const killAt = Math.round(JOBS * KILL_AT);
      let firstReceivedAt: number | undefined;
      const progress = await waitUntil(
        async () => {
          if (sink.received.length > 0) firstReceivedAt ??= performance.now();
          return sink.received.length >= killAt || replicas.some((replica) => replica.child.exitCode !== null);
        },
        { timeoutMs: phaseBudgetMs(killAt), intervalMs: 20 },
      );
      for (const replica of replicas)
        assert.equal(replica.child.exitCode, null, `${replica.name} exited early:\n${replica.output()}`);
      assert.equal(progress, "", `only ${sink.received.length} of ${killAt} messages before the kill`);
      const victimBefore = await scrape(victim);
      victim.child.kill("SIGKILL");
      const killedAt = performance.now();
      const receivedAtKill = sink.received.length;
      assert.equal(await victim.exited, "by SIGKILL");

      // The victim's claims ("pending:<host>-<pid>-…") are what it held; none can be redelivered
      // for ack_wait (60 s), so whatever of them the sink has a second later, the victim sent.
      const owner = `pending:${hostname()}-${victim.pid}-`;
      const atKill = await records(setup.redis, namespace, setup.ids);
      const victimClaims = new Set([...atKill].filter(([, value]) => value?.startsWith(owner)).map(([id]) => id));
      await sleep(1000);
      const receivedSoon = new Set(receivedIds(sink));
      const victimSent = [...victimClaims].filter((id) => receivedSoon.has(id)).length;
      t.diagnostic(
        `killed ${victim.name} (pid ${victim.pid}) at ${seconds(killedAt - started)} s with ${receivedAtKill} messages ` +
          `received (${((receivedAtKill / (killedAt - (firstReceivedAt ?? started))) * 1000).toFixed(0)}/s with ` +
          `${REPLICAS} replicas from the first one); ` +
          `its in-flight gauge read ${victimBefore.inflight}, it held ${victimClaims.size} claims, ` +
          `${victimSent} of them already at the sink`,
      );

      const recovery = await awaitAllDone(setup, killedAt, victimClaims);
      await awaitConsumerDrained(setup);
      const totalMs = performance.now() - started;

      const final = await records(setup.redis, namespace, setup.ids);
      const outcomes = new Map<string, number>();
      for (const value of final.values()) outcomes.set(value ?? "(none)", (outcomes.get(value ?? "(none)") ?? 0) + 1);
      const ids = receivedIds(sink);
      const distinct = new Set(ids);
      const counts = new Map<string, number>();
      for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
      const duplicated = [...counts].filter(([, count]) => count > 1).map(([id]) => id);
      const duplicates = ids.length - distinct.size;
      const after = await Promise.all(survivors.map(scrape));
      const survivorsSent = after.reduce((sum, s) => sum + s.sent, 0);
      const metricsSent = survivorsSent + victimBefore.sent;

      t.diagnostic(
        `all ${JOBS} jobs done ${seconds(recovery.allDoneMs)} s after the kill; total ${seconds(totalMs)} s ` +
          `from the replicas' start, ${((JOBS / totalMs) * 1000).toFixed(0)} sends/s overall`,
      );
      t.diagnostic(
        `survivors sent ${survivorRate(recovery.samples, receivedAtKill).toFixed(0)}/s until the redelivery wait; ` +
          `the victim's claims were done from ${seconds(recovery.victimFirstDoneMs)} s to ` +
          `${seconds(recovery.victimDoneMs)} s after the kill ` +
          `(ack_wait is 60 s; one redelivered before the victim's 60 s claim lapsed waits 30 s more as "busy")`,
      );
      t.diagnostic(
        `records: ${JSON.stringify(Object.fromEntries(outcomes))}; sink: ${ids.length} messages, ` +
          `${distinct.size} distinct, duplicates ${duplicates} (goal 0, at most ${CONCURRENCY})`,
      );
      t.diagnostic(
        `relais_deliver_messages_total{outcome="sent"}: victim ${victimBefore.sent} (last scrape) + survivors ` +
          `${after.map((s) => s.sent).join(" + ")} = ${metricsSent} of ${JOBS}; survivors counted ` +
          `${after.reduce((sum, s) => sum + s.duplicate, 0)} "duplicate" and ${after.reduce((sum, s) => sum + s.retried, 0)} "retried"`,
      );

      assert.deepEqual([...outcomes.keys()], ["done:sent"], "every job's record is done:sent");
      assert.equal(distinct.size, JOBS, "every job reached the sink");
      assert.ok(
        ids.every((id) => final.has(id)),
        "the sink received only this test's jobs",
      );
      assert.ok(duplicates <= CONCURRENCY, `${duplicates} duplicates exceed the victim's batch of ${CONCURRENCY}`);
      assert.deepEqual(
        duplicated.filter((id) => !victimClaims.has(id)),
        [],
        "only sends the killed replica had claimed are duplicated",
      );
      assert.ok(metricsSent <= JOBS && metricsSent >= JOBS - CONCURRENCY, `sent counters sum to ${metricsSent}`);

      // The survivors drain and exit cleanly.
      for (const survivor of survivors) survivor.child.kill("SIGTERM");
      for (const survivor of survivors) {
        const how = await within(survivor.exited, 20_000);
        assert.equal(how, "with code 0", `${survivor.name} exited ${how}:\n${survivor.output()}`);
      }
    },
  );
});
