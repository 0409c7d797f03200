// Campaign runs against real NATS JetStream and Redis, with a clock the test moves: audience rules,
// de-duplication, domain filters, schedules (at, recurring across DST, missed runs), suspend,
// delete, and reports.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { useStack, waitUntil } from "#harness";
import { readCampaignStatusSummary } from "#runtime";
import type { CampaignFixture } from "../fixtures/campaigns.ts";
import { campaignFixture } from "../fixtures/campaigns.ts";

const stack = useStack(["nats", "redis"]);

const email = { subject: "Hello {{ profile.attributes.firstName }}", html: "<p>Black Friday</p>" };
const campaign = (audience: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  senderRef: { name: "mail" },
  message: { email },
  audience,
  ...extra,
});

async function profileIdsQueued(fixture: CampaignFixture): Promise<string[]> {
  return (await fixture.queued()).map((job) => job.profileId).sort();
}

describe("campaign audience", () => {
  it("targets the segment once and skips opt-outs, suppressed addresses and profiles without one", async (t) => {
    const f = await campaignFixture(t, stack);
    await f.profile("fr-1", { email: "a@shop.example", attributes: { country: "FR", points: 10 } });
    await f.profile("fr-2", { email: "b@shop.example", attributes: { country: "FR", points: 3 } });
    await f.profile("de-1", { email: "c@shop.example", attributes: { country: "DE", points: 10 } });
    await f.profile("fr-optout", {
      email: "d@shop.example",
      attributes: { country: "FR", points: 10 },
      emailSubscription: { status: "unsubscribed", source: "link" },
    });
    await f.profile("fr-noemail", { attributes: { country: "FR", points: 10 } });
    await f.profile("fr-bounced", { email: "e@shop.example", attributes: { country: "FR", points: 10 } });
    await f.redis.hset(
      `relais:{${f.namespace}}:suppressed`,
      "e@shop.example",
      JSON.stringify({ reason: "hard_bounce" }),
    );

    await f.publish(
      "black-friday",
      campaign({ segment: 'profile.attributes.country == "FR" && profile.attributes.points > 5' }),
    );
    await f.tickAndSettle();

    assert.deepEqual(await profileIdsQueued(f), ["fr-1"]);
    const [run, ...older] = await f.runs("black-friday");
    assert.equal(older.length, 0);
    assert.ok(run);
    assert.equal(run.status, "completed");
    assert.equal(run.targeted, 4);
    assert.equal(run.enqueued, 1);
    assert.deepEqual(run.skipped, { optOut: 1, suppressed: 1, noAddress: 1 });
    assert.equal(run.targeted, run.enqueued + run.skippedTotal);
    const job = (await f.queued())[0];
    assert.equal(job?.source.runId, run.id);
    assert.equal(job.transactional, false);

    // A campaign without a schedule runs once: later ticks start nothing.
    await f.tickAndSettle();
    assert.equal((await f.runs("black-friday")).length, 1);
  });

  it("subscription all reaches opted-out profiles but never a suppressed address", async (t) => {
    const f = await campaignFixture(t, stack);
    await f.profile("subscribed", { email: "a@shop.example" });
    await f.profile("optout", {
      email: "b@shop.example",
      emailSubscription: { status: "unsubscribed", source: "link" },
    });
    await f.profile("suppressed", {
      email: "c@shop.example",
      emailSubscription: { status: "unsubscribed", source: "x" },
    });
    await f.redis.hset(`relais:{${f.namespace}}:suppressed`, "c@shop.example", JSON.stringify({ reason: "complaint" }));

    await f.publish("terms", campaign({ subscription: "all" }));
    await f.tickAndSettle();

    assert.deepEqual(await profileIdsQueued(f), ["optout", "subscribed"]);
    assert.ok((await f.queued()).every((job) => job.transactional));
    const [run] = await f.runs("terms");
    assert.deepEqual(run?.skipped, { suppressed: 1 });
  });

  it("emailDomains include keeps only those domains and exclude drops them", async (t) => {
    const f = await campaignFixture(t, stack);
    await f.profile("gmail", { email: "a@gmail.com" });
    await f.profile("yahoo", { email: "b@yahoo.fr" });
    await f.profile("shop", { email: "c@shop.example" });

    await f.publish("gmail-only", campaign({ emailDomains: { include: ["gmail.com"] } }));
    await f.publish("no-gmail", campaign({ emailDomains: { exclude: ["gmail.com"] } }));
    await f.tickAndSettle();

    const byCampaign = new Map<string, string[]>();
    for (const job of await f.queued())
      byCampaign.set(job.source.name, [...(byCampaign.get(job.source.name) ?? []), job.profileId].sort());
    assert.deepEqual(byCampaign.get("gmail-only"), ["gmail"]);
    assert.deepEqual(byCampaign.get("no-gmail"), ["shop", "yahoo"]);
    assert.deepEqual((await f.runs("gmail-only"))[0]?.skipped, { domainExcluded: 2 });
    assert.deepEqual((await f.runs("no-gmail"))[0]?.skipped, { domainExcluded: 1 });
  });

  it("dedupeByEmail sends once per address, to the profile with the most recent activity", async (t) => {
    // Chunks of 3 profiles: the profiles sharing an address fall in different chunks.
    const f = await campaignFixture(t, stack, { chunkSize: 2 });
    await f.profile("old", { email: "shared@shop.example" }, "2026-11-01T00:00:00Z");
    await f.profile("newest", { email: "shared@shop.example" }, "2026-11-20T00:00:00Z");
    await f.profile("middle", { email: "shared@shop.example" }, "2026-11-10T00:00:00Z");
    await f.profile("alone", { email: "alone@shop.example" }, "2026-11-05T00:00:00Z");
    // The newest profile is opted out: the next most recent eligible one wins.
    await f.profile(
      "newest-optout",
      { email: "other@shop.example", emailSubscription: { status: "unsubscribed", source: "x" } },
      "2026-11-25T00:00:00Z",
    );
    await f.profile("older-optin", { email: "other@shop.example" }, "2026-11-02T00:00:00Z");

    await f.publish("dedupe", campaign());
    await f.publish("no-dedupe", campaign({ dedupeByEmail: false }));
    await f.tickAndSettle();

    const jobs = await f.queued();
    const of = (name: string) =>
      jobs
        .filter((job) => job.source.name === name)
        .map((job) => job.profileId)
        .sort();
    assert.deepEqual(of("dedupe"), ["alone", "newest", "older-optin"]);
    assert.deepEqual(of("no-dedupe"), ["alone", "middle", "newest", "old", "older-optin"]);
    const [run] = await f.runs("dedupe");
    assert.deepEqual(run?.skipped, { duplicateEmail: 2, optOut: 1 });
    assert.equal(run.targeted, run.enqueued + run.skippedTotal);
  });

  it("a Web Push campaign sends to each of a profile's subscriptions", async (t) => {
    const f = await campaignFixture(t, stack);
    const subscription = (n: number) => ({
      endpoint: `https://push.example/sub/${n}`,
      keys: {
        p256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
        auth: "tBHItJI5svbpez7KI4CCXg",
      },
    });
    await f.profile("two", { webPush: { add: [subscription(1), subscription(2)] } });
    await f.profile("one", { webPush: { add: [subscription(3)] } });
    await f.profile("none", { email: "x@shop.example" });

    await f.publish("push", {
      senderRef: { name: "push" },
      message: { webpush: { title: "Hi", body: "Sale" } },
      audience: {},
    });
    await f.tickAndSettle();

    const jobs = await f.queued();
    assert.deepEqual(
      jobs.map((job) => job.endpoint).sort(),
      [1, 2, 3].map((n) => `https://push.example/sub/${n}`),
    );
    assert.deepEqual(jobs.filter((job) => job.profileId === "two").length, 2);
    const [run] = await f.runs("push");
    assert.equal(run?.enqueued, 3);
    assert.deepEqual(run.skipped, { noSubscription: 1 });
    assert.equal(run.targeted, run.enqueued + run.skippedTotal);
  });
});

