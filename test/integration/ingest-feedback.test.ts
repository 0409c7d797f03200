// Delivery feedback flows back into profiles: bounces and complaints suppress the address, a
// complaint unsubscribes, an expired push subscription is dropped.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defer, useStack, waitUntil } from "#harness";
import { feedbackConsumer } from "#ingest";
import type { ProfileView } from "#ingest";
import { createLogger, Subjects } from "#runtime";
import type { FeedbackMessage } from "#runtime";
import { ingestFixture } from "../fixtures/ingest.ts";
import type { IngestFixture } from "../fixtures/ingest.ts";

const stack = useStack(["nats", "redis"]);

async function profile(f: IngestFixture, id: string): Promise<ProfileView> {
  const response = await f.app.inject({ url: `/v1/profiles/${id}`, headers: { authorization: f.auth } });
  return response.json<ProfileView>();
}

describe("the feedback consumer", () => {
  it("suppresses bounced and complaining addresses, unsubscribes complainers, drops expired push subscriptions", async (t) => {
    const f = await ingestFixture(t, stack);
    const endpoint = "https://push.example/expired";
    const put = (id: string, body: object) =>
      f.app.inject({ method: "PUT", url: `/v1/profiles/${id}`, headers: { authorization: f.auth }, payload: body });
    await put("bounced", { email: "gone@example.com", emailSubscription: "subscribed" });
    await put("angry", { email: "angry@example.com", emailSubscription: "subscribed" });
    await put("pushy", { webPush: { add: [{ endpoint, keys: { p256dh: "BBBB", auth: "aaaa" } }] } });

    const stop = new AbortController();
    const running = feedbackConsumer({
      js: f.js,
      jsm: f.jsm,
      store: f.store,
      metrics: f.metrics,
      log: createLogger({ name: "test", level: "silent" }),
    }).run(stop.signal);
    defer(t, async () => {
      stop.abort();
      await running;
    });

    const at = new Date().toISOString();
    const send = (message: FeedbackMessage) =>
      f.js.publish(Subjects.feedback(f.namespace, message.outcome), JSON.stringify(message));
    await send({
      namespace: f.namespace,
      outcome: "bounced",
      profileId: "bounced",
      address: "gone@example.com",
      reason: "5.1.1",
      at,
    });
    await send({ namespace: f.namespace, outcome: "complained", profileId: "angry", address: "angry@example.com", at });
    await send({
      namespace: f.namespace,
      outcome: "expired",
      profileId: "pushy",
      address: endpoint,
      channel: "webpush",
      at,
    });
    await f.js.publish(Subjects.feedback(f.namespace, "bounced"), "not json");

    const applied = await waitUntil(
      async () =>
        (await profile(f, "pushy")).webPushSubscriptions.length === 0 &&
        (await profile(f, "angry")).email.suppressed !== null,
      { timeoutMs: 10_000 },
    );
    assert.equal(applied, "", "feedback was not applied");
    assert.deepEqual((await profile(f, "bounced")).email.suppressed?.reason, "hard_bounce 5.1.1");
    assert.equal((await profile(f, "bounced")).email.subscription, "subscribed", "a bounce does not unsubscribe");
    const angry = await profile(f, "angry");
    assert.equal(angry.email.suppressed?.reason, "complaint");
    assert.equal(angry.email.subscription, "unsubscribed");
    assert.equal(angry.email.history[0]?.source, "complaint");
  });
});
