// Automation scenarios against real NATS and Redis, with a clock the test moves by hand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { useStack } from "#harness";
import { engageFixture } from "../fixtures/engage.ts";
import type { EngageFixture } from "../fixtures/engage.ts";

const stack = useStack(["nats", "redis"]);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const email = { email: { subject: "Your cart", html: "<p>Back to your cart</p>" } };

function abandonedCart(extra: Record<string, unknown> = {}) {
  return {
    senderRef: { name: "mail" },
    trigger: { event: "cart_updated", filter: "event.attributes.itemCount > 0" },
    wait: { after: "48h" },
    cancelOn: [{ event: "purchase", filter: "event.attributes.cartId == trigger.attributes.cartId" }],
    message: email,
    ...extra,
  };
}

async function customer(f: EngageFixture, id: string, extra: Record<string, unknown> = {}) {
  await f.profiles.identify(f.namespace, id, {
    email: `${id}@example.com`,
    emailSubscription: { status: "subscribed", source: "api" },
    ...extra,
  });
}

describe("abandoned cart", () => {
  it("sends 48 h after the cart update, never before", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "ann");
    await f.event("ann", "cart_updated", { cartId: "c1", itemCount: 2 });
    assert.equal(await f.advance(48 * HOUR - 1000), 0);
    assert.deepEqual(await f.sends(), []);
    assert.equal(await f.advance(1000), 1);
    const [job] = await f.sends();
    assert.ok(job);
    assert.equal(job.profileId, "ann");
    assert.deepEqual(job.source, { kind: "Automation", name: "cart", runId: "cart|ann|ev-1" });
    assert.equal((job.event as { attributes: { cartId: string } }).attributes.cartId, "c1");
    assert.deepEqual(await f.stats("cart"), { triggered: 1, waiting: 0, sent: 1 });
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("is cancelled by a purchase of the same cart, not by a purchase of another", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "bob");
    await customer(f, "cat");
    await f.event("bob", "cart_updated", { cartId: "b1", itemCount: 1 });
    await f.event("cat", "cart_updated", { cartId: "c1", itemCount: 1 });
    await f.advance(HOUR);
    await f.event("bob", "purchase", { cartId: "b1" });
    await f.event("cat", "purchase", { cartId: "another" });
    await f.advance(48 * HOUR);
    assert.deepEqual(
      (await f.sends()).map((job) => job.profileId),
      ["cat"],
    );
    assert.equal((await f.stats("cart")).cancelled, 1);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("is not triggered when the filter does not hold, and counts it", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "dan");
    await f.event("dan", "cart_updated", { cartId: "d1", itemCount: 0 });
    await f.event("dan", "cart_updated", { cartId: "d1" });
    await f.advance(3 * DAY);
    assert.deepEqual(await f.sends(), []);
    assert.deepEqual(await f.stats("cart"), { filteredOut: 2 });
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("lets a cancel that arrives just before the timer fires win, even once the timer is claimed", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "eve");
    await customer(f, "fay");
    await f.event("eve", "cart_updated", { cartId: "e1", itemCount: 1 });
    await f.event("fay", "cart_updated", { cartId: "f1", itemCount: 1 });
    f.clock.advance(48 * HOUR - 1);
    await f.event("eve", "purchase", { cartId: "e1" });
    f.clock.advance(1);
    const claimed = await f.store.claimDue(f.namespace, f.clock.now, 10);
    assert.deepEqual(
      claimed.map((instance) => instance.profileId),
      ["fay"],
    );
    await f.event("fay", "purchase", { cartId: "f1" });
    for (const instance of claimed) await f.engine.fire(f.namespace, instance);
    assert.deepEqual(await f.sends(), []);
    assert.equal((await f.stats("cart")).cancelled, 2);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("starts one instance however often the triggering event is replayed", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "gus");
    for (let i = 0; i < 3; i++)
      await f.event("gus", "cart_updated", { cartId: "g1", itemCount: 1 }, { id: "same-event" });
    await f.advance(2 * DAY);
    assert.equal((await f.sends()).length, 1);
    assert.equal((await f.stats("cart")).triggered, 1);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("neither starts nor counts an ended instance again when its event comes back (a lost ack)", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart({ wait: undefined }));
    await customer(f, "ida");
    await f.event("ida", "cart_updated", { cartId: "i1", itemCount: 1 }, { id: "sent-event" });
    assert.equal((await f.sends()).length, 1);
    await f.event("ida", "cart_updated", { cartId: "i1", itemCount: 1 }, { id: "sent-event" });
    assert.equal((await f.sends()).length, 1);
    assert.deepEqual(
      { triggered: (await f.stats("cart")).triggered, sent: (await f.stats("cart")).sent },
      { triggered: 1, sent: 1 },
    );
  });
});

