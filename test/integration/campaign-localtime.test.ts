// Campaigns in each recipient's local time (schedule.localTime) against real NATS JetStream and
// Redis, with a clock the test moves: one run whose recipients are enqueued at 09:00 in their own
// zone and not before, across replicas, suspend, resume and delete.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { useStack } from "#harness";
import { readCampaignStatusSummary } from "#runtime";
import type { CampaignFixture } from "../fixtures/campaigns.ts";
import { campaignFixture } from "../fixtures/campaigns.ts";

const stack = useStack(["nats", "redis"]);

const morning = (schedule: Record<string, unknown> = {}) => ({
  senderRef: { name: "mail" },
  message: { email: { subject: "Good morning", html: "<p>Today only</p>" } },
  audience: { segment: 'profile.attributes.plan == "pro"' },
  schedule: { at: "2026-11-27T00:00:00Z", localTime: "09:00", ...schedule },
});

/** 09:00 on 27 November 2026 in each zone, in UTC. */
const NINE = {
  tokyo: "2026-11-27T00:00:00Z",
  paris: "2026-11-27T08:00:00Z",
  utc: "2026-11-27T09:00:00Z",
  newYork: "2026-11-27T14:00:00Z",
};

/** Three zones, a profile without one and one with a zone Intl does not know (both: the fallback), one outside the segment. */
async function worldwide(f: CampaignFixture): Promise<void> {
  const pro = { plan: "pro" };
  await f.profile("tokyo", { email: "tokyo@shop.example", timezone: "Asia/Tokyo", attributes: pro });
  await f.profile("paris", { email: "paris@shop.example", timezone: "Europe/Paris", attributes: pro });
  await f.profile("new-york", { email: "ny@shop.example", timezone: "America/New_York", attributes: pro });
  await f.profile("nowhere", { email: "nowhere@shop.example", attributes: pro });
  await f.profile("mars", { email: "mars@shop.example", timezone: "Mars/Olympus", attributes: pro });
  await f.profile("free", { email: "free@shop.example", timezone: "Asia/Tokyo", attributes: { plan: "free" } });
}

async function queuedIds(f: CampaignFixture): Promise<string[]> {
  return (await f.queued()).map((job) => job.profileId).sort();
}

/** Moves the clock to `at`, ticks, and returns who is queued then. */
async function at(f: CampaignFixture, iso: string): Promise<string[]> {
  f.clock.set(iso);
  await f.tickAndSettle();
  return queuedIds(f);
}

