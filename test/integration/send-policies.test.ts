// Send policies in a Sender's pool, against real NATS, Redis and SMTP, with the pool's clock moved
// by the test: caps across Automations and Campaigns, quiet hours in each recipient's zone, a
// freeze that holds and releases everything, auto-pause on a burst of bounces, holdout groups.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { defer, startSmtpSink, useStack, waitUntil } from "#harness";
import type { SmtpSink } from "#harness";
import { clearPause, readPauses, readPolicyDecisions } from "#runtime";
import { deliverFixture } from "../fixtures/deliver.ts";
import type { DeliverFixture } from "../fixtures/deliver.ts";

const stack = useStack(["nats", "redis"]);

const message = { email: { subject: "Hello {{ profile.id }}", html: "<p>Hi</p>" } };
/** How soon a held send looks again in these tests (the pool's default is 15 s, or up to an hour). */
const RECHECK_MS = 200;

interface Setup {
  pool: DeliverFixture;
  sink: SmtpSink;
  clock: { now: Date };
}

async function setup(t: TestContext, start = new Date()): Promise<Setup> {
  const sink = await startSmtpSink({});
  defer(t, () => sink.stop());
  const clock = { now: start };
  const pool = await deliverFixture(t, stack, {
    senderSpec: {
      channel: "email",
      email: {
        from: { address: "news@shop.example" },
        transport: { smtp: { host: "127.0.0.1", port: sink.port, tls: "none" } },
      },
      retry: { maxAttempts: 3, initialBackoff: "100ms", maxBackoff: "200ms" },
      pool: { concurrency: 8 },
    },
    overrides: { now: () => clock.now, holdRecheckMs: RECHECK_MS },
  });
  for (const [kind, name] of [
    ["Automation", "welcome"],
    ["Automation", "cart"],
    ["Campaign", "promo"],
  ] as const)
    await pool.publishSource({ kind, name, message, labels: { category: "promotional" } });
  return { pool, sink, clock };
}

const recipients = (sink: SmtpSink): string[] => sink.received.map((mail) => mail.envelope.to[0] ?? "").sort();

async function receivedCount(sink: SmtpSink, count: number, what: string): Promise<void> {
  const reason = await waitUntil(async () => sink.received.length >= count, { timeoutMs: 15_000, intervalMs: 50 });
  assert.equal(reason, "", `${what}: ${sink.received.length} of ${count} received (${recipients(sink).join(", ")})`);
}

/** Waits until the pool has held sends at least `looks` more times: a held send stays unsent meanwhile. */
async function heldLooks(pool: DeliverFixture, looks: number): Promise<void> {
  const held = async () => Number(/outcome="held"\} (\d+)/.exec(await pool.metricsText())?.[1] ?? 0);
  const target = (await held()) + looks;
  const reason = await waitUntil(async () => (await held()) >= target, { timeoutMs: 15_000, intervalMs: 50 });
  assert.equal(reason, "", "sends were not held");
}

