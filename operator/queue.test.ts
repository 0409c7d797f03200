import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createWorkQueue } from "./queue.ts";
import type { WorkResult } from "./queue.ts";

const done: WorkResult = { kind: "done" };

/** Resolves when `check` holds (polled every millisecond, for at most 2 s). */
async function settle(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(check(), "condition never held");
}

describe("work queue", () => {
  it("reconciles a key added many times once, and never runs one key twice at once", async () => {
    const queue = createWorkQueue({ concurrency: 4, baseBackoffMs: 1, maxBackoffMs: 1 });
    const calls: string[] = [];
    let running = 0;
    let overlap = false;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const stop = new AbortController();
    const run = queue.run(async (key) => {
      running++;
      overlap ||= running > 1;
      calls.push(key);
      if (calls.length === 1) await gate;
      running--;
      return done;
    }, stop.signal);
    queue.add("a");
    queue.add("a");
    await settle(() => calls.length === 1);
    // Added while running: runs once more afterwards, not concurrently.
    queue.add("a");
    queue.add("a");
    release();
    await settle(() => calls.length === 2 && queue.depth === 0);
    stop.abort();
    await run;
    assert.deepEqual(calls, ["a", "a"]);
    assert.equal(overlap, false);
  });

  it("retries a failing key with growing backoff and reports the error", async () => {
    const errors: string[] = [];
    const at: number[] = [];
    const failing = createWorkQueue({
      concurrency: 1,
      baseBackoffMs: 5,
      maxBackoffMs: 20,
      onError: (key) => {
        errors.push(key);
      },
    });
    const stop = new AbortController();
    const run = failing.run(async (key) => {
      at.push(Date.now());
      if (at.length < 4) throw new Error(`fail ${key}`);
      return done;
    }, stop.signal);
    failing.add("b");
    await settle(() => at.length === 4);
    stop.abort();
    await run;
    assert.deepEqual(errors, ["b", "b", "b"]);
    assert.equal(failing.depth, 0);
    // Backoff 5, 10, 20 ms, each jittered down to no less than half.
    const gaps = at.slice(1).map((time, index) => time - (at[index] ?? 0));
    assert.ok((gaps[2] ?? 0) >= 9, `third retry waited ${gaps[2]} ms`);
  });
});