describe("campaign in the recipient's local time", () => {
  it("enqueues each recipient at 09:00 in its own zone and not before, all in one run", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-26T12:00:00Z" });
    await worldwide(f);
    await f.publish("morning", morning());

    // The run for 27 November starts when 09:00 arrives first anywhere: 19:00 UTC the day before.
    await f.tickAndSettle();
    assert.deepEqual(await f.runs("morning"), []);
    const before = await readCampaignStatusSummary(f.redis, { namespace: f.namespace, campaign: "morning" });
    assert.equal(before.nextRunAt, "2026-11-26T19:00:00.000Z");

    assert.deepEqual(await at(f, "2026-11-26T19:00:00Z"), []);
    const [started] = await f.runs("morning");
    assert.equal(started?.status, "running");
    assert.equal(started.scheduledFor, "2026-11-26T19:00:00.000Z");

    const steps: [string, string[]][] = [
      ["2026-11-26T23:59:59Z", []],
      [NINE.tokyo, ["tokyo"]],
      ["2026-11-27T07:59:59Z", ["tokyo"]],
      [NINE.paris, ["paris", "tokyo"]],
      ["2026-11-27T08:59:59Z", ["paris", "tokyo"]],
      // No timezone, or one nobody knows: the fallback zone, UTC by default with at.
      [NINE.utc, ["mars", "nowhere", "paris", "tokyo"]],
      ["2026-11-27T13:59:59Z", ["mars", "nowhere", "paris", "tokyo"]],
      [NINE.newYork, ["mars", "new-york", "nowhere", "paris", "tokyo"]],
    ];
    for (const [time, expected] of steps) {
      assert.deepEqual(await at(f, time), expected, `queued at ${time}`);
      if (time !== NINE.newYork) assert.equal((await f.runs("morning"))[0]?.status, "running", `running at ${time}`);
    }

    const jobs = await f.queued();
    const createdAt = Object.fromEntries(jobs.map((job) => [job.profileId, job.createdAt]));
    assert.deepEqual(createdAt, {
      tokyo: "2026-11-27T00:00:00.000Z",
      paris: "2026-11-27T08:00:00.000Z",
      nowhere: "2026-11-27T09:00:00.000Z",
      mars: "2026-11-27T09:00:00.000Z",
      "new-york": "2026-11-27T14:00:00.000Z",
    });
    const runs = await f.runs("morning");
    assert.equal(runs.length, 1, "one run for every zone");
    const [run] = runs;
    assert.ok(run);
    assert.ok(jobs.every((job) => job.source.runId === run.id));
    assert.equal(run.status, "completed");
    assert.equal(run.finishedAt, "2026-11-27T14:00:00.000Z");
    assert.equal(run.targeted, 5);
    assert.equal(run.enqueued, 5);
    assert.equal(run.targeted, run.enqueued + run.skippedTotal);
    // The run is over: the due set and the snapshot are gone, later ticks start nothing.
    assert.deepEqual(await f.redis.keys(`relais:{${f.namespace}}:cmp:morning:run:*:*`), []);
    assert.deepEqual(await at(f, "2026-11-28T14:00:00Z"), ["mars", "new-york", "nowhere", "paris", "tokyo"]);
    assert.equal((await f.runs("morning")).length, 1);
  });

  it("sends at once to recipients whose hour passed before the run started, and decides each at its hour", async (t) => {
    // The campaign is created at 10:00 UTC on the day: Tokyo and Paris are past 09:00, New York is not.
    const f = await campaignFixture(t, stack, { start: "2026-11-27T10:00:00Z" });
    await worldwide(f);
    await f.publish("late", morning({ fallbackTimeZone: "America/Los_Angeles" }));
    assert.deepEqual(await at(f, "2026-11-27T10:00:00Z"), ["paris", "tokyo"]);

    // New York unsubscribes before its 09:00: decided at its hour, it is skipped (optOut), not sent.
    await f.profile("new-york", { emailSubscription: { status: "unsubscribed", source: "link" } });
    assert.deepEqual(await at(f, NINE.newYork), ["paris", "tokyo"]);
    // The fallback zone here is Los Angeles: 09:00 there is 17:00 UTC.
    assert.deepEqual(await at(f, "2026-11-27T16:59:59Z"), ["paris", "tokyo"]);
    assert.deepEqual(await at(f, "2026-11-27T17:00:00Z"), ["mars", "nowhere", "paris", "tokyo"]);

    const [run] = await f.runs("late");
    assert.equal(run?.status, "completed");
    assert.equal(run.enqueued, 4);
    assert.deepEqual(run.skipped, { optOut: 1 });
    assert.equal(run.targeted, run.enqueued + run.skippedTotal);
  });

  it("another replica carries on a run whose planner is gone", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-26T19:00:00Z" });
    await worldwide(f);
    await f.publish("morning", morning());
    assert.deepEqual(await at(f, NINE.tokyo), ["tokyo"]);

    // This replica stops looking; another one, with its own lease identity, picks the run up.
    const other = f.makeRunner("replica-b");
    const entry = await f.kv.get(`${f.namespace}.Campaign.morning`);
    assert.ok(entry);
    other.apply(Object.assign(entry, { isUpdate: false }));
    f.clock.set(NINE.paris);
    await other.tick();
    await other.idle();
    assert.deepEqual(await queuedIds(f), ["paris", "tokyo"]);
    f.clock.set(NINE.newYork);
    await other.tick();
    await other.idle();
    assert.deepEqual(await queuedIds(f), ["mars", "new-york", "nowhere", "paris", "tokyo"]);
    const runs = await f.runs("morning");
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.status, "completed");
    assert.equal(runs[0].enqueued, 5);
  });

  it("suspending drops what is queued and holds the rest; resuming sends those whose hour passed at once", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-26T19:00:00Z" });
    await worldwide(f);
    const spec = morning();
    await f.publish("morning", spec);
    assert.deepEqual(await at(f, NINE.tokyo), ["tokyo"]);

    await f.publish("morning", { ...spec, suspend: true }, 2);
    await f.tickAndSettle();
    let [run] = await f.runs("morning");
    assert.equal(run?.status, "suspended");
    assert.equal(run.outcomes.dropped, 1, "Tokyo's queued job is dropped");
    assert.equal(await f.queuedCount(), 0);
    // Suspended through Paris's and the fallback's 09:00: nothing is enqueued.
    assert.deepEqual(await at(f, "2026-11-27T10:00:00Z"), []);

    await f.publish("morning", spec, 3);
    assert.deepEqual(await at(f, "2026-11-27T10:00:00Z"), ["mars", "nowhere", "paris"]);
    assert.equal((await f.runs("morning"))[0]?.status, "running");
    assert.deepEqual(await at(f, NINE.newYork), ["mars", "new-york", "nowhere", "paris"]);
    [run] = await f.runs("morning");
    assert.equal((await f.runs("morning")).length, 1, "resuming continues the run");
    assert.equal(run?.status, "completed");
    assert.equal(run.enqueued, 5, "Tokyo's dropped job counts as enqueued then dropped");
    assert.equal(run.outcomes.dropped, 1);
  });

  it("a daily campaign in local time makes one run per day, each delivering at every zone's 09:00", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-27T20:00:00Z" });
    const pro = { plan: "pro" };
    await f.profile("tokyo", { email: "tokyo@shop.example", timezone: "Asia/Tokyo", attributes: pro });
    await f.profile("new-york", { email: "ny@shop.example", timezone: "America/New_York", attributes: pro });
    // The cron picks the days in Paris; each day's run starts at 19:00 UTC the day before (the
    // run for 28 November is already due when the campaign is created at 20:00).
    await f.publish("daily", morning({ at: undefined, recurring: { cron: "0 9 * * *", timeZone: "Europe/Paris" } }));
    const steps: [string, number, string[]][] = [
      ["2026-11-27T20:00:00Z", 1, []],
      ["2026-11-28T00:00:00Z", 1, ["tokyo"]],
      ["2026-11-28T14:00:00Z", 1, ["new-york", "tokyo"]],
      ["2026-11-28T18:59:59Z", 1, ["new-york", "tokyo"]],
      ["2026-11-28T19:00:00Z", 2, ["new-york", "tokyo"]],
      ["2026-11-29T00:00:00Z", 2, ["new-york", "tokyo", "tokyo"]],
      ["2026-11-29T14:00:00Z", 2, ["new-york", "new-york", "tokyo", "tokyo"]],
    ];
    for (const [time, runs, queued] of steps) {
      assert.deepEqual(await at(f, time), queued, `queued at ${time}`);
      assert.equal((await f.runs("daily")).length, runs, `runs at ${time}`);
      if (time === "2026-11-28T00:00:00Z") {
        // While the run for the 28th waits for New York, the status already shows the next one.
        const summary = await readCampaignStatusSummary(f.redis, { namespace: f.namespace, campaign: "daily" });
        assert.equal(summary.lastRun?.status, "running");
        assert.equal(summary.nextRunAt, "2026-11-28T19:00:00.000Z");
      }
    }
    const runs = await f.runs("daily");
    assert.deepEqual(
      runs.map((run) => [run.scheduledFor, run.status, run.enqueued]),
      [
        ["2026-11-28T19:00:00.000Z", "completed", 2],
        ["2026-11-27T19:00:00.000Z", "completed", 2],
      ],
    );
  });

  it("commits a chunk of due recipients once, and only for the lease holder", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-26T19:00:00Z" });
    await worldwide(f);
    await f.publish("morning", morning());
    await f.tickAndSettle();
    const [run] = await f.runs("morning");
    assert.ok(run);
    const ids = { namespace: f.namespace, campaign: "morning", runId: run.id };

    // A planner that planned Tokyo's chunk (as one killed after publishing would, then its successor).
    f.clock.set(NINE.paris);
    assert.ok(await f.store.acquire(f.namespace, "morning", "planner-a", 5000));
    const due = await f.store.dueChunk({ ...ids, nowMs: f.clock.now(), count: 10 });
    assert.deepEqual(due.map((profile) => profile.id).sort(), ["paris", "tokyo"]);
    const members = due.map((profile) => profile.member);
    const counters = new Map([
      ["targeted", 2],
      ["enqueued", 2],
    ]);
    assert.equal(await f.store.commitDue({ ...ids, owner: "planner-b", members, counters }), false, "not the holder");
    assert.equal(await f.store.commitDue({ ...ids, owner: "planner-a", members, counters }), true);
    assert.equal(
      await f.store.commitDue({ ...ids, owner: "planner-a", members, counters }),
      false,
      "already committed",
    );
    await f.store.release(f.namespace, "morning", "planner-a");

    const [after] = await f.runs("morning");
    assert.equal(after?.enqueued, 2);
    assert.equal(after.targeted, 2);
    assert.deepEqual(await f.store.dueChunk({ ...ids, nowMs: f.clock.now(), count: 10 }), []);
    assert.equal(await f.store.dueLeft(ids), 3);
  });

  it("deleting a waiting run forgets the recipients not yet planned", async (t) => {
    const f = await campaignFixture(t, stack, { start: "2026-11-26T19:00:00Z" });
    await worldwide(f);
    await f.publish("morning", morning());
    assert.deepEqual(await at(f, NINE.paris), ["paris", "tokyo"]);

    await f.remove("morning");
    await f.runner.idle();
    const [run] = await f.runs("morning");
    assert.equal(run?.status, "deleted");
    assert.equal(run.outcomes.dropped, 2);
    assert.equal(await f.queuedCount(), 0);
    assert.deepEqual(await f.redis.keys(`relais:{${f.namespace}}:cmp:morning:run:*:*`), []);
    assert.deepEqual(await at(f, NINE.newYork), []);
  });
});
