// The Profiles & Data API against real NATS JetStream and Redis, driven with inject().
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { hasTool, toolPath, useStack } from "#harness";
import { purgeOnce } from "#ingest";
import { createLogger, ERASE_EVENT, RedisKeys, signToken, Streams } from "#runtime";
import { ingestFixture, readSubject, TOKEN_SECRET } from "../fixtures/ingest.ts";
import type { IngestFixture } from "../fixtures/ingest.ts";
import type { ProfileView } from "#ingest";

const stack = useStack(["nats", "redis"]);

interface ErrorBody {
  error: { code: string; message: string; issues?: { path: string; message: string }[] };
}

async function put(f: IngestFixture, id: string, body: unknown, auth = f.auth) {
  return f.app.inject({
    method: "PUT",
    url: `/v1/profiles/${id}`,
    headers: { authorization: auth },
    payload: body as object,
  });
}

async function track(f: IngestFixture, events: unknown[], auth = f.auth) {
  return f.app.inject({ method: "POST", url: "/v1/events", headers: { authorization: auth }, payload: { events } });
}

async function view(f: IngestFixture, id: string, auth = f.auth) {
  return f.app.inject({ method: "GET", url: `/v1/profiles/${id}`, headers: { authorization: auth } });
}

describe("authentication and tenancy", () => {
  it("answers 401 without a key, with an unknown key, or with a wrong secret", async (t) => {
    const f = await ingestFixture(t, stack);
    for (const authorization of [
      undefined,
      "Bearer nobody.aaaaaaaaaaaaaaaaaaaaaaaa",
      `${f.auth.slice(0, -2)}xx`,
      "Basic abc",
    ]) {
      const response = await f.app.inject({
        method: "GET",
        url: "/v1/profiles/p1",
        headers: authorization ? { authorization } : {},
      });
      assert.equal(response.statusCode, 401, String(authorization));
      assert.equal(response.json<ErrorBody>().error.code, "RELAIS_HTTP_UNAUTHORIZED");
    }
  });

  it("lets a key reach only its own namespace's profiles", async (t) => {
    const f = await ingestFixture(t, stack);
    assert.equal((await put(f, "alice", { attributes: { plan: "gold" } })).statusCode, 201);
    assert.equal((await view(f, "alice", f.otherAuth)).statusCode, 404);
    assert.equal((await put(f, "alice", { attributes: { plan: "free" } }, f.otherAuth)).statusCode, 201);
    assert.deepEqual((await view(f, "alice")).json<{ attributes: unknown }>().attributes, { plan: "gold" });
  });

  it("answers 429 with Retry-After once a key exceeds its rate", async (t) => {
    const f = await ingestFixture(t, stack, { rateLimitPerSecond: 1, burst: 2 });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await view(f, "x")).statusCode);
    assert.deepEqual(codes, [404, 404, 429]);
    const limited = await view(f, "x");
    assert.equal(limited.json<ErrorBody>().error.code, "RELAIS_HTTP_RATE_LIMITED");
    assert.ok(Number(limited.headers["retry-after"]) >= 1);
    assert.equal((await view(f, "x", f.otherAuth)).statusCode, 404, "another key has its own budget");
  });
});

