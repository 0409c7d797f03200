// The autoscaler with a real backlog: jobs published into a Sender's subject scale its pool up to
// ceil(lag / targetLagPerReplica) at once, and back down once drained and the window has passed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { ProfileStore } from "#ingest";
import { defer, hasTool, startSmtpSink, toolPath, useStack, waitUntil } from "#harness";
import { deliverPool } from "#operator";
import { connectRedis, sendMessageId, Subjects } from "#runtime";
import type { SendJob } from "#runtime";
import { operatorFixture } from "../../fixtures/operator.ts";

const stack = useStack(["nats", "redis"]);

const BACKLOG = 300;
const TARGET = 100;
const WINDOW_MS = 5000;

describe("autoscaler", () => {
  it("scales a Sender's pool from zero to ceil(lag / target) within 10 s, and back to zero after the window", async (t) => {
    const sink = await startSmtpSink({ tls: "none" });
    defer(t, () => sink.stop());
    const op = await operatorFixture(t, stack, { stabilizationWindowMs: WINDOW_MS, autoscaleIntervalMs: 500 });
    await op.write(
      "sender.yaml",
      `apiVersion: relais.dev/v1alpha1
kind: Sender
metadata:
  name: mail
spec:
  channel: email
  email:
    from:
      address: shop@example.com
    transport:
      smtp:
        host: 127.0.0.1
        port: ${sink.port}
        tls: none
  rateLimit:
    perSecond: 25
  pool:
    minReplicas: 0
    maxReplicas: 5
    targetLagPerReplica: ${TARGET}
---
apiVersion: relais.dev/v1alpha1
kind: Campaign
metadata:
  name: promo
spec:
  senderRef:
    name: mail
  audience:
    segment: profile.attributes.country == "FR"
  message:
    email:
      subject: Promo
      html: <p>-20%</p>
`,
    );
    // The Campaign can be ready before the Sender's reconcile has created the pool: wait for both.
    await op.waitForReady("Campaign", "promo", (ready) => ready.status === "True");
    await op.waitForReady("Sender", "mail", (ready) => ready.status === "True");
    const pool = deliverPool(op.namespace, "mail");
    assert.deepEqual(await op.pools.state(pool), { desiredReplicas: 0, readyReplicas: 0 }, "idle at zero");
    const redis = connectRedis(stack.redisUrl, "autoscaler-test");
    defer(t, () => redis.quit());
    await new ProfileStore(redis).identify(op.namespace, "ann", { email: "ann@example.com" });

    const started = Date.now();
    const publishes: Promise<unknown>[] = [];
    for (let index = 0; index < BACKLOG; index++) {
      const job: SendJob = {
        id: `promo-${index}`,
        namespace: op.namespace,
        sender: "mail",
        profileId: "ann",
        source: { kind: "Campaign", name: "promo", runId: "r1" },
        transactional: true,
        createdAt: new Date().toISOString(),
      };
      publishes.push(
        op.js.publish(Subjects.send(op.namespace, "mail"), JSON.stringify(job), {
          msgID: sendMessageId(op.namespace, job.id),
        }),
      );
    }
    await Promise.all(publishes);
    const expected = Math.ceil(BACKLOG / TARGET);
    let peak = 0;
    const scaledUp = await waitUntil(
      async () => {
        peak = Math.max(peak, (await op.pools.state(pool))?.desiredReplicas ?? 0);
        return peak >= expected;
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    const upMs = Date.now() - started;
    assert.equal(scaledUp, "", `scaled to ${expected} within 10 s (reached ${peak})`);
    const metrics = await (await fetch(`${op.opsUrl}/metrics`)).text();
    const labels = `namespace="${op.namespace}",pool="deliver-mail"`;
    assert.match(metrics, new RegExp(`relais_pool_replicas\\{${labels}\\} ${expected}`));
    assert.match(metrics, new RegExp(`relais_pool_lag_messages\\{${labels}\\} [1-9]\\d*`));
    if (hasTool("promtool")) {
      const check = promisify(execFile)(toolPath("promtool"), ["check", "metrics"]);
      check.child.stdin?.end(metrics);
      await check;
    }

    await sink.waitFor(BACKLOG, 60_000);
    const drainedMs = Date.now() - started;
    const down = await waitUntil(async () => (await op.pools.state(pool))?.desiredReplicas === 0, {
      timeoutMs: WINDOW_MS + 10_000,
      intervalMs: 100,
    });
    const downMs = Date.now() - started;
    assert.equal(down, "", "back to zero once drained and the window passed");
    assert.ok(downMs - drainedMs >= WINDOW_MS - 1000, "not before the stabilisation window");
    assert.equal(peak, expected, "never above ceil(lag / target)");
    t.diagnostic(
      `backlog ${BACKLOG}, target ${TARGET}/replica: 0 -> ${expected} replicas in ${upMs} ms; ` +
        `drained (rate 25/s) at ${drainedMs} ms; back to 0 at ${downMs} ms (window ${WINDOW_MS} ms)`,
    );
  });
});
