// A campaign run end to end: planned by the campaign runner, delivered by a real deliver pool to the
// SMTP sink, outcomes counted from RELAIS_FEEDBACK into the run's report, read back through the
// ingest API as JSON and CSV, and exported as metrics.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { it } from "node:test";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { campaignFeedbackConsumer } from "#engage";
import { defer, hasTool, startSmtpSink, toolPath, useStack, waitUntil } from "#harness";
import { createLogger, readCampaignStatusSummary } from "#runtime";
import { campaignFixture } from "../fixtures/campaigns.ts";
import { deliverFixture } from "../fixtures/deliver.ts";
import { ingestFixture } from "../fixtures/ingest.ts";

const stack = useStack(["nats", "redis"]);

/** A deliver pool on an SMTP sink, the campaign runner, and the feedback consumer that fills reports. */
async function reportSetup(t: TestContext) {
  const sink = await startSmtpSink({ tls: "none" });
  defer(t, () => sink.stop());
  const pool = await deliverFixture(t, stack, {
    senderSpec: {
      channel: "email",
      email: {
        from: { address: "news@shop.example" },
        transport: { smtp: { host: "127.0.0.1", port: sink.port, tls: "none" } },
      },
      pool: { concurrency: 8 },
    },
  });
  const f = await campaignFixture(t, stack, { namespace: pool.namespace, chunkSize: 4 });
  const stopFeedback = new AbortController();
  const feedback = campaignFeedbackConsumer({
    js: f.js,
    jsm: f.jsm,
    store: f.store,
    log: createLogger({ name: "campaign-test", level: "silent" }),
    durable: { name: `cmpfb_${f.namespace}`, filter: `relais.feedback.${f.namespace}.>` },
  }).run(stopFeedback.signal);
  defer(t, async () => {
    stopFeedback.abort();
    await feedback;
  });
  return { sink, pool, f };
}