describe("identify", () => {
  it("creates a profile, then merges fields without clobbering the others; null removes one", async (t) => {
    const f = await ingestFixture(t, stack);
    const first = await put(f, "alice", {
      attributes: { firstName: "Alice", points: 10, vip: true, tags: ["a", "b"], birthday: "1990-04-01T00:00:00Z" },
      email: "Alice.Smith@Example.COM",
      emailSubscription: "subscribed",
      language: "fr",
      timezone: "Europe/Paris",
    });
    assert.equal(first.statusCode, 201);
    const second = await put(f, "alice", { attributes: { points: 12, vip: null }, timezone: null });
    assert.equal(second.statusCode, 200);
    const profile = (await view(f, "alice")).json<ProfileView>();
    assert.deepEqual(profile.attributes, {
      firstName: "Alice",
      points: 12,
      tags: ["a", "b"],
      birthday: "1990-04-01T00:00:00Z",
    });
    assert.equal(profile.email.address, "Alice.Smith@example.com");
    assert.equal(profile.email.subscription, "subscribed");
    assert.equal(profile.language, "fr");
    assert.equal(profile.timezone, null);
    assert.deepEqual(await f.redis.smembers(RedisKeys.domainIndex(f.namespace, "example.com")), ["alice"]);
  });

  it("indexes the new email domain and forgets the old one when the address changes", async (t) => {
    const f = await ingestFixture(t, stack);
    await put(f, "bob", { email: "bob@gmail.com" });
    await put(f, "bob", { email: "bob@shop.example" });
    assert.deepEqual(await f.redis.smembers(RedisKeys.domainIndex(f.namespace, "gmail.com")), []);
    assert.deepEqual(await f.redis.smembers(RedisKeys.domainIndex(f.namespace, "shop.example")), ["bob"]);
    assert.deepEqual(await f.redis.smembers(RedisKeys.emailIndex(f.namespace, "bob@shop.example")), ["bob"]);
  });

  it("keeps the history of email subscription changes, with their times", async (t) => {
    const f = await ingestFixture(t, stack);
    await put(f, "carol", { email: "carol@example.com", emailSubscription: "subscribed" });
    await put(f, "carol", { emailSubscription: "subscribed" });
    await put(f, "carol", { emailSubscription: "unsubscribed" });
    const profile = (await view(f, "carol")).json<{ email: { history: { status: string; source: string }[] } }>();
    assert.deepEqual(
      profile.email.history.map((entry) => `${entry.status}/${entry.source}`),
      ["unsubscribed/api", "subscribed/api"],
    );
  });

  it("rejects bad fields with 400 naming each, and writes nothing", async (t) => {
    const f = await ingestFixture(t, stack);
    const response = await put(f, "dave", {
      email: "not-an-email",
      timezone: "Mars/Olympus",
      attributes: { "1st": "x", ok: { nested: true } },
      favouriteColour: "blue",
    });
    assert.equal(response.statusCode, 400);
    const body = response.json<ErrorBody>();
    assert.equal(body.error.code, "RELAIS_HTTP_INVALID_REQUEST");
    const paths = (body.error.issues ?? []).map((issue) => issue.path).sort();
    assert.deepEqual(paths, [
      "body.attributes.1st",
      "body.attributes.ok",
      "body.email",
      "body.favouriteColour",
      "body.timezone",
    ]);
    assert.equal((await view(f, "dave")).statusCode, 404);
  });

  it("refuses with 422 an update that would grow a profile past its field bound, writing none of it", async (t) => {
    const f = await ingestFixture(t, stack);
    const batch = (from: number) => Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`attr${from + i}`, i]));
    assert.equal((await put(f, "big", { attributes: batch(0) })).statusCode, 201);
    assert.equal((await put(f, "big", { attributes: batch(200) })).statusCode, 200);
    const refused = await put(f, "big", {
      attributes: { ...Object.fromEntries(Object.entries(batch(400)).slice(1)), attr0: "changed" },
    });
    assert.equal(refused.statusCode, 422);
    assert.equal(refused.json<ErrorBody>().error.code, "RELAIS_PROFILE_TOO_MANY_FIELDS");
    const attributes = (await view(f, "big")).json<ProfileView>().attributes;
    assert.equal(Object.keys(attributes).length, 400);
    assert.equal(attributes.attr0, 0, "nothing of the refused update was written");
  });

  it("stores Web Push subscriptions per endpoint and never shows their keys", async (t) => {
    const f = await ingestFixture(t, stack);
    const subscription = (n: number) => ({
      endpoint: `https://push.example/sub/${n}`,
      keys: { p256dh: `BNc${n}xyz`, auth: `au${n}th` },
    });
    await put(f, "erin", { webPush: { add: [subscription(1), subscription(2)] } });
    await put(f, "erin", { webPush: { add: [subscription(2)], remove: ["https://push.example/sub/1"] } });
    const response = await view(f, "erin");
    assert.doesNotMatch(response.body, /BNc|au\dth/);
    const profile = response.json<{ webPushSubscriptions: { endpoint: string; keys: string }[] }>();
    assert.deepEqual(
      profile.webPushSubscriptions.map((s) => [s.endpoint, s.keys]),
      [["https://push.example/sub/2", "redacted"]],
    );
  });
});

