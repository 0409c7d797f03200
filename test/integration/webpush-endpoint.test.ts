// The harness's Web Push endpoint is a real push service: web-push sends to it over HTTPS, and it
// decrypts the message and checks VAPID as browsers' push services do.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import webpush from "web-push";
import type { PushSubscription, RequestOptions, VapidKeys, WebPushError } from "web-push";
import { maxPushBodyBytes, startWebPushEndpoint } from "../harness/webpush.ts";
import type { WebPushEndpoint, WebPushEndpointOptions } from "../harness/webpush.ts";

const subject = "mailto:push@relais.test";

async function pushService(t: TestContext, options?: WebPushEndpointOptions): Promise<WebPushEndpoint> {
  const endpoint = await startWebPushEndpoint(options);
  t.after(() => endpoint.stop());
  return endpoint;
}

function sendOptions(service: WebPushEndpoint, keys: VapidKeys, extra: RequestOptions = {}): RequestOptions {
  return { vapidDetails: { subject, ...keys }, agent: service.agent, TTL: 60, ...extra };
}

/** Asserts that `promise` rejects with a WebPushError of `status`; returns the error for further checks. */
async function rejectsWith(promise: Promise<unknown>, status: number): Promise<WebPushError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof webpush.WebPushError, `expected a WebPushError, got ${String(error)}`);
    assert.equal(error.statusCode, status, error.body);
    return error;
  }
  assert.fail(`expected the push to be refused with ${status}`);
}

/** A push request as web-push builds it, sent with fetch after `change` edits it (plain-HTTP endpoint). */
async function sendRaw(
  subscription: PushSubscription,
  keys: VapidKeys,
  change: (request: { headers: Record<string, string>; body: Buffer }) => void,
): Promise<Response> {
  const details = webpush.generateRequestDetails(subscription, "hello", {
    vapidDetails: { subject, ...keys },
    TTL: 60,
  });
  // fetch sets Content-Length itself; the other values (TTL is a number at run time) become strings.
  const headers = Object.fromEntries(
    Object.entries(details.headers).filter(([name]) => name.toLowerCase() !== "content-length"),
  );
  assert.ok(details.body);
  const request = { headers, body: Buffer.from(details.body) };
  change(request);
  return fetch(subscription.endpoint, { method: "POST", headers: request.headers, body: request.body });
}

