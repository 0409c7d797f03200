import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { campaignJobId, campaignRunReport, parseCampaignJobId } from "./campaigns.ts";
import { Subjects } from "./subjects.ts";

describe("campaign job ids", () => {
  it("carry the campaign and run back from feedback, whatever the profile id holds", () => {
    const id = campaignJobId({
      campaign: "black-friday",
      runId: "20261127t090000z-3f9a",
      destination: "email",
      profileId: "a|b:c",
    });
    assert.deepEqual(parseCampaignJobId(id), { campaign: "black-friday", runId: "20261127t090000z-3f9a" });
  });

  it("are not confused with automation send ids", () => {
    assert.equal(parseCampaignJobId("reminder|ann|evt-1|send"), undefined);
    assert.equal(parseCampaignJobId("cmp||run|email|p"), undefined);
  });
});

describe("campaign subjects", () => {
  it("keep a dotted campaign name in one token, below the Sender's subject", () => {
    const subject = Subjects.campaignSend("shop", "mail", "black.friday", "r1");
    assert.equal(subject, "relais.sends.shop.mail.c.black_friday.r1");
    assert.ok(subject.startsWith(`${Subjects.send("shop", "mail")}.`));
  });
});

describe("campaignRunReport", () => {
  it("derives skipped totals and what is still in flight", () => {
    const report = campaignRunReport("r1", {
      status: "running",
      slot: String(Date.parse("2026-11-27T09:00:00Z")),
      targeted: "10",
      enqueued: "7",
      "skipped:optOut": "2",
      "skipped:duplicateEmail": "1",
      sent: "4",
      bounced: "1",
      opened: "3",
    });
    assert.equal(report.skippedTotal, 3);
    assert.deepEqual(report.skipped, { optOut: 2, duplicateEmail: 1 });
    assert.equal(report.inFlight, 2);
    assert.equal(report.outcomes.opened, 3);
    assert.equal(report.scheduledFor, "2026-11-27T09:00:00.000Z");
    assert.equal(report.targeted, report.enqueued + report.skippedTotal);
  });
});