describe("track", () => {
  it("stores accepted events on RELAIS_EVENTS before answering 202, and in the profile's history", async (t) => {
    const f = await ingestFixture(t, stack);
    const response = await track(f, [
      { profileId: "alice", name: "cart_updated", id: "e1", attributes: { cartId: "c1", total: 59.9 } },
      {
        profileId: "alice",
        name: "purchase",
        id: "e2",
        timestamp: "2026-11-27T10:00:00Z",
        attributes: { cartId: "c1" },
      },
    ]);
    assert.equal(response.statusCode, 202);
    assert.deepEqual(response.json(), { accepted: 2, duplicates: 0, ids: ["e1", "e2"] });
    const stored = await f.storedEvents();
    assert.deepEqual(
      stored.map((m) => m.subject),
      [`relais.events.${f.namespace}.cart_updated`, `relais.events.${f.namespace}.purchase`],
    );
    assert.deepEqual(stored[0]?.data.attributes, { cartId: "c1", total: 59.9 });
    const profile = (await view(f, "alice")).json<{ events: { id: string }[]; lastActivityAt: string }>();
    assert.deepEqual(
      profile.events.map((e) => e.id),
      ["e2", "e1"],
    );
    assert.ok(profile.lastActivityAt);
  });

  it("records a retried batch once: same ids, same stream contents", async (t) => {
    const f = await ingestFixture(t, stack);
    const events = [1, 2, 3].map((n) => ({ profileId: `p${n}`, name: "viewed", id: `v${n}` }));
    assert.deepEqual((await track(f, events)).json(), { accepted: 3, duplicates: 0, ids: ["v1", "v2", "v3"] });
    assert.deepEqual((await track(f, events)).json(), { accepted: 0, duplicates: 3, ids: ["v1", "v2", "v3"] });
    assert.equal((await f.storedEvents()).length, 3);
    assert.equal((await view(f, "p1")).json<{ events: unknown[] }>().events.length, 1);
  });

  it("answers 413 over 1,000 events or 1 MiB, and 400 naming the bad event, writing nothing", async (t) => {
    const f = await ingestFixture(t, stack);
    const many = Array.from({ length: 1001 }, (_, i) => ({ profileId: "p", name: "x", id: `m${i}` }));
    const tooMany = await track(f, many);
    assert.equal(tooMany.statusCode, 413);
    assert.equal(tooMany.json<ErrorBody>().error.code, "RELAIS_HTTP_PAYLOAD_TOO_LARGE");
    const huge = await track(f, [{ profileId: "p", name: "x", attributes: { blob: "x".repeat(1024 * 1024) } }]);
    assert.equal(huge.statusCode, 413);
    const invalid = await track(f, [
      { profileId: "p", name: "ok", id: "fine" },
      { profileId: "p", name: "bad.name" },
    ]);
    assert.equal(invalid.statusCode, 400);
    assert.deepEqual(
      invalid.json<ErrorBody>().error.issues?.map((i) => i.path),
      ["body.events[1].name"],
    );
    assert.equal((await f.storedEvents()).length, 0);
    assert.equal((await view(f, "p")).statusCode, 404);
  });
});