it("a run's counters add up: targeted = enqueued + skipped, enqueued = sent + failed + in flight", async (t) => {
  const { sink, pool, f } = await reportSetup(t);
  for (const n of [1, 2, 3, 4, 5, 6, 7])
    await f.profile(`c${n}`, { email: `c${n}@shop.example`, attributes: { vip: n <= 6 } });
  await f.profile("optout", {
    email: "o@shop.example",
    attributes: { vip: true },
    emailSubscription: { status: "unsubscribed", source: "x" },
  });
  await f.profile("dup", { email: "c1@shop.example", attributes: { vip: true } }, "2026-01-01T00:00:00Z");
  await f.publish("vip", {
    senderRef: { name: pool.sender },
    message: { email: { subject: "For you", html: "<p>VIP sale</p>" } },
    audience: { segment: "profile.attributes.vip == true" },
  });
  await f.tickAndSettle();

  const mails = await sink.waitFor(6, 15_000);
  assert.deepEqual(
    mails
      .map((mail) => mail.to)
      .flat()
      .sort(),
    [1, 2, 3, 4, 5, 6].map((n) => `c${n}@shop.example`),
  );
  let report = (await f.runs("vip"))[0];
  const settled = await waitUntil(
    async () => {
      report = (await f.runs("vip"))[0];
      return report?.outcomes.sent === 6;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  assert.equal(settled, "", "the six sends are counted in the report");
  assert.ok(report);
  assert.equal(report.targeted, 8);
  assert.equal(report.enqueued, 6);
  assert.deepEqual(report.skipped, { optOut: 1, duplicateEmail: 1 });
  assert.equal(report.targeted, report.enqueued + report.skippedTotal);
  const { sent, failed, bounced, expired, undelivered, dropped } = report.outcomes;
  assert.equal(report.enqueued, sent + failed + bounced + expired + undelivered + dropped + report.inFlight);
  assert.equal(report.inFlight, 0);
  // What the operator folds into the Campaign's status.
  const summary = await readCampaignStatusSummary(f.redis, { namespace: f.namespace, campaign: "vip" });
  assert.equal(summary.progress, "6/8");
  assert.deepEqual(
    [summary.lastRun?.id, summary.lastRun?.sent, summary.lastRun?.failed, summary.lastRun?.status],
    [report.id, 6, 0, "completed"],
  );

  // The ingest API reads the same report.
  const ingest = await ingestFixture(t, stack, { namespace: f.namespace });
  const list = await ingest.app.inject({
    method: "GET",
    url: "/v1/campaigns/vip/runs",
    headers: { authorization: ingest.auth },
  });
  assert.equal(list.statusCode, 200);
  const runs = list.json<{ runs: { id: string; enqueued: number }[] }>().runs;
  assert.deepEqual(
    runs.map((run) => run.id),
    [report.id],
  );
  const json = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/vip/runs/${report.id}/report`,
    headers: { authorization: ingest.auth },
  });
  assert.equal(json.statusCode, 200);
  assert.deepEqual(json.json(), { campaign: "vip", ...JSON.parse(JSON.stringify(report)) });
  const csv = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/vip/runs/${report.id}/report`,
    headers: { authorization: ingest.auth, accept: "text/csv" },
  });
  assert.match(csv.headers["content-type"] ?? "", /^text\/csv/);
  const [header, row] = csv.body
    .trim()
    .split("\n")
    .map((line) => line.split(","));
  const column = (name: string) => row?.[header?.indexOf(name) ?? -1];
  assert.deepEqual(
    [column("targeted"), column("enqueued"), column("sent"), column("skipped_optOut")],
    ["8", "6", "6", "1"],
  );
  const byQuery = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/vip/runs/${report.id}/report?format=csv`,
    headers: { authorization: ingest.auth },
  });
  assert.equal(byQuery.body, csv.body);
  const missing = await ingest.app.inject({
    method: "GET",
    url: "/v1/campaigns/vip/runs/nope/report",
    headers: { authorization: ingest.auth },
  });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json<{ error: { code: string } }>().error.code, "RELAIS_HTTP_NOT_FOUND");
  // Another namespace's key sees nothing of this campaign.
  const other = await ingest.app.inject({
    method: "GET",
    url: "/v1/campaigns/vip/runs",
    headers: { authorization: ingest.otherAuth },
  });
  assert.deepEqual(other.json<{ runs: unknown[] }>().runs, []);

  // Metrics, by the names the chart's dashboards use.
  const text = await f.registry.metrics();
  const labels = `namespace="${f.namespace}",campaign="vip"`;
  assert.match(text, new RegExp(`relais_campaign_recipients_total\\{${labels},outcome="enqueued",reason=""\\} 6`));
  assert.match(
    text,
    new RegExp(`relais_campaign_recipients_total\\{${labels},outcome="skipped",reason="duplicateEmail"\\} 1`),
  );
  assert.match(text, new RegExp(`relais_campaign_runs_total\\{${labels},result="completed"\\} 1`));
  assert.match(text, new RegExp(`relais_campaign_run_in_progress\\{${labels}\\} 0`));
  if (hasTool("promtool")) {
    const check = promisify(execFile)(toolPath("promtool"), ["check", "metrics"]);
    check.child.stdin?.end(text);
    await check;
  }
});

it("counts the holdout group in the run's report: kept from delivery, never sent", async (t) => {
  const { sink, pool, f } = await reportSetup(t);
  for (let n = 0; n < 20; n++) await f.profile(`h${n}`, { email: `h${n}@shop.example` });
  await f.publish("weekly", {
    senderRef: { name: pool.sender },
    message: { email: { subject: "This week", html: "<p>News</p>" } },
    audience: { holdoutPercent: 50 },
  });
  await f.tickAndSettle();
  let report = (await f.runs("weekly"))[0];
  const settled = await waitUntil(
    async () => {
      report = (await f.runs("weekly"))[0];
      return report !== undefined && report.enqueued === 20 && report.inFlight === 0;
    },
    { timeoutMs: 15_000, intervalMs: 50 },
  );
  assert.equal(settled, "", `the run settles: ${JSON.stringify(report)}`);
  assert.ok(report);
  const held = report.policy.holdout ?? 0;
  assert.ok(held > 0 && held < 20, `held out ${held} of 20`);
  assert.equal(report.outcomes.undelivered, held);
  assert.equal(report.outcomes.sent, 20 - held);
  assert.equal(sink.received.length, 20 - held);
});
