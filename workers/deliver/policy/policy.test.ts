import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inHoldout } from "#runtime";
import { remainingInWindowMs } from "./clock.ts";

const HOUR = 3_600_000;
const quiet = { start: "21:00", end: "08:00" };

describe("quiet hours in the recipient's zone", () => {
  it("holds a send at 23:30 in Paris until 08:00 in Paris", () => {
    // 22:30 UTC is 23:30 in Paris (UTC+1 in November).
    assert.equal(remainingInWindowMs(new Date("2026-11-27T22:30:00Z"), "Europe/Paris", quiet), 8.5 * HOUR);
  });

  it("holds a send at 23:30 in New York until New York's own 08:00", () => {
    // 04:30 UTC is 23:30 the evening before in New York (UTC-5).
    assert.equal(remainingInWindowMs(new Date("2026-11-28T04:30:00Z"), "America/New_York", quiet), 8.5 * HOUR);
    // The same instant is 05:30 in Paris: still quiet there, but only until 08:00.
    assert.equal(remainingInWindowMs(new Date("2026-11-28T04:30:00Z"), "Europe/Paris", quiet), 2.5 * HOUR);
  });

  it("lets a send outside the window go at once", () => {
    assert.equal(remainingInWindowMs(new Date("2026-11-27T12:00:00Z"), "Europe/Paris", quiet), 0);
    assert.equal(remainingInWindowMs(new Date("2026-11-27T07:00:00Z"), "Europe/Paris", quiet), 0);
    assert.equal(remainingInWindowMs(new Date("2026-11-27T19:59:00Z"), "Europe/Paris", quiet), 0);
    // 21:00 sharp in Paris starts the window: held for the whole night.
    assert.equal(remainingInWindowMs(new Date("2026-11-27T20:00:00Z"), "Europe/Paris", quiet), 11 * HOUR);
  });

  it("handles a window inside one day", () => {
    const lunch = { start: "12:00", end: "14:00" };
    assert.equal(remainingInWindowMs(new Date("2026-11-27T12:30:00Z"), "UTC", lunch), 1.5 * HOUR);
    assert.equal(remainingInWindowMs(new Date("2026-11-27T14:00:00Z"), "UTC", lunch), 0);
  });

  it("ends at the named local time across a DST change", () => {
    // Paris springs forward on 2026-03-29 at 02:00: 23:00 → 08:00 is 8 real hours, not 9.
    assert.equal(remainingInWindowMs(new Date("2026-03-28T22:00:00Z"), "Europe/Paris", quiet), 8 * HOUR);
    // And falls back on 2026-10-25 at 03:00: 23:00 → 08:00 is 10 real hours.
    assert.equal(remainingInWindowMs(new Date("2026-10-24T21:00:00Z"), "Europe/Paris", quiet), 10 * HOUR);
  });
});

describe("holdout groups", () => {
  it("assign about the percentage, within 1 %, over 100,000 profiles", () => {
    let held = 0;
    for (let i = 0; i < 100_000; i++) if (inHoldout("black-friday", `profile-${i}`, 10)) held += 1;
    assert.ok(Math.abs(held / 100_000 - 0.1) < 0.01, `held out ${held} of 100,000 for 10 %`);
  });

  it("are stable for a profile and differ between campaigns", () => {
    const members = (campaign: string) =>
      Array.from({ length: 1000 }, (_, i) => `p${i}`).filter((id) => inHoldout(campaign, id, 20));
    assert.deepEqual(members("weekly"), members("weekly"));
    assert.notDeepEqual(members("weekly"), members("monthly"));
  });

  it("hold nobody out at 0 % or when unset, and everybody at 100 %", () => {
    assert.equal(inHoldout("c", "p", 0), false);
    assert.equal(inHoldout("c", "p", undefined), false);
    assert.equal(inHoldout("c", "p", 100), true);
  });
});
