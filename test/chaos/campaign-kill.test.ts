// The campaign planner killed with SIGKILL three times during one run: each eligible profile is
// enqueued exactly once. Profiles are seeded straight into Redis (RELAIS_CHAOS_CAMPAIGN_PROFILES,
// 20,000 by default, 200,000 under npm run test:chaos); `relais engage` processes plan the run,
// each killed at a quarter, a half and three quarters of the way, the fourth finishes it. No deliver
// pool runs: every job stays on RELAIS_SENDS, where the test counts them per profile.
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { it } from "node:test";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { campaignSpecSchema } from "#crds";
import { defer, spawnRelais, uniqueName, useStack, waitUntil, within } from "#harness";
import type { RelaisProcess } from "#harness";
import {
  ConfigKeys,
  connectNats,
  connectRedis,
  ensureStreams,
  openConfigBucket,
  readCampaignRuns,
  Streams,
} from "#runtime";
import type { SendJob } from "#runtime";
import { seedProfiles } from "../fixtures/campaigns.ts";

const stack = useStack(["nats", "redis"]);

const PROFILES = Number(process.env.RELAIS_CHAOS_CAMPAIGN_PROFILES ?? 20_000);
assert.ok(Number.isInteger(PROFILES) && PROFILES >= 1000, `RELAIS_CHAOS_CAMPAIGN_PROFILES must be >= 1000`);
const CAMPAIGN = "flash-sale";
const LEASE_MS = 1000;

async function startEngage(t: TestContext, name: string): Promise<RelaisProcess> {
  return spawnRelais(t, {
    command: "engage",
    name,
    env: {
      RELAIS_NATS_URL: stack.natsUrl,
      RELAIS_REDIS_URL: stack.redisUrl,
      RELAIS_CAMPAIGN_LEASE_MS: String(LEASE_MS),
      RELAIS_CAMPAIGN_TICK_MS: "100",
      RELAIS_CAMPAIGN_CHUNK_SIZE: "500",
      RELAIS_LOG_LEVEL: "warn",
    },
  });
}

it(`a planner killed three times during a ${PROFILES}-profile run enqueues each eligible profile once`, async (t) => {
  const namespace = uniqueName("chaos");
  const nc = await connectNats(stack.natsUrl, "campaign-chaos");
  defer(t, () => nc.drain());
  const redis = connectRedis(stack.redisUrl, "campaign-chaos");
  defer(t, () => redis.quit());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);
  const kv = await openConfigBucket(nc);
  const subjects = `relais.sends.${namespace}.>`;
  defer(t, () => jsm.streams.purge(Streams.sends, { filter: subjects }));

  await seedProfiles(redis, namespace, { count: PROFILES });
  // points = i % 100: the segment keeps 80 of every 100 profiles; addresses are unique.
  const eligible = new Set<string>();
  for (let i = 0; i < PROFILES; i++) if (i % 100 >= 20) eligible.add(`u${i}`);
  const spec = campaignSpecSchema.parse({
    senderRef: { name: "mail" },
    message: { email: { subject: "Flash sale", html: "<p>Now</p>" } },
    audience: { segment: "profile.attributes.points >= 20" },
  });
  const key = ConfigKeys.of(namespace, "Campaign", CAMPAIGN);
  await kv.put(key, JSON.stringify({ generation: 1, spec }));
  defer(t, () => kv.delete(key));

  const enqueued = async () => (await readCampaignRuns(redis, { namespace, campaign: CAMPAIGN }))[0]?.enqueued ?? 0;
  for (const [index, fraction] of [0.25, 0.5, 0.75].entries()) {
    const engage = await startEngage(t, `engage-${index}`);
    const reached = await waitUntil(
      async () => {
        if (engage.child.exitCode !== null) throw new Error(`exited: ${engage.output()}`);
        return (await enqueued()) >= fraction * eligible.size;
      },
      { timeoutMs: 120_000, intervalMs: 20 },
    );
    assert.equal(reached, "", `engage-${index} reached ${fraction} of the run: ${reached}`);
    engage.child.kill("SIGKILL");
    assert.equal(await within(engage.exited, 10_000), "by SIGKILL");
  }
  const last = await startEngage(t, "engage-last");
  const completed = await waitUntil(
    async () => (await readCampaignRuns(redis, { namespace, campaign: CAMPAIGN }))[0]?.status === "completed",
    { timeoutMs: 180_000, intervalMs: 50 },
  );
  assert.equal(completed, "", `the run completed: ${completed}\n${last.output()}`);
  last.child.kill("SIGTERM");
  await within(last.exited, 10_000);

  const [run, ...others] = await readCampaignRuns(redis, { namespace, campaign: CAMPAIGN });
  assert.equal(others.length, 0, "one run, resumed, not restarted");
  assert.equal(run?.enqueued, eligible.size);
  assert.equal(run.targeted, eligible.size);

  // Every queued job, counted per profile: each eligible profile exactly once, nothing else.
  const consumerName = uniqueName("count");
  await jsm.consumers.add(Streams.sends, {
    name: consumerName,
    filter_subject: subjects,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: -1,
  });
  defer(t, () => jsm.consumers.delete(Streams.sends, consumerName));
  const consumer = await js.consumers.get(Streams.sends, consumerName);
  const seen = new Map<string, number>();
  let total = 0;
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 5000, expires: 2000 });
    let got = 0;
    for await (const message of batch) {
      got++;
      total++;
      const job = message.json<SendJob>();
      seen.set(job.profileId, (seen.get(job.profileId) ?? 0) + 1);
    }
    if (got === 0) break;
  }
  const twice = [...seen].filter(([, count]) => count > 1).map(([id]) => id);
  const strangers = [...seen.keys()].filter((id) => !eligible.has(id));
  const missing = [...eligible].filter((id) => !seen.has(id));
  assert.deepEqual(
    { twice: twice.slice(0, 10), strangers: strangers.slice(0, 10), missing: missing.slice(0, 10) },
    {
      twice: [],
      strangers: [],
      missing: [],
    },
  );
  assert.equal(total, eligible.size);
});