describe("campaign schedules", () => {
  it("an at campaign runs once, at its time", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-27T08:00:00Z" });
    await f.profile("p1", { email: "a@shop.example" });
    await f.publish("at", campaign({}, { schedule: { at: "2026-11-27T09:00:00Z" } }));

    await f.tickAndSettle();
    assert.equal((await f.runs("at")).length, 0);

    f.clock.set("2026-11-27T09:00:00Z");
    await f.tickAndSettle();
    f.clock.advance(3_600_000);
    await f.tickAndSettle();
    const runs = await f.runs("at");
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.scheduledFor, "2026-11-27T09:00:00.000Z");
    assert.equal(await f.queuedCount(), 1);
  });

  it("a recurring campaign follows its time zone across a DST change", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-03-27T12:00:00Z" });
    await f.profile("p1", { email: "a@shop.example" });
    // 09:00 in Paris: 08:00 UTC before the clocks go forward on 29 March 2026, 07:00 UTC after.
    await f.publish(
      "daily",
      campaign({}, { schedule: { recurring: { cron: "0 9 * * *", timeZone: "Europe/Paris" } } }),
    );
    await f.tickAndSettle();
    const summary = await readCampaignStatusSummary(f.redis, { namespace: f.namespace, campaign: "daily" });
    assert.deepEqual(summary, { nextRunAt: "2026-03-28T08:00:00.000Z" });

    for (const [at, runs] of [
      ["2026-03-28T07:59:00Z", 0],
      ["2026-03-28T08:00:00Z", 1],
      ["2026-03-29T06:59:00Z", 1],
      ["2026-03-29T07:00:00Z", 2],
      ["2026-03-30T07:00:00Z", 3],
    ] as const) {
      f.clock.set(at);
      await f.tickAndSettle();
      assert.equal((await f.runs("daily")).length, runs, `runs at ${at}`);
    }
    const slots = (await f.runs("daily")).map((run) => run.scheduledFor).sort();
    assert.deepEqual(slots, ["2026-03-28T08:00:00.000Z", "2026-03-29T07:00:00.000Z", "2026-03-30T07:00:00.000Z"]);
    await f.tickAndSettle();
    const after = await readCampaignStatusSummary(f.redis, { namespace: f.namespace, campaign: "daily" });
    assert.equal(after.nextRunAt, "2026-03-31T07:00:00.000Z");
  });

  it("slots missed while engage was down run once on recovery, not once each", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-27T10:30:00Z" });
    await f.profile("p1", { email: "a@shop.example" });
    await f.publish(
      "hourly",
      campaign({}, { schedule: { recurring: { cron: "0 * * * *", endAt: "2026-11-28T00:00:00Z" } } }),
    );
    await f.tickAndSettle();
    assert.equal((await f.runs("hourly")).length, 0);

    // Down from 10:30 to 15:20: the 11:00 to 15:00 slots are missed.
    f.clock.set("2026-11-27T15:20:00Z");
    await f.tickAndSettle();
    await f.tickAndSettle();
    const runs = await f.runs("hourly");
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.scheduledFor, "2026-11-27T15:00:00.000Z");

    // After endAt nothing runs, not even the slots missed before it... only the last one, once.
    f.clock.set("2026-11-28T05:00:00Z");
    await f.tickAndSettle();
    f.clock.advance(3_600_000);
    await f.tickAndSettle();
    const after = (await f.runs("hourly")).map((run) => run.scheduledFor);
    assert.deepEqual(after, ["2026-11-28T00:00:00.000Z", "2026-11-27T15:00:00.000Z"]);
  });
});

