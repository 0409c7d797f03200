// The thin path through the whole product: an event in over HTTP, an Automation fires, the
// Sender's pool delivers to a real SMTP server, and the outcome shows in metrics and counters.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { automationSpecSchema } from "#crds";
import { AutomationStore, runEngage } from "#engage";
import { defer, hasTool, startSmtpSink, toolPath, useStack, waitUntil } from "#harness";
import { ConfigKeys, createLogger } from "#runtime";
import { deliverFixture } from "../fixtures/deliver.ts";
import { ingestFixture } from "../fixtures/ingest.ts";

const stack = useStack(["nats", "redis"]);

describe("event to inbox", () => {
  it("delivers a welcome email triggered by an event sent over HTTP, and counts it", async (t) => {
    const sink = await startSmtpSink({ tls: "none" });
    defer(t, () => sink.stop());
    const ingest = await ingestFixture(t, stack);
    const namespace = ingest.namespace;
    const pool = await deliverFixture(t, stack, {
      namespace,
      senderSpec: {
        channel: "email",
        email: {
          from: { address: "hello@shop.example" },
          transport: { smtp: { host: "127.0.0.1", port: sink.port, tls: "none" } },
        },
      },
    });
    const spec = automationSpecSchema.parse({
      senderRef: { name: pool.sender },
      trigger: { event: "signed_up", filter: 'event.attributes.plan == "pro"' },
      message: {
        email: {
          subject: "Welcome, {{ profile.attributes.firstName }}",
          html: "<p>Your {{ trigger.attributes.plan }} plan is ready.</p>",
        },
      },
    });
    await pool.kv.put(ConfigKeys.of(namespace, "Automation", "welcome"), JSON.stringify({ generation: 1, spec }));

    const engage = new AbortController();
    let engageUrl = "";
    const running = runEngage(
      { RELAIS_NATS_URL: stack.natsUrl, RELAIS_REDIS_URL: stack.redisUrl, RELAIS_HOST: "127.0.0.1", RELAIS_PORT: "0" },
      engage.signal,
      {
        log: createLogger({ name: "engage-e2e", level: "silent" }),
        onListening: (url) => {
          engageUrl = url;
        },
      },
    );
    defer(t, async () => {
      engage.abort();
      await running;
    });
    // The engine watches the KV; give it the automation before the event arrives.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const put = await ingest.app.inject({
      method: "PUT",
      url: "/v1/profiles/zoe",
      headers: { authorization: ingest.auth },
      payload: { email: "zoe@example.com", emailSubscription: "subscribed", attributes: { firstName: "Zoe" } },
    });
    assert.equal(put.statusCode, 201);
    const started = Date.now();
    const tracked = await ingest.app.inject({
      method: "POST",
      url: "/v1/events",
      headers: { authorization: ingest.auth },
      payload: {
        events: [
          { profileId: "zoe", name: "signed_up", id: "e-pro", attributes: { plan: "pro" } },
          { profileId: "zoe", name: "signed_up", id: "e-free", attributes: { plan: "free" } },
        ],
      },
    });
    assert.equal(tracked.statusCode, 202);

    const mail = (await sink.waitFor(1, 15_000))[0];
    t.diagnostic(`event accepted to email received: ${Date.now() - started} ms`);
    assert.ok(mail);
    assert.equal(mail.subject, "Welcome, Zoe");
    assert.match(mail.html ?? "", /Your pro plan is ready/);
    assert.deepEqual(mail.envelope.to, ["zoe@example.com"]);
    await pool.waitForOutcome("sent", 1);
    const counters = new AutomationStore(pool.redis);
    const settled = await waitUntil(async () => (await counters.stats(namespace, "welcome")).sent === 1, {
      timeoutMs: 5000,
    });
    assert.equal(settled, "");
    assert.deepEqual(await counters.stats(namespace, "welcome"), { triggered: 1, waiting: 0, sent: 1, filteredOut: 1 });
    assert.equal(sink.received.length, 1, "the free plan did not pass the filter");
    const metrics = await (await fetch(`${engageUrl}/metrics`)).text();
    const series = (outcome: string) =>
      new RegExp(
        `relais_engage_automation_instances_total\\{namespace="${namespace}",automation="welcome",outcome="${outcome}"\\} 1`,
      );
    assert.match(metrics, series("sent"));
    assert.match(metrics, series("filtered_out"));
    assert.match(
      metrics,
      new RegExp(`relais_engage_automation_waiting_instances\\{namespace="${namespace}",automation="welcome"\\} 0`),
    );
    if (hasTool("promtool")) {
      const check = promisify(execFile)(toolPath("promtool"), ["check", "metrics"]);
      check.child.stdin?.end(metrics);
      await check;
    }
  });
});
