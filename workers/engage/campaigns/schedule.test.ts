import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { campaignSpecSchema } from "#crds";
import { dueRun, runIdFor } from "./schedule.ts";
import type { ScheduleState } from "./schedule.ts";

const spec = (schedule?: unknown) =>
  campaignSpecSchema.parse({
    senderRef: { name: "mail" },
    message: { email: { subject: "s", html: "<p>h</p>" } },
    ...(schedule !== undefined && { schedule }),
  });
const at = (iso: string) => Date.parse(iso);
const fresh = (since: string): ScheduleState => ({
  since: at(since),
  onceDone: false,
  atDone: undefined,
  lastSlot: undefined,
});

describe("dueRun", () => {
  it("runs a campaign without a schedule once", () => {
    const now = at("2026-11-27T10:00:00Z");
    assert.deepEqual(dueRun(spec(), fresh("2026-11-27T10:00:00Z"), now), {
      kind: "run",
      slot: now,
      remember: { onceDone: "1" },
    });
    assert.equal(dueRun(spec(), { ...fresh("2026-11-27T10:00:00Z"), onceDone: true }, now).kind, "none");
  });

  it("runs at its time, once, and again when at changes", () => {
    const s = spec({ at: "2026-11-27T12:00:00Z" });
    assert.deepEqual(dueRun(s, fresh("2026-11-27T10:00:00Z"), at("2026-11-27T11:59:59Z")), {
      kind: "none",
      nextAt: at("2026-11-27T12:00:00Z"),
    });
    const due = dueRun(s, fresh("2026-11-27T10:00:00Z"), at("2026-11-27T12:00:00Z"));
    assert.deepEqual(due, {
      kind: "run",
      slot: at("2026-11-27T12:00:00Z"),
      remember: { atDone: String(at("2026-11-27T12:00:00Z")) },
    });
    const done = { ...fresh("2026-11-27T10:00:00Z"), atDone: at("2026-11-27T12:00:00Z") };
    assert.equal(dueRun(s, done, at("2026-11-28T00:00:00Z")).kind, "none");
    assert.equal(dueRun(spec({ at: "2026-11-27T13:00:00Z" }), done, at("2026-11-27T13:00:00Z")).kind, "run");
  });

  it("keeps recurring slots in the time zone across both DST changes", () => {
    const s = spec({ recurring: { cron: "30 2 * * *", timeZone: "Europe/Paris" } });
    // 02:30 does not exist on 29 March 2026 in Paris: the run is at 03:00 local (01:00 UTC).
    const spring = dueRun(s, { ...fresh("2026-03-28T12:00:00Z") }, at("2026-03-29T01:00:00Z"));
    assert.deepEqual(spring, {
      kind: "run",
      slot: at("2026-03-29T01:00:00Z"),
      remember: { lastSlot: String(at("2026-03-29T01:00:00Z")) },
    });
    // 02:30 happens twice on 25 October 2026: one run, at the first.
    const first = at("2026-10-25T00:30:00Z");
    assert.equal(dueRun(s, fresh("2026-10-24T12:00:00Z"), first).kind, "run");
    assert.deepEqual(dueRun(s, { ...fresh("2026-10-24T12:00:00Z"), lastSlot: first }, at("2026-10-25T01:30:00Z")), {
      kind: "none",
      nextAt: at("2026-10-26T01:30:00Z"),
    });
  });

  it("runs missed slots once, for the latest, and nothing outside startAt..endAt", () => {
    const s = spec({
      recurring: { cron: "0 * * * *", startAt: "2026-11-27T12:00:00Z", endAt: "2026-11-27T18:00:00Z" },
    });
    const since = fresh("2026-11-27T08:00:00Z");
    assert.deepEqual(dueRun(s, since, at("2026-11-27T11:59:00Z")), {
      kind: "none",
      nextAt: at("2026-11-27T12:00:00Z"),
    });
    assert.equal((dueRun(s, since, at("2026-11-27T15:10:00Z")) as { slot: number }).slot, at("2026-11-27T15:00:00Z"));
    const afterEnd = dueRun(s, { ...since, lastSlot: at("2026-11-27T15:00:00Z") }, at("2026-11-28T09:00:00Z"));
    assert.equal((afterEnd as { slot: number }).slot, at("2026-11-27T18:00:00Z"));
    assert.deepEqual(dueRun(s, { ...since, lastSlot: at("2026-11-27T18:00:00Z") }, at("2026-11-28T09:00:00Z")), {
      kind: "none",
      nextAt: undefined,
    });
  });

  it("does not run the slots that passed before the campaign existed", () => {
    const s = spec({ recurring: { cron: "@daily" } });
    assert.deepEqual(dueRun(s, fresh("2026-11-27T10:00:00Z"), at("2026-11-27T10:00:01Z")), {
      kind: "none",
      nextAt: at("2026-11-28T00:00:00Z"),
    });
  });
});