describe("campaign planning", () => {
  it("throttle.perSecond paces the enqueue", async (t) => {
    const f = await campaignFixture(t, stack, { chunkSize: 100 });
    for (const n of [1, 2, 3, 4, 5, 6, 7]) await f.profile(`p${n}`, { email: `p${n}@shop.example` });
    await f.publish("slow", campaign({}, { throttle: { perSecond: 2 } }));
    f.clock.auto = true;
    const start = f.clock.now();
    await f.tickAndSettle();
    assert.equal((await f.runs("slow"))[0]?.enqueued, 7);
    // 7 messages at 2 per second: the last goes out 3 s after the first.
    assert.equal(f.clock.now() - start, 3000);
  });

  it("with several replicas, exactly one plans a run", async (t) => {
    const f = await campaignFixture(t, stack, { chunkSize: 2 });
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9]) await f.profile(`p${n}`, { email: `p${n}@shop.example` });
    await f.publish("shared", campaign());
    const replicas = [f.runner, f.makeRunner("replica-b"), f.makeRunner("replica-c")];
    for (const replica of replicas.slice(1)) {
      const entry = await f.kv.get(`${f.namespace}.Campaign.shared`);
      assert.ok(entry);
      replica.apply(Object.assign(entry, { isUpdate: false }));
    }
    await Promise.all(replicas.map((replica) => replica.tick()));
    await Promise.all(replicas.map((replica) => replica.idle()));
    await Promise.all(replicas.map((replica) => replica.tick()));
    await Promise.all(replicas.map((replica) => replica.idle()));

    const runs = await f.runs("shared");
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.enqueued, 9);
    assert.equal(await f.queuedCount(), 9);
  });
});