describe("profile view and erase", () => {
  it("shows suppression and answers 404 for an unknown profile", async (t) => {
    const f = await ingestFixture(t, stack);
    await put(f, "zed", { email: "zed@example.com" });
    await f.store.suppress(f.namespace, "zed@example.com", "hard_bounce 5.1.1");
    const profile = (await view(f, "zed")).json<{ email: { suppressed: { reason: string } } }>();
    assert.equal(profile.email.suppressed.reason, "hard_bounce 5.1.1");
    const missing = await view(f, "nobody");
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json<ErrorBody>().error.code, "RELAIS_HTTP_NOT_FOUND");
  });

  it("erases a profile with its history and indexes, says what it removed, and tells engage", async (t) => {
    const f = await ingestFixture(t, stack);
    await put(f, "gone", {
      email: "gone@example.com",
      webPush: { add: [{ endpoint: "https://push.example/g", keys: { p256dh: "BBB", auth: "aaa" } }] },
    });
    await track(
      f,
      [1, 2].map((n) => ({ profileId: "gone", name: "viewed", id: `g${n}` })),
    );
    const response = await f.app.inject({
      method: "DELETE",
      url: "/v1/profiles/gone",
      headers: { authorization: f.auth },
    });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      id: "gone",
      erased: true,
      removed: { existed: true, events: 2, pushSubscriptions: 1, email: true },
    });
    assert.equal((await view(f, "gone")).statusCode, 404);
    assert.equal(await f.redis.exists(RedisKeys.profileEvents(f.namespace, "gone")), 0);
    assert.deepEqual(await f.redis.smembers(RedisKeys.emailIndex(f.namespace, "gone@example.com")), []);
    assert.equal(await f.redis.zscore(RedisKeys.activity(f.namespace), "gone"), null);
    const erasures = await readSubject(f.js, Streams.events, `relais.events.${f.namespace}.${ERASE_EVENT}`);
    assert.deepEqual(
      erasures.map((m) => m.data.profileId),
      ["gone"],
    );
    const again = await f.app.inject({
      method: "DELETE",
      url: "/v1/profiles/gone",
      headers: { authorization: f.auth },
    });
    assert.equal(again.statusCode, 404);
  });

  it("purges profiles inactive past the namespace's retention, in bounded batches", async (t) => {
    const f = await ingestFixture(t, stack);
    for (const id of ["old1", "old2", "old3", "fresh"]) await put(f, id, { attributes: { n: 1 } });
    const future = new Date(Date.now() + 31 * 24 * 3600 * 1000);
    await put(f, "fresh", { attributes: { n: 2 } });
    await f.redis.zadd(RedisKeys.activity(f.namespace), Date.now() + 30 * 24 * 3600 * 1000, "fresh");
    const deps = {
      store: f.store,
      service: f.service,
      metrics: f.metrics,
      log: createLogger({ name: "test", level: "silent" }),
    };
    const options = { retentionDays: { [f.namespace]: 1 }, intervalMs: 1000, batchSize: 2, now: () => future };
    assert.deepEqual(await purgeOnce(deps, options), { [f.namespace]: 2 });
    assert.deepEqual(await purgeOnce(deps, options), { [f.namespace]: 1 });
    assert.deepEqual(await purgeOnce(deps, options), { [f.namespace]: 0 });
    assert.equal((await view(f, "old1")).statusCode, 404);
    assert.equal((await view(f, "fresh")).statusCode, 200);
    const metrics = await f.metrics.registry.getSingleMetricAsString("relais_ingest_profiles_purged_total");
    assert.match(metrics, new RegExp(`relais_ingest_profiles_purged_total\\{namespace="${f.namespace}"\\} 3`));
  });
});