describe("grace period and capping", () => {
  it("sends at most one message per grace period to a profile", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart({ wait: undefined, gracePeriod: "72h" }));
    await customer(f, "hal");
    await f.event("hal", "cart_updated", { cartId: "1", itemCount: 1 });
    await f.advance(DAY);
    await f.event("hal", "cart_updated", { cartId: "2", itemCount: 1 });
    await f.advance(2 * DAY + 1000);
    await f.event("hal", "cart_updated", { cartId: "3", itemCount: 1 });
    assert.equal((await f.sends()).length, 2);
    assert.equal((await f.stats("cart"))["skipped:grace"], 1);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("caps messages per window, and allows more once the window slides", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("viewed", {
      senderRef: { name: "mail" },
      trigger: { event: "product_viewed" },
      capping: { max: 2, per: "24h" },
      message: email,
    });
    await customer(f, "ida");
    for (let i = 0; i < 4; i++) {
      await f.event("ida", "product_viewed", { sku: i });
      await f.advance(HOUR);
    }
    assert.equal((await f.sends()).length, 2);
    await f.advance(DAY);
    await f.event("ida", "product_viewed", { sku: 9 });
    assert.equal((await f.sends()).length, 3);
    assert.equal((await f.stats("viewed"))["skipped:capping"], 2);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });
});

describe("waiting until a date in the event", () => {
  const reminder = (ifPast: "skip" | "send") => ({
    senderRef: { name: "mail" },
    trigger: { event: "appointment_booked" },
    wait: { until: { field: "attributes.appointmentAt", offset: "-24h", ifPast } },
    subscription: "all",
    message: email,
  });

  it("sends the day before the appointment", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("reminder", reminder("skip"));
    await customer(f, "jon");
    await f.event("jon", "appointment_booked", { appointmentAt: "2026-12-03T15:00:00Z" });
    f.clock.now = Date.parse("2026-12-02T14:59:59Z");
    assert.equal(await f.timers.tick(), 0);
    f.clock.now = Date.parse("2026-12-02T15:00:00Z");
    assert.equal(await f.timers.tick(), 1);
    assert.equal((await f.sends()).length, 1);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("skips a date already past by default, counted, and sends at once when told to", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("reminder", reminder("skip"));
    f.automation("urgent", reminder("send"));
    await customer(f, "kim");
    await f.event("kim", "appointment_booked", { appointmentAt: "2026-11-27T18:00:00Z" });
    assert.deepEqual(
      (await f.sends()).map((job) => job.source.name),
      ["urgent"],
    );
    assert.equal((await f.stats("reminder"))["skipped:past_date"], 1);
    await f.event("kim", "appointment_booked", { note: "no date" });
    assert.equal((await f.stats("reminder"))["skipped:no_date"], 1);
    assert.deepEqual(await f.counters("reminder"), {
      triggered: 0,
      filteredOut: 0,
      waiting: 0,
      cancelled: 0,
      erased: 0,
      sent: 0,
      skipped: { past_date: 1, no_date: 1 },
    });
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });
});