describe("campaign suspend and delete", () => {
  const throttled = campaign({}, { throttle: { perSecond: 2 } });

  async function fiveProfiles(f: CampaignFixture): Promise<void> {
    for (const n of [1, 2, 3, 4, 5]) await f.profile(`p${n}`, { email: `p${n}@shop.example` });
  }

  async function waitForQueued(f: CampaignFixture, count: number): Promise<void> {
    const reason = await waitUntil(async () => (await f.queuedCount()) >= count && f.clock.waiting > 0, {
      timeoutMs: 5000,
      intervalMs: 10,
    });
    assert.equal(reason, "", `${count} jobs queued and the planner pacing`);
  }

  it("suspending stops enqueuing and drops what is queued; resuming continues with the rest", async (t) => {
    const f = await campaignFixture(t, stack);
    await fiveProfiles(f);
    await f.publish("paced", throttled);
    await f.runner.tick();
    // 2 per second: one job is out, the next waits for the clock.
    await waitForQueued(f, 1);

    await f.publish("paced", { ...throttled, suspend: true }, 2);
    f.clock.advance(1000);
    await f.runner.idle();

    let [run] = await f.runs("paced");
    assert.equal(run?.status, "suspended");
    assert.equal(run.enqueued, 2, "the chunk in hand is finished");
    assert.equal(run.outcomes.dropped, 2, "queued jobs are dropped");
    assert.equal(run.inFlight, 0);
    assert.equal(await f.queuedCount(), 0);

    // Suspended: ticks start nothing.
    await f.tickAndSettle();
    assert.equal(await f.queuedCount(), 0);

    f.clock.auto = true;
    await f.publish("paced", throttled, 3);
    await f.tickAndSettle();
    [run] = await f.runs("paced");
    assert.equal(run?.status, "completed");
    assert.equal((await f.runs("paced")).length, 1, "resuming continues the run, it does not start another");
    assert.equal(run.enqueued, 5);
    // Equal activity: the snapshot walks p5, p4 first (planned, then dropped), then the rest.
    assert.deepEqual(await profileIdsQueued(f), ["p1", "p2", "p3"]);
    assert.equal(await f.queuedCount(), 3, "the three profiles not planned before the suspend");
  });

  it("deleting a running campaign stops it, purges its queued jobs and forgets it", async (t) => {
    const f = await campaignFixture(t, stack);
    await fiveProfiles(f);
    await f.publish("doomed", throttled);
    await f.publish("other", campaign());
    await f.runner.tick();
    await waitForQueued(f, 1);

    await f.remove("doomed");
    await f.runner.idle();

    const jobs = await f.queued();
    assert.ok(
      jobs.length > 0 && jobs.every((job) => job.source.name === "other"),
      "only the other campaign's jobs remain",
    );
    const [run] = await f.runs("doomed");
    assert.equal(run?.status, "deleted");
    assert.ok(run.outcomes.dropped >= 1);
    assert.equal(await f.redis.exists(`relais:{${f.namespace}}:cmp:doomed:state`), 0);

    // Created again with the same name, it is a new campaign and runs again.
    f.clock.auto = true;
    f.clock.advance(60_000);
    await f.publish("doomed", throttled, 1);
    await f.tickAndSettle();
    const runs = await f.runs("doomed");
    assert.equal(runs.length, 2);
    assert.equal(runs[0]?.status, "completed");
    assert.equal(runs[0].enqueued, 5);
  });
});

describe("campaign reports", () => {
  it("counts an outcome once when the same feedback message is counted again (a lost reply, a redelivery)", async (t) => {
    const f = await campaignFixture(t, stack);
    const run = { namespace: f.namespace, campaign: "promo", runId: "r1" };
    await f.store.startRun({ ...run, sender: "mail", slot: 0, nowMs: 0, remember: {}, keep: 5 });
    await f.store.attribute(run, "sent", { once: "41" });
    await f.store.attribute(run, "sent", { once: "41" });
    await f.store.attribute(run, ["undelivered", "policy:holdout"], { once: "42" });
    await f.store.attribute(run, ["undelivered", "policy:holdout"], { once: "42" });
    const [report] = await f.runs("promo");
    assert.equal(report?.outcomes.sent, 1);
    assert.deepEqual([report.outcomes.undelivered, report.policy.holdout], [1, 1], "an outcome and its reason, once");
  });
});