describe("the operational endpoints", () => {
  it("serve the OpenAPI document, health, readiness and metrics that promtool accepts", async (t) => {
    const f = await ingestFixture(t, stack);
    await track(f, [{ profileId: "m", name: "x" }]);
    const docs = (await f.app.inject({ url: "/docs/json" })).json<{ paths: Record<string, unknown> }>();
    assert.deepEqual(Object.keys(docs.paths).sort(), [
      "/v1/campaigns/{name}/preview",
      "/v1/campaigns/{name}/preview/refresh",
      "/v1/campaigns/{name}/runs",
      "/v1/campaigns/{name}/runs/{id}/report",
      "/v1/events",
      "/v1/profiles/{id}",
    ]);
    assert.equal((await f.app.inject({ url: "/healthz" })).statusCode, 200);
    assert.equal((await f.app.inject({ url: "/readyz" })).statusCode, 200);
    const metrics = (await f.app.inject({ url: "/metrics" })).body;
    assert.match(metrics, /relais_ingest_events_total\{namespace="[^"]+",outcome="accepted",reason=""\} 1/);
    assert.match(metrics, /relais_ingest_http_requests_total\{route="\/v1\/events",method="POST",status="202"\} 1/);
    if (hasTool("promtool")) {
      const check = promisify(execFile)(toolPath("promtool"), ["check", "metrics"]);
      check.child.stdin?.end(metrics);
      await check;
    }
  });

  it("serves on a real listener", async (t) => {
    const f = await ingestFixture(t, stack);
    const address = await f.app.listen({ host: "127.0.0.1", port: 0 });
    const response = await fetch(`${address}/v1/events`, {
      method: "POST",
      headers: { authorization: f.auth, "content-type": "application/json" },
      body: JSON.stringify({ events: [{ profileId: "real", name: "opened_app", id: "r1" }] }),
    });
    assert.equal(response.status, 202);
  });
});

describe("recipients' links", () => {
  const token = (f: IngestFixture, kind: "u" | "o" | "c", profileId: string, url?: string) =>
    signToken(TOKEN_SECRET, { kind, namespace: f.namespace, profileId, messageId: "msg-1", ...(url && { url }) });

  it("unsubscribe: the page never unsubscribes, the one-click POST does and reports it", async (t) => {
    const f = await ingestFixture(t, stack);
    await put(f, "una", { email: "una@example.com", emailSubscription: "subscribed" });
    const link = `/u/${token(f, "u", "una")}`;
    const page = await f.app.inject({ url: link });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /<form method="post">/);
    assert.equal((await view(f, "una")).json<{ email: { subscription: string } }>().email.subscription, "subscribed");
    const post = await f.app.inject({
      method: "POST",
      url: link,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "List-Unsubscribe=One-Click",
    });
    assert.equal(post.statusCode, 200);
    const profile = (await view(f, "una")).json<{ email: { subscription: string; history: { source: string }[] } }>();
    assert.equal(profile.email.subscription, "unsubscribed");
    assert.equal(profile.email.history[0]?.source, "one-click");
    const feedback = await readSubject(f.js, Streams.feedback, `relais.feedback.${f.namespace}.unsubscribed`);
    assert.deepEqual(
      feedback.map((m) => [m.data.profileId, m.data.messageId]),
      [["una", "msg-1"]],
    );
  });

  it("refuse forged, altered, or other-kind tokens, and never resurrect an erased profile", async (t) => {
    const f = await ingestFixture(t, stack);
    await put(f, "vic", { email: "vic@example.com", emailSubscription: "subscribed" });
    await put(f, "wes", { email: "wes@example.com", emailSubscription: "subscribed" });
    const good = token(f, "u", "vic");
    const [body = "", signature = ""] = good.split(".");
    const altered = Buffer.from(Buffer.from(body, "base64url").toString().replace('"vic"', '"wes"')).toString(
      "base64url",
    );
    const forged = signToken("another-secret-of-at-least-32-characters!!", {
      kind: "u",
      namespace: f.namespace,
      profileId: "wes",
    });
    for (const bad of [`${altered}.${signature}`, forged, token(f, "o", "wes"), "garbage", `${good}.extra`]) {
      const response = await f.app.inject({ method: "POST", url: `/u/${bad}` });
      assert.equal(response.statusCode, 404, bad);
    }
    assert.equal((await view(f, "wes")).json<{ email: { subscription: string } }>().email.subscription, "subscribed");
    await f.app.inject({ method: "DELETE", url: "/v1/profiles/vic", headers: { authorization: f.auth } });
    assert.equal((await f.app.inject({ method: "POST", url: `/u/${good}` })).statusCode, 200);
    assert.equal((await view(f, "vic")).statusCode, 404, "the erased profile stays erased");
  });

  it("open pixel and click redirect report their outcome; a click goes only where its token says", async (t) => {
    const f = await ingestFixture(t, stack);
    const pixel = await f.app.inject({ url: `/o/${token(f, "o", "olga")}` });
    assert.equal(pixel.statusCode, 200);
    assert.equal(pixel.headers["content-type"], "image/gif");
    const click = await f.app.inject({ url: `/c/${token(f, "c", "olga", "https://shop.example/sale?x=1")}` });
    assert.equal(click.statusCode, 302);
    assert.equal(click.headers.location, "https://shop.example/sale?x=1");
    assert.equal((await f.app.inject({ url: `/c/${token(f, "c", "olga", "javascript:alert(1)")}` })).statusCode, 404);
    assert.equal((await f.app.inject({ url: `/c/${token(f, "u", "olga")}` })).statusCode, 404);
    const opened = await readSubject(f.js, Streams.feedback, `relais.feedback.${f.namespace}.opened`);
    const clicked = await readSubject(f.js, Streams.feedback, `relais.feedback.${f.namespace}.clicked`);
    assert.equal(opened.length, 1);
    assert.deepEqual(
      clicked.map((m) => m.data.url),
      ["https://shop.example/sale?x=1"],
    );
  });
});
