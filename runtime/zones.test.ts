import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { localDate, localSeconds, recipientZone, zonedInstant } from "./zones.ts";

const iso = (ms: number) => new Date(ms).toISOString();

describe("zonedInstant", () => {
  it("names the instant of a local date and time in each zone", () => {
    assert.equal(iso(zonedInstant("2026-11-27", "09:00", "Asia/Tokyo")), "2026-11-27T00:00:00.000Z");
    assert.equal(iso(zonedInstant("2026-11-27", "09:00", "Europe/Paris")), "2026-11-27T08:00:00.000Z");
    assert.equal(iso(zonedInstant("2026-11-27", "09:00", "America/New_York")), "2026-11-27T14:00:00.000Z");
    assert.equal(iso(zonedInstant("2026-11-27", "09:00", "Pacific/Kiritimati")), "2026-11-26T19:00:00.000Z");
    assert.equal(iso(zonedInstant("2026-07-01", "09:00", "Europe/Paris")), "2026-07-01T07:00:00.000Z");
    assert.equal(iso(zonedInstant("2026-11-27", "09:00", "Asia/Kolkata")), "2026-11-27T03:30:00.000Z");
  });

  it("moves a time the clocks skip forward by the gap, and takes the first of a repeated one", () => {
    // Paris, 29 March 2026: 02:00 → 03:00. 25 October 2026: 03:00 → 02:00.
    assert.equal(iso(zonedInstant("2026-03-29", "02:30", "Europe/Paris")), "2026-03-29T01:30:00.000Z");
    assert.equal(localSeconds(new Date("2026-03-29T01:30:00Z"), "Europe/Paris"), 3.5 * 3600);
    assert.equal(iso(zonedInstant("2026-10-25", "02:30", "Europe/Paris")), "2026-10-25T00:30:00.000Z");
    assert.equal(iso(zonedInstant("2026-03-08", "02:30", "America/New_York")), "2026-03-08T07:30:00.000Z");
  });

  it("reads the local date of an instant", () => {
    assert.equal(localDate(new Date("2026-11-27T23:30:00Z"), "Asia/Tokyo"), "2026-11-28");
    assert.equal(localDate(new Date("2026-11-27T03:30:00Z"), "America/New_York"), "2026-11-26");
  });

  it("uses the profile's zone when Intl knows it, else the fallback", () => {
    assert.equal(recipientZone("Asia/Tokyo", "UTC"), "Asia/Tokyo");
    assert.equal(recipientZone("Mars/Olympus", "Europe/Paris"), "Europe/Paris");
    assert.equal(recipientZone(null, "UTC"), "UTC");
    assert.equal(recipientZone("", "UTC"), "UTC");
  });
});
