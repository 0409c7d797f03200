import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as flush } from "node:timers/promises";
import { ManualClock } from "./clock.ts";
import { TokenBucket, WorkQueue, backoffMs } from "./workqueue.ts";
import type { HandlerResult, WorkQueueOptions } from "./workqueue.ts";

/** Lets every pending promise callback run (the queue's workers are async). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await flush();
}

interface Gate {
  release(result?: HandlerResult): void;
  fail(error: Error): void;
}

/** A queue whose handler calls wait until the test releases them, recording what ran. */
function harness(options: Partial<WorkQueueOptions> = {}) {
  const clock = new ManualClock(1_000_000);
  const calls: string[] = [];
  const running = new Map<string, Gate[]>();
  let maxConcurrentSameKey = 0;
  const depths: number[] = [];
  const queue = new WorkQueue({
    clock,
    random: () => 0,
    concurrency: 4,
    onDepth: (depth) => depths.push(depth),
    handler: (key) =>
      new Promise<HandlerResult>((resolve, reject) => {
        calls.push(key);
        const gates = running.get(key) ?? [];
        const gate: Gate = {
          release: (result) => {
            gates.splice(gates.indexOf(gate), 1);
            resolve(result);
          },
          fail: (error) => {
            gates.splice(gates.indexOf(gate), 1);
            reject(error);
          },
        };
        gates.push(gate);
        running.set(key, gates);
        maxConcurrentSameKey = Math.max(maxConcurrentSameKey, gates.length);
      }),
    ...options,
  });
  const controller = new AbortController();
  const done = queue.run(controller.signal);
  const gate = (key: string): Gate => {
    const first = running.get(key)?.[0];
    assert.ok(first, `${key} is not being reconciled`);
    return first;
  };
  return {
    clock,
    queue,
    calls,
    depths,
    gate,
    maxConcurrentSameKey: () => maxConcurrentSameKey,
    stop: async () => {
      controller.abort();
      for (const gates of running.values()) for (const g of [...gates]) g.release();
      await done;
    },
  };
}

describe("the work queue", () => {
  it("reconciles a key added several times while it waits only once", async () => {
    const q = harness({ concurrency: 1 });
    q.queue.add("a");
    q.queue.add("b");
    q.queue.add("b");
    q.queue.add("b");
    await settle();
    q.gate("a").release();
    await settle();
    q.gate("b").release();
    await settle();
    assert.deepEqual(q.calls, ["a", "b"]);
    await q.stop();
  });

  it("never reconciles one key twice at once, and runs it again when it changed meanwhile", async () => {
    const q = harness();
    q.queue.add("a");
    await settle();
    q.queue.add("a");
    q.queue.add("a");
    q.queue.add("b");
    await settle();
    assert.deepEqual(q.calls, ["a", "b"], "b runs beside a; the second a waits for the first");
    q.gate("a").release();
    await settle();
    assert.deepEqual(q.calls, ["a", "b", "a"]);
    q.gate("a").release();
    q.gate("b").release();
    await settle();
    assert.equal(q.calls.length, 3, "one change during a reconcile means one more reconcile");
    assert.equal(q.maxConcurrentSameKey(), 1);
    await q.stop();
  });

  it("backs a failing key off exponentially and forgets its failures once it succeeds", async () => {
    const q = harness({ baseBackoffMs: 100 });
    q.queue.add("a");
    await settle();
    const times: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      times.push(q.clock.now());
      q.gate("a").fail(new Error("apiserver unavailable"));
      await settle();
      assert.equal(q.queue.failures("a"), attempt);
      const expected = 50 * 2 ** (attempt - 1); // random 0: half of 100, 200, 400
      q.clock.advance(expected - 1);
      await settle();
      assert.equal(q.calls.length, attempt, `retry ${attempt} came before ${expected} ms`);
      q.clock.advance(1);
      await settle();
      assert.equal(q.calls.length, attempt + 1, `retry ${attempt} did not come at ${expected} ms`);
    }
    q.gate("a").release();
    await settle();
    assert.equal(q.queue.failures("a"), 0);
    await q.stop();
  });

  it("comes back to a key after the delay its reconciler asked for, not before", async () => {
    const q = harness();
    q.queue.add("a");
    await settle();
    q.gate("a").release({ requeueAfterMs: 5000 });
    await settle();
    q.clock.advance(4999);
    await settle();
    assert.equal(q.calls.length, 1);
    q.clock.advance(1);
    await settle();
    assert.equal(q.calls.length, 2);
    await q.stop();
  });

  it("keeps the earliest of two delayed re-adds of a key", async () => {
    const q = harness();
    q.queue.addAfter("a", 10_000);
    q.queue.addAfter("a", 1_000);
    q.queue.addAfter("a", 20_000);
    q.clock.advance(1_000);
    await settle();
    assert.deepEqual(q.calls, ["a"]);
    q.gate("a").release();
    q.clock.advance(30_000);
    await settle();
    assert.deepEqual(q.calls, ["a"], "the later re-adds were merged into the first");
    await q.stop();
  });

  it("re-adds every known key on each resync", async () => {
    const q = harness({ resyncMs: 60_000, resyncKeys: () => ["a", "b"] });
    q.clock.advance(59_999);
    await settle();
    assert.deepEqual(q.calls, []);
    q.clock.advance(1);
    await settle();
    assert.deepEqual(q.calls.sort(), ["a", "b"]);
    await q.stop();
  });

  it("reports its depth as keys wait and are taken", async () => {
    const q = harness({ concurrency: 1 });
    q.queue.add("a");
    q.queue.add("b");
    q.queue.add("c");
    await settle();
    assert.equal(q.queue.depth, 2);
    assert.equal(q.depths.at(-1), 2);
    q.gate("a").release();
    await settle();
    assert.equal(q.depths.at(-1), 1);
    await q.stop();
    assert.equal(q.depths.at(-1), 0);
  });

  it("waits for reconciles in flight when stopped, and takes no new key", async () => {
    const q = harness();
    q.queue.add("a");
    await settle();
    let finished = false;
    const stopped = (async () => {
      await q.stop();
      finished = true;
    })();
    q.queue.add("b");
    await stopped;
    assert.ok(finished);
    assert.deepEqual(q.calls, ["a"]);
  });
});

describe("backoff and rate limiting", () => {
  it("doubles the delay per failure up to the cap, jittered between half and all of it", () => {
    const options = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffMs(1, { ...options, random: () => 0 }), 50);
    assert.equal(backoffMs(3, { ...options, random: () => 0.999_999 }), 400);
    assert.equal(backoffMs(10, { ...options, random: () => 0.999_999 }), 1000);
    assert.equal(backoffMs(200, { ...options, random: () => 0 }), 500);
  });

  it("lets a burst through at once, then spaces re-adds at the rate", () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 2, clock });
    assert.deepEqual([bucket.reserve(), bucket.reserve(), bucket.reserve(), bucket.reserve()], [0, 0, 100, 200]);
    clock.advance(1000);
    assert.equal(bucket.reserve(), 0);
  });

  it("delays a requeue-after past the bucket when re-adds come too fast", async () => {
    const q = harness({ requeueRatePerSecond: 1, requeueBurst: 1 });
    q.queue.addRateLimited("a", 10);
    q.queue.addRateLimited("b", 10);
    q.clock.advance(10);
    await settle();
    assert.deepEqual(q.calls, ["a"]);
    q.clock.advance(990);
    await settle();
    assert.deepEqual(q.calls, ["a", "b"]);
    await q.stop();
  });
});
