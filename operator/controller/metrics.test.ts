import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { setImmediate as flush } from "node:timers/promises";
import { promisify } from "node:util";
import { Registry } from "prom-client";
import { hasTool, toolPath } from "#harness";
import { ManualClock } from "./clock.ts";
import { createControllerMetrics, queueMetricsHooks } from "./metrics.ts";
import { WorkQueue } from "./workqueue.ts";

describe("the operator's controller metrics", () => {
  it("count reconciles by kind and result, time them, and show the queue depth and leadership", async () => {
    const registry = new Registry();
    const metrics = createControllerMetrics(registry);
    const clock = new ManualClock();
    const queue = new WorkQueue({
      clock,
      concurrency: 1,
      baseBackoffMs: 10_000, // the failed key's retry falls after the test
      ...queueMetricsHooks(metrics),
      handler: async (key) => {
        clock.advance(250);
        if (key.startsWith("Campaign/")) throw new Error("template does not compile");
        return key.startsWith("Automation/") ? { requeueAfterMs: 60_000 } : undefined;
      },
    });
    const controller = new AbortController();
    const running = queue.run(controller.signal);
    queue.add("Sender/shop/mail");
    queue.add("Campaign/shop/black-friday");
    queue.add("Automation/shop/cart");
    for (let i = 0; i < 10; i++) await flush();
    metrics.leader.set(1);
    controller.abort();
    await running;

    const text = await registry.metrics();
    assert.match(text, /relais_operator_reconcile_total\{kind="Sender",result="success"\} 1/);
    assert.match(text, /relais_operator_reconcile_total\{kind="Campaign",result="error"\} 1/);
    assert.match(text, /relais_operator_reconcile_total\{kind="Automation",result="requeue"\} 1/);
    assert.match(text, /relais_operator_reconcile_total\{kind="Sender",result="error"\} 0/, "label sets start at 0");
    assert.match(text, /relais_operator_reconcile_duration_seconds_sum\{kind="Sender"\} 0\.25/);
    assert.match(text, /relais_operator_queue_depth 0/);
    assert.match(text, /relais_operator_leader 1/);
    if (hasTool("promtool")) {
      const check = promisify(execFile)(toolPath("promtool"), ["check", "metrics"]);
      check.child.stdin?.end(text);
      await check;
    }
  });
});