/** Sends that ended sent or skipped, from the pool's metrics. */
async function ended(pool: DeliverFixture): Promise<number> {
  const text = await pool.metricsText();
  const count = (outcome: string) => Number(new RegExp(`outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return count("sent") + count("skipped");
}

describe("send policies", () => {
  it("caps a profile across two Automations and a Campaign, and never caps a transactional send", async (t) => {
    const { pool, sink } = await setup(t);
    await pool.publishPolicy("promotional-cap", {
      selector: { matchLabels: { category: "promotional" } },
      frequencyCap: { max: 2, per: "24h" },
    });
    for (const id of ["ann", "bob"]) await pool.profiles.identify(pool.namespace, id, { email: `${id}@example.com` });
    await pool.enqueue("ann", { automation: "welcome" });
    await pool.enqueue("ann", { automation: "cart" });
    await pool.enqueue("ann", { campaign: "promo" });
    await pool.enqueue("bob", { campaign: "promo" });
    await pool.waitForOutcome("skipped", 1);
    await pool.enqueue("ann", { automation: "cart", transactional: true });
    await receivedCount(sink, 4, "two for ann, bob's one, ann's transactional");
    assert.deepEqual(recipients(sink), ["ann@example.com", "ann@example.com", "ann@example.com", "bob@example.com"]);
    const skipped = await pool.feedback("skipped");
    assert.deepEqual(
      skipped.map((feedback) => [feedback.profileId, feedback.reason]),
      [["ann", "capped"]],
    );
    assert.deepEqual(await readPolicyDecisions(pool.redis, pool.namespace, "promotional-cap"), { capped: 1 });
    assert.match(
      await pool.metricsText(),
      /relais_policy_decisions_total\{namespace="[^"]+",policy="promotional-cap",reason="capped"\} 1/,
    );
  });

  it("holds a send in quiet hours until 08:00 in each recipient's own zone", async (t) => {
    // 22:30 UTC: 23:30 in Paris, 17:30 in New York.
    const { pool, sink, clock } = await setup(t, new Date("2026-11-27T22:30:00Z"));
    await pool.publishPolicy("nights", { quietHours: { start: "21:00", end: "08:00", timeZone: "UTC" } });
    await pool.profiles.identify(pool.namespace, "paris", { email: "paris@example.com", timezone: "Europe/Paris" });
    await pool.profiles.identify(pool.namespace, "ny", { email: "ny@example.com", timezone: "America/New_York" });
    await pool.enqueue("paris");
    await pool.enqueue("ny");
    await receivedCount(sink, 1, "New York's afternoon send");
    await heldLooks(pool, 2);
    assert.deepEqual(recipients(sink), ["ny@example.com"]);

    // 04:30 UTC: 23:30 in New York, 05:30 in Paris: both wait.
    clock.now = new Date("2026-11-28T04:30:00Z");
    await pool.enqueue("ny", { id: "ny-late" });
    await heldLooks(pool, 3);
    assert.equal(sink.received.length, 1);

    // 07:01 UTC: 08:01 in Paris (its send goes), 02:01 in New York (still held).
    clock.now = new Date("2026-11-28T07:01:00Z");
    await receivedCount(sink, 2, "Paris's morning send");
    await heldLooks(pool, 2);
    assert.deepEqual(recipients(sink), ["ny@example.com", "paris@example.com"]);

    // 13:01 UTC: 08:01 in New York.
    clock.now = new Date("2026-11-28T13:01:00Z");
    await receivedCount(sink, 3, "New York's morning send");
    assert.deepEqual(recipients(sink), ["ny@example.com", "ny@example.com", "paris@example.com"]);
    // Each held send is counted once, however often it was looked at.
    assert.deepEqual(await readPolicyDecisions(pool.redis, pool.namespace, "nights"), { quiet_hours_held: 2 });
  });

  it("freezes every non-transactional send, then releases all of them once, losing none", async (t) => {
    const { pool, sink } = await setup(t);
    await pool.publishPolicy("incident", { freeze: true });
    const ids = Array.from({ length: 30 }, (_, i) => `p${String(i).padStart(2, "0")}`);
    for (const id of ids) await pool.profiles.identify(pool.namespace, id, { email: `${id}@example.com` });
    for (const id of ids) await pool.enqueue(id);
    await pool.enqueue("p00", { automation: "cart", transactional: true });
    await receivedCount(sink, 1, "the transactional send, not frozen");
    await heldLooks(pool, 60);
    assert.equal(sink.received.length, 1);

    await pool.publishPolicy("incident", { freeze: false }, 2);
    await receivedCount(sink, 31, "every frozen send after the freeze is lifted");
    await pool.waitForOutcome("sent", 31);
    const expected = [...ids.map((id) => `${id}@example.com`), "p00@example.com"].sort();
    assert.deepEqual(recipients(sink), expected);
    assert.deepEqual(await readPolicyDecisions(pool.redis, pool.namespace, "incident"), { frozen: 30 });
  });

  it("pauses the Sender on a burst of hard bounces and resumes only when cleared", async (t) => {
    const { pool, sink } = await setup(t);
    await pool.publishPolicy("reputation", { autoPause: { window: "10m", minSends: 10, bounceRate: 0.5 } });
    for (let i = 0; i < 12; i++) {
      const address = `gone${i}@example.com`;
      sink.rejectRecipient(address, 550, "5.1.1 No such user");
      await pool.profiles.identify(pool.namespace, `gone${i}`, { email: address });
      await pool.enqueue(`gone${i}`);
    }
    await pool.waitForOutcome("bounced", 12);
    // The Sender and the Campaign whose sends bounced are both paused.
    const pauses = await readPauses(pool.redis, pool.namespace);
    assert.deepEqual([...pauses.keys()].sort(), ["Campaign/promo", `Sender/${pool.sender}`]);
    const pause = pauses.get(`Sender/${pool.sender}`);
    assert.equal(pause?.policy, "reputation");
    assert.equal(pause.reason, "bounceRate");
    assert.ok(pause.sends >= 10 && pause.rate >= 0.5, JSON.stringify(pause));

    await pool.profiles.identify(pool.namespace, "fine", { email: "fine@example.com" });
    await pool.enqueue("fine");
    await heldLooks(pool, 3);
    assert.equal(sink.received.length, 0);

    // Resuming the Sender is not enough for the paused Campaign's send; resuming both is.
    assert.equal(await clearPause(pool.redis, pool.namespace, `Sender/${pool.sender}`), true);
    await heldLooks(pool, 3);
    assert.equal(sink.received.length, 0);
    assert.equal(await clearPause(pool.redis, pool.namespace, "Campaign/promo"), true);
    await receivedCount(sink, 1, "the held send once both pauses are cleared");
    assert.deepEqual(recipients(sink), ["fine@example.com"]);
  });

  it("keeps the same profiles out of a campaign's holdout group in every run", async (t) => {
    const { pool, sink } = await setup(t);
    await pool.publishSource({ kind: "Campaign", name: "weekly", message, holdoutPercent: 50 });
    const ids = Array.from({ length: 40 }, (_, i) => `h${i}`);
    for (const id of ids) await pool.profiles.identify(pool.namespace, id, { email: `${id}@example.com` });
    for (const run of [1, 2]) {
      for (const id of ids) await pool.enqueue(id, { campaign: "weekly", id: `run${run}-${id}` });
      const reason = await waitUntil(async () => (await ended(pool)) >= 40 * run, {
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      assert.equal(reason, "", `run ${run} did not end`);
    }
    const held = (await pool.feedback("skipped")).filter((feedback) => feedback.reason === "holdout");
    const heldIn = (run: number) =>
      held
        .filter((feedback) => String(feedback.messageId).startsWith(`run${run}-`))
        .map((f) => f.profileId)
        .sort();
    assert.ok(heldIn(1).length > 0 && heldIn(1).length < 40, `held out ${heldIn(1).length} of 40`);
    assert.deepEqual(heldIn(1), heldIn(2));
    assert.equal(sink.received.length, 80 - held.length);
  });
});