describe("subscription and suppression", () => {
  it("skips opted-out profiles unless transactional, and suppressed addresses always", async (t) => {
    const f = await engageFixture(t, stack);
    const spec = (subscription: string) => ({
      senderRef: { name: "mail" },
      trigger: { event: "signed_up" },
      subscription,
      message: email,
    });
    f.automation("marketing", spec("optedIn"));
    f.automation("receipt", spec("all"));
    await customer(f, "out", { emailSubscription: { status: "unsubscribed", source: "api" } });
    await customer(f, "bounced");
    await f.profiles.suppress(f.namespace, "bounced@example.com", "hard_bounce");
    await f.event("out", "signed_up");
    await f.event("bounced", "signed_up");
    assert.deepEqual(
      (await f.sends()).map((job) => `${job.source.name}:${job.profileId}:${job.transactional}`),
      ["receipt:out:true"],
    );
    assert.equal((await f.stats("marketing"))["skipped:opt_out"], 1);
    assert.equal((await f.stats("marketing"))["skipped:suppressed"], 1);
    assert.equal((await f.stats("receipt"))["skipped:suppressed"], 1);
    assert.deepEqual(await f.counters("marketing"), {
      triggered: 2,
      filteredOut: 0,
      waiting: 0,
      cancelled: 0,
      erased: 0,
      sent: 0,
      skipped: { opt_out: 1, suppressed: 1 },
    });
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });
});

describe("suspend, edits and erasure", () => {
  it("holds waiting instances while suspended and sends them on resume, starting none meanwhile", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "lea");
    await customer(f, "max");
    await f.event("lea", "cart_updated", { cartId: "l", itemCount: 1 });
    f.automation("cart", abandonedCart({ suspend: true }));
    await f.event("max", "cart_updated", { cartId: "m", itemCount: 1 });
    await f.advance(3 * DAY);
    assert.deepEqual(await f.sends(), []);
    assert.equal((await f.stats("cart")).waiting, 1);
    f.automation("cart", abandonedCart());
    await f.advance(10_000);
    assert.deepEqual(
      (await f.sends()).map((job) => job.profileId),
      ["lea"],
    );
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("sends waiting instances with the automation's current rules when it is edited, and drops them when it is deleted", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "ned");
    await customer(f, "ola");
    await f.event("ned", "cart_updated", { cartId: "n", itemCount: 1 });
    f.automation("cart", abandonedCart({ subscription: "all", wait: { after: "1h" } }));
    await f.advance(48 * HOUR);
    const [job] = await f.sends();
    assert.ok(job);
    assert.equal(job.transactional, true, "the edited automation's subscription applies");
    f.automation("other", abandonedCart({ trigger: { event: "wishlist_added" } }));
    await f.event("ola", "wishlist_added", { cartId: "o" });
    f.remove("other");
    await f.advance(3 * DAY);
    assert.equal((await f.sends()).length, 1);
    assert.equal((await f.stats("other"))["skipped:automation_deleted"], 1);
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("fires an instance stored before instances kept their trigger apart", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "old");
    await f.event("old", "cart_updated", { cartId: "o1", itemCount: 1 });
    // Rewrite the instance as earlier versions stored it: one JSON field holding the trigger.
    const [instance] = await f.store.instancesOf(f.namespace, "old");
    assert.ok(instance);
    const key = `relais:{${f.namespace}}:i:${instance.key}`;
    await f.redis.del(key);
    await f.redis.hset(key, "json", JSON.stringify(instance));
    assert.deepEqual((await f.store.instancesOf(f.namespace, "old"))[0]?.trigger, instance.trigger);
    await f.advance(48 * HOUR);
    const [job] = await f.sends();
    assert.equal((job?.event as { attributes: { cartId: string } } | undefined)?.attributes.cartId, "o1");
    assert.deepEqual(await f.stats("cart"), { triggered: 1, waiting: 0, sent: 1 });
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });

  it("removes an erased profile's waiting instances", async (t) => {
    const f = await engageFixture(t, stack);
    f.automation("cart", abandonedCart());
    await customer(f, "pam");
    await f.event("pam", "cart_updated", { cartId: "p", itemCount: 1 });
    await f.event("pam", "$erase");
    await f.advance(3 * DAY);
    assert.deepEqual(await f.sends(), []);
    assert.deepEqual(await f.stats("cart"), { triggered: 1, waiting: 0, erased: 1 });
    assert.deepEqual(await f.unbalanced(), {}, "the counters add up");
  });
});
