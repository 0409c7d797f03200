// A Sender's pool delivering Web Push to a real push endpoint that checks the VAPID JWT and
// decrypts the payload; an expired subscription flows back and is dropped from the profile.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import webpush from "web-push";
import { defer, startWebPushEndpoint, useStack, waitUntil } from "#harness";
import { feedbackConsumer, createIngestMetrics } from "#ingest";
import type { ProfileView } from "#ingest";
import { createLogger } from "#runtime";
import { deliverFixture } from "../fixtures/deliver.ts";

const stack = useStack(["nats", "redis"]);

async function pushSetup(t: Parameters<typeof deliverFixture>[0]) {
  const vapid = webpush.generateVAPIDKeys();
  const endpoint = await startWebPushEndpoint({ acceptedVapidKeys: [vapid.publicKey] });
  defer(t, () => endpoint.stop());
  const pool = await deliverFixture(t, stack, {
    senderSpec: {
      channel: "webpush",
      webpush: {
        vapid: { subject: "mailto:push@shop.example", keysSecretRef: { name: "vapid" } },
        ttl: "2h",
        urgency: "high",
        topic: "promo",
      },
      retry: { maxAttempts: 3, initialBackoff: "100ms", maxBackoff: "1s" },
    },
    caPem: endpoint.ca,
    secretsEnv: { RELAIS_SECRET_VAPID_PUBLICKEY: vapid.publicKey, RELAIS_SECRET_VAPID_PRIVATEKEY: vapid.privateKey },
  });
  await pool.publishTemplate("promo", {
    webpush: {
      title: "{{ profile.attributes.firstName }}, -30% today",
      body: "Your cart: {{ profile.attributes.cartSize }} items",
      url: "https://shop.example/sale",
      actions: [{ action: "open", title: "Shop now" }],
    },
  });
  return { endpoint, pool };
}

describe("Web Push delivery", () => {
  it("delivers the rendered notification, encrypted for the subscription and signed with the Sender's VAPID key", async (t) => {
    const { endpoint, pool } = await pushSetup(t);
    const phone = endpoint.createSubscription();
    const laptop = endpoint.createSubscription();
    await pool.profiles.identify(pool.namespace, "pia", {
      attributes: { firstName: "Pia", cartSize: 3 },
      webPush: { add: [phone, laptop] },
    });
    const id = await pool.enqueue("pia", { endpoint: laptop.endpoint });
    const [push] = await endpoint.waitFor(1);
    assert.ok(push);
    assert.equal(push.endpoint, laptop.endpoint);
    assert.deepEqual(JSON.parse(push.payload), {
      title: "Pia, -30% today",
      body: "Your cart: 3 items",
      url: "https://shop.example/sale",
      actions: [{ action: "open", title: "Shop now" }],
      messageId: id,
    });
    assert.deepEqual([push.ttl, push.urgency, push.topic], [7200, "high", "promo"]);
    assert.equal(push.vapid.subject, "mailto:push@shop.example");
    await pool.waitForOutcome("sent", 1);
  });

  it("reports a 410 as an expired subscription, which the profile then drops", async (t) => {
    const { endpoint, pool } = await pushSetup(t);
    const gone = endpoint.createSubscription();
    endpoint.respondWith(gone.endpoint, 410);
    await pool.profiles.identify(pool.namespace, "old", { webPush: { add: [gone] } });
    const consumer = new AbortController();
    const running = feedbackConsumer({
      js: pool.js,
      jsm: pool.jsm,
      store: pool.profiles,
      metrics: createIngestMetrics(),
      log: createLogger({ name: "test", level: "silent" }),
    }).run(consumer.signal);
    defer(t, async () => {
      consumer.abort();
      await running;
    });
    await pool.enqueue("old", { endpoint: gone.endpoint });
    await pool.waitForOutcome("expired", 1);
    const [expired] = await pool.feedback("expired");
    assert.equal(expired?.address, gone.endpoint);
    const dropped = await waitUntil(
      async () => ((await pool.profiles.view(pool.namespace, "old")) as ProfileView).webPushSubscriptions.length === 0,
      { timeoutMs: 10_000 },
    );
    assert.equal(dropped, "", "the expired subscription is still on the profile");
    assert.equal(endpoint.received.length, 0);
  });

  it("retries after a 429's Retry-After and skips a profile without the subscription", async (t) => {
    const { endpoint, pool } = await pushSetup(t);
    const busy = endpoint.createSubscription();
    endpoint.respondWith(busy.endpoint, 429, { times: 1, headers: { "retry-after": "1" } });
    await pool.profiles.identify(pool.namespace, "busy", {
      attributes: { firstName: "B", cartSize: 1 },
      webPush: { add: [busy] },
    });
    await pool.enqueue("busy", { endpoint: busy.endpoint });
    await pool.enqueue("busy", { endpoint: "https://push.example/never-subscribed" });
    await pool.waitForOutcome("sent", 1);
    await pool.waitForOutcome("skipped", 1);
    assert.equal(endpoint.received.length, 1);
    assert.deepEqual(
      (await pool.feedback("skipped")).map((f) => f.reason),
      ["no_subscription"],
    );
  });
});