describe("The harness's Web Push endpoint", () => {
  it("delivers a web-push notification decrypted, with its TTL, urgency, topic and VAPID identity", async (t) => {
    const service = await pushService(t);
    const keys = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();
    assert.match(subscription.endpoint, new RegExp(`^${service.url}/push/[A-Za-z0-9_-]+$`));
    assert.equal(Buffer.from(subscription.keys.p256dh, "base64url").length, 65);
    assert.equal(Buffer.from(subscription.keys.auth, "base64url").length, 16);
    const before = Math.floor(Date.now() / 1000);

    const payload = JSON.stringify({ title: "Order shipped", body: "Parcel 42 is on its way — ünïcödé" });
    const result = await webpush.sendNotification(
      subscription,
      payload,
      sendOptions(service, keys, { TTL: 3600, urgency: "high", topic: "order-42" }),
    );

    assert.equal(result.statusCode, 201);
    assert.match(String(result.headers.location), new RegExp(`^${service.url}/message/`));
    const [push, ...others] = await service.waitFor(1);
    assert.deepEqual(others, []);
    assert.ok(push);
    const { expiresAt, ...vapid } = push.vapid;
    assert.deepEqual(
      { ...push, vapid },
      {
        endpoint: subscription.endpoint,
        payload,
        ttl: 3600,
        urgency: "high",
        topic: "order-42",
        vapid: { subject, audience: service.url, publicKey: keys.publicKey },
      },
    );
    assert.ok(expiresAt > before && expiresAt <= before + 24 * 3600 + 1, `exp ${expiresAt}`);
    assert.deepEqual(
      service.attempts.map((a) => [a.endpoint, a.status]),
      [[subscription.endpoint, 201]],
    );
  });

  it("delivers a push without payload as an empty message", async (t) => {
    const service = await pushService(t);
    const keys = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();

    await webpush.sendNotification(subscription, null, sendOptions(service, keys, { TTL: 0 }));

    const [push] = await service.waitFor(1);
    assert.equal(push?.payload, "");
    assert.equal(push.ttl, 0);
    assert.equal(push.urgency, "normal"); // web-push's default
    assert.equal(push.topic, undefined);
  });

  it("refuses with 403 a notification signed with another VAPID key than the accepted one", async (t) => {
    const accepted = webpush.generateVAPIDKeys();
    const other = webpush.generateVAPIDKeys();
    const service = await pushService(t, { acceptedVapidKeys: [accepted.publicKey] });
    const subscription = service.createSubscription();

    const error = await rejectsWith(webpush.sendNotification(subscription, "hi", sendOptions(service, other)), 403);
    assert.match(error.body, /VAPID key is not/);
    assert.equal(service.received.length, 0);

    await webpush.sendNotification(subscription, "hi", sendOptions(service, accepted));
    assert.deepEqual(
      service.received.map((push) => [push.payload, push.vapid.publicKey]),
      [["hi", accepted.publicKey]],
    );
    assert.deepEqual(
      service.attempts.map((a) => a.status),
      [403, 201],
    );
  });

  it("refuses with 401 a VAPID JWT that expired, names another audience, or is signed by another key", async (t) => {
    const service = await pushService(t, { tls: false });
    const keys = webpush.generateVAPIDKeys();
    const impostor = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();
    const now = Math.floor(Date.now() / 1000);
    const vapid = (audience: string, expiration: number, signer: VapidKeys): string =>
      webpush.getVapidHeaders(audience, subject, keys.publicKey, signer.privateKey, "aes128gcm", expiration)
        .Authorization;

    const cases = [
      { authorization: vapid(service.url, now - 60, keys), reason: /exp is missing or past/ },
      { authorization: vapid("https://fcm.googleapis.com", now + 600, keys), reason: /aud "https:\/\/fcm/ },
      { authorization: vapid(service.url, now + 600, impostor), reason: /signature does not verify/ },
      { authorization: "WebPush legacy-token", reason: /missing vapid Authorization/ },
    ];
    for (const { authorization, reason } of cases) {
      const response = await sendRaw(subscription, keys, (request) => {
        request.headers.Authorization = authorization;
      });
      assert.equal(response.status, 401);
      assert.match(await response.text(), reason);
    }
    assert.equal(service.received.length, 0);
  });

  it("refuses with 400 a garbled body or a request without TTL, and records nothing", async (t) => {
    const service = await pushService(t, { tls: false });
    const keys = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();

    const garbled = await sendRaw(subscription, keys, ({ body }) => {
      body.fill(0xa5, 86); // past the 86-byte aes128gcm header: salt, rs, idlen, sender key
    });
    assert.equal(garbled.status, 400);
    assert.match(await garbled.text(), /body does not decrypt/);

    const wrongKey = await sendRaw(subscription, keys, ({ body }) => {
      body.fill(0x07, 21, 86); // the sender's ECDH key is no longer a point on P-256
    });
    assert.equal(wrongKey.status, 400);

    const noTtl = await sendRaw(subscription, keys, ({ headers }) => {
      delete headers.TTL;
    });
    assert.equal(noTtl.status, 400);
    assert.match(await noTtl.text(), /TTL header missing/);

    const plain = await sendRaw(subscription, keys, (request) => {
      request.headers["Content-Encoding"] = "aesgcm";
    });
    assert.equal(plain.status, 400);
    assert.match(await plain.text(), /is not aes128gcm/);

    const intact = await sendRaw(subscription, keys, () => undefined);
    assert.equal(intact.status, 201);
    assert.deepEqual(
      service.received.map((push) => push.payload),
      ["hello"],
    );
  });

  it("refuses with 413 a body over the push service limit and 404 an unknown subscription", async (t) => {
    const service = await pushService(t);
    const keys = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();

    const tooLarge = await rejectsWith(
      webpush.sendNotification(subscription, "x".repeat(maxPushBodyBytes), sendOptions(service, keys)),
      413,
    );
    assert.match(tooLarge.body, /exceeds 4096/);
    const gone = { ...subscription, endpoint: `${service.url}/push/unknown` };
    await rejectsWith(webpush.sendNotification(gone, "hi", sendOptions(service, keys)), 404);
    assert.deepEqual(
      service.attempts.map((a) => [a.endpoint, a.status]),
      [
        [subscription.endpoint, 413],
        [gone.endpoint, 404],
      ],
    );
  });

  it("answers 410 for every push once programmed, so web-push rejects with 410 and nothing is recorded", async (t) => {
    const service = await pushService(t);
    const keys = webpush.generateVAPIDKeys();
    const expired = service.createSubscription();
    const live = service.createSubscription();
    service.respondWith(expired.endpoint, 410);

    for (let i = 0; i < 2; i++) {
      const error = await rejectsWith(webpush.sendNotification(expired, "hi", sendOptions(service, keys)), 410);
      assert.equal(error.endpoint, expired.endpoint);
    }
    await webpush.sendNotification(live, "still here", sendOptions(service, keys));

    assert.deepEqual(
      service.received.map((push) => [push.endpoint, push.payload]),
      [[live.endpoint, "still here"]],
    );
    assert.deepEqual(
      service.attempts.map((a) => [a.endpoint, a.status]),
      [
        [expired.endpoint, 410],
        [expired.endpoint, 410],
        [live.endpoint, 201],
      ],
    );
  });

  it("answers a programmed 429 with its Retry-After once, then accepts the retry", async (t) => {
    const service = await pushService(t);
    const keys = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();
    service.respondWith(subscription.endpoint, 429, { times: 1, headers: { "Retry-After": "7" } });

    const error = await rejectsWith(webpush.sendNotification(subscription, "first", sendOptions(service, keys)), 429);
    assert.equal(error.headers["retry-after"], "7");
    assert.equal(service.received.length, 0);

    await webpush.sendNotification(subscription, "first", sendOptions(service, keys));
    assert.deepEqual(
      (await service.waitFor(1)).map((push) => push.payload),
      ["first"],
    );
    assert.deepEqual(
      service.attempts.map((a) => a.status),
      [429, 201],
    );
  });

  it("rejects waitFor after its timeout, naming how many arrived and the last answers", async (t) => {
    const service = await pushService(t);
    const keys = webpush.generateVAPIDKeys();
    const subscription = service.createSubscription();
    service.respondWith(subscription.endpoint, 404, { times: 1 });
    await rejectsWith(webpush.sendNotification(subscription, "lost", sendOptions(service, keys)), 404);

    await assert.rejects(service.waitFor(1, 50), {
      message: "waited 50 ms for 1 pushes, received 0; last answers: 404",
    });
  });
});
