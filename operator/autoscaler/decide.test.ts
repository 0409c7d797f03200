import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decide, recommend } from "./decide.ts";
import type { Recommendation, ScalePolicy } from "./decide.ts";

const policy: ScalePolicy = {
  minReplicas: 1,
  maxReplicas: 10,
  targetLagPerReplica: 100,
  stabilizationWindowMs: 60_000,
};

/** Runs rounds of the decision with a fake clock, as the autoscaler's loop does. */
function rounds(p: ScalePolicy, steps: { at: number; lag: number }[], start = p.minReplicas): number[] {
  let current = start;
  let history: Recommendation[] = [];
  return steps.map(({ at, lag }) => {
    const decision = decide({ policy: p, lag, current, history, now: at });
    history = decision.history;
    current = decision.replicas;
    return current;
  });
}

describe("autoscaler decision", () => {
  it("asks for ceil(lag / target) replicas within min and max", () => {
    assert.equal(recommend(policy, 0), 1);
    assert.equal(recommend(policy, 1), 1);
    assert.equal(recommend(policy, 101), 2);
    assert.equal(recommend(policy, 950), 10);
    assert.equal(recommend(policy, 1_000_000), 10);
  });

  it("scales up at once", () => {
    assert.deepEqual(rounds(policy, [{ at: 0, lag: 450 }]), [5]);
  });

  it("scales down only after the stabilisation window", () => {
    const steps = [
      { at: 0, lag: 800 },
      { at: 5_000, lag: 0 },
      { at: 30_000, lag: 0 },
      { at: 59_000, lag: 0 },
      { at: 60_001, lag: 0 },
    ];
    assert.deepEqual(rounds(policy, steps), [8, 8, 8, 8, 1]);
  });

  it("scales down to the highest recommendation seen within the window", () => {
    const steps = [
      { at: 0, lag: 800 },
      { at: 30_000, lag: 300 },
      { at: 61_000, lag: 0 },
      { at: 91_000, lag: 0 },
    ];
    // At 61 s the 800 has left the window but the 300 (3 replicas) has not.
    assert.deepEqual(rounds(policy, steps), [8, 8, 3, 1]);
  });

  it("scales an idle pool to zero when minReplicas is 0, and back up on the first message", () => {
    const zero = { ...policy, minReplicas: 0 };
    const steps = [
      { at: 0, lag: 0 },
      { at: 60_001, lag: 0 },
      { at: 61_000, lag: 1 },
    ];
    assert.deepEqual(rounds(zero, steps, 1), [1, 0, 1]);
  });

  it("keeps a fixed replica count whatever the lag", () => {
    const fixed = { ...policy, fixedReplicas: 3 };
    assert.deepEqual(
      rounds(fixed, [
        { at: 0, lag: 10_000 },
        { at: 1, lag: 0 },
      ]),
      [3, 3],
    );
  });

  it("interrupts a scale-down when lag rises again within the window", () => {
    const steps = [
      { at: 0, lag: 500 },
      { at: 10_000, lag: 0 },
      { at: 20_000, lag: 700 },
    ];
    assert.deepEqual(rounds(policy, steps), [5, 5, 7]);
  });
});