describe("dueRun with localTime", () => {
  it("starts the run of an at day when its local time arrives at UTC+14, in the fallback zone UTC", () => {
    const s = spec({ at: "2026-11-27T00:00:00+01:00", localTime: "09:00" });
    const start = at("2026-11-26T19:00:00Z");
    assert.deepEqual(dueRun(s, fresh("2026-11-20T00:00:00Z"), start - 1), { kind: "none", nextAt: start });
    assert.deepEqual(dueRun(s, fresh("2026-11-20T00:00:00Z"), start), {
      kind: "run",
      slot: start,
      remember: { atDone: String(at("2026-11-27T00:00:00+01:00")) },
      local: { day: "2026-11-27", time: "09:00", fallbackZone: "UTC" },
    });
    const done = { ...fresh("2026-11-20T00:00:00Z"), atDone: at("2026-11-27T00:00:00+01:00") };
    assert.equal(dueRun(s, done, at("2026-11-28T00:00:00Z")).kind, "none");
  });

  it("runs a recurring campaign once per day its cron fires, before the slot itself", () => {
    // Mondays in Paris; the fallback zone defaults to the cron's.
    const s = spec({ recurring: { cron: "0 9 * * 1", timeZone: "Europe/Paris" }, localTime: "09:00" });
    const since = fresh("2026-11-27T10:00:00Z");
    // Monday 30 November 2026: the run starts on Sunday at 19:00 UTC (09:00 at UTC+14).
    assert.deepEqual(dueRun(s, since, at("2026-11-27T12:00:00Z")), {
      kind: "none",
      nextAt: at("2026-11-29T19:00:00Z"),
    });
    const due = dueRun(s, since, at("2026-11-29T19:00:00Z"));
    assert.deepEqual(due, {
      kind: "run",
      slot: at("2026-11-29T19:00:00Z"),
      remember: { lastSlot: String(at("2026-11-30T08:00:00Z")) },
      local: { day: "2026-11-30", time: "09:00", fallbackZone: "Europe/Paris" },
    });
    const ran = { ...since, lastSlot: at("2026-11-30T08:00:00Z") };
    assert.deepEqual(dueRun(s, ran, at("2026-11-30T20:00:00Z")), {
      kind: "none",
      nextAt: at("2026-12-06T19:00:00Z"),
    });
  });

  it("an hourly cron still makes one run per day, with fallbackTimeZone as given", () => {
    const s = spec({
      recurring: { cron: "0 * * * *", timeZone: "UTC" },
      localTime: "08:30",
      fallbackTimeZone: "Asia/Tokyo",
    });
    const since = fresh("2026-11-27T10:00:00Z");
    const due = dueRun(s, since, at("2026-11-27T18:30:00Z"));
    assert.ok(due.kind === "run");
    assert.deepEqual(due.local, { day: "2026-11-28", time: "08:30", fallbackZone: "Asia/Tokyo" });
    const lastSlot = Number(due.remember.lastSlot);
    assert.equal(localDay(lastSlot), "2026-11-28");
    assert.deepEqual(dueRun(s, { ...since, lastSlot }, at("2026-11-28T12:00:00Z")), {
      kind: "none",
      nextAt: at("2026-11-28T18:30:00Z"),
    });
  });
});

const localDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe("runIdFor", () => {
  it("is sortable by slot and usable in a NATS subject token", () => {
    assert.equal(runIdFor(at("2026-11-27T09:00:00Z"), "3f9a"), "20261127t090000z-3f9a");
  });
});
