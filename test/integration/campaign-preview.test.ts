// The preview of a suspended campaign end to end: the operator publishes the Campaign, engage's
// campaign runner (a hand-moved clock) walks the audience, the operator folds the preview into
// status, ingest serves it; nothing is sent while suspended, and resuming sends exactly the
// previewed audience through a real deliver pool to the SMTP sink.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { CampaignPreview } from "#crds";
import { defer, startSmtpSink, useStack, waitUntil } from "#harness";
import { ConfigKeys } from "#runtime";
import { campaignFixture } from "../fixtures/campaigns.ts";
import { ingestFixture } from "../fixtures/ingest.ts";
import { operatorFixture } from "../fixtures/operator.ts";

const stack = useStack(["nats", "redis"]);

// With holdoutPercent 50, the stable assignment of "preview-launch" holds ann and jon out and keeps
// bob, hal, ida and kim (runtime inHoldout: the same function the deliver pools apply).
const CAMPAIGN = "preview-launch";

function campaignYaml(spec: { suspend: boolean; preview?: string }): string {
  return `apiVersion: relais.dev/v1alpha1
kind: Campaign
metadata:
  name: ${CAMPAIGN}
spec:
  senderRef:
    name: mail
  suspend: ${String(spec.suspend)}
  audience:
    segment: profile.attributes.vip == true
    holdoutPercent: 50
    emailDomains:
      exclude: [partner.example]
  message:
    email:
      subject: "Hi {{ profile.attributes.firstName }}"
      html: "<p>Hello {{ profile.attributes.firstName }}, this goes to {{ profile.email }}.</p>"
${spec.preview ?? ""}`;
}

it("a suspended campaign previews its exact audience, skips and redacted samples, sends nothing, and sends exactly that once resumed", async (t) => {
  const sink = await startSmtpSink({ tls: "none" });
  defer(t, () => sink.stop());
  const op = await operatorFixture(t, stack);
  const f = await campaignFixture(t, stack, { namespace: op.namespace, chunkSize: 2 });
  // The config KV is shared with other tests' runners: leave no campaign behind.
  defer(t, () => op.kv.delete(ConfigKeys.of(op.namespace, "Campaign", CAMPAIGN)));
  const ingest = await ingestFixture(t, stack, { namespace: op.namespace });

  const vip = (firstName: string) => ({ attributes: { vip: true, firstName } });
  const optOut = { emailSubscription: { status: "unsubscribed" as const, source: "link" } };
  await f.profile("ann", { email: "ann.real@shop.example", ...vip("Annabelle") }, "2026-11-20T00:00:00Z");
  await f.profile("bob", { email: "bob.real@shop.example", ...vip("Roberta") }, "2026-11-19T00:00:00Z");
  await f.profile("hal", { email: "hal.real@shop.example", ...vip("Halvard") }, "2026-11-18T00:00:00Z");
  await f.profile("ida", { email: "ida.real@shop.example", ...vip("Idaline") }, "2026-11-17T00:00:00Z");
  // Older than bob, same address: the duplicate.
  await f.profile("bob-old", { email: "bob.real@shop.example", ...vip("Roberta") }, "2026-11-01T00:00:00Z");
  await f.profile("cy", { email: "cy.real@shop.example", ...vip("Cyprien"), ...optOut });
  await f.profile("fay", { email: "fay.real@shop.example", ...vip("Fayette"), ...optOut });
  await f.profile("dee", { email: "dee.real@shop.example", ...vip("Delphine") });
  await f.redis.hset(
    `relais:{${op.namespace}}:suppressed`,
    "dee.real@shop.example",
    JSON.stringify({ reason: "hard_bounce" }),
  );
  await f.profile("gus", { email: "gus.real@partner.example", ...vip("Gustave") });
  await f.profile("eve", { email: "eve.real@shop.example", attributes: { vip: false, firstName: "Evelyne" } });
  const realEmails = [
    ...["ann", "bob", "hal", "ida", "cy", "fay", "dee", "eve"].map((id) => `${id}.real@shop.example`),
    "gus.real@partner.example",
  ];

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
      address: news@shop.example
    transport:
      smtp:
        host: 127.0.0.1
        port: ${sink.port}
        tls: none
`,
  );
  await op.write("campaign.yaml", campaignYaml({ suspend: true }));
  await op.waitForReady("Campaign", CAMPAIGN, (ready) => ready.status === "True");
  await op.waitForReady("Sender", "mail", (ready) => ready.status === "True");
  await seen(f, 1);
  await f.tickAndSettle();

  const preview = await statusPreview(op, (candidate) => candidate.generation === 1);
  // 4 eligible (ann, bob, hal, ida), ann held out: 3 would be sent.
  assert.equal(preview.audience, 3);
  assert.equal(preview.targeted, 9, "every vip profile: ann, bob, hal, ida, bob-old, cy, fay, dee, gus");
  assert.deepEqual(preview.skipped, { optOut: 2, suppressed: 1, duplicateEmail: 1, domainExcluded: 1, holdout: 1 });
  assert.equal(
    preview.audience + Object.values(preview.skipped).reduce((sum, count) => sum + count, 0),
    preview.targeted,
  );
  assert.equal(preview.personalData, false);
  assert.equal(preview.samples.length, 3);
  for (const sample of preview.samples) {
    assert.match(sample.profile, /^sha256:[0-9a-f]{16}$/);
    assert.equal(sample.subject, "Hi [redacted]");
    assert.equal(sample.html, "<p>Hello [redacted], this goes to [redacted].</p>");
    assert.equal(sample.text, "Hello [redacted], this goes to [redacted].");
  }
  const shown = JSON.stringify(preview);
  for (const address of realEmails) assert.ok(!shown.includes(address), `${address} is not in the preview`);
  for (const name of ["Roberta", "Halvard", "Idaline", "bob", "hal", "ida"])
    assert.ok(!shown.includes(name), `${name} is not in the preview`);

  // The same preview from the ingest API; another namespace's key sees none.
  const api = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/${CAMPAIGN}/preview`,
    headers: { authorization: ingest.auth },
  });
  assert.equal(api.statusCode, 200);
  assert.deepEqual(api.json(), { campaign: CAMPAIGN, ...preview });
  const other = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/${CAMPAIGN}/preview`,
    headers: { authorization: ingest.otherAuth },
  });
  assert.equal(other.statusCode, 404);
  assert.equal(other.json<{ error: { code: string } }>().error.code, "RELAIS_HTTP_NOT_FOUND");

  // Nothing is sent or queued while suspended.
  assert.equal(await f.queuedCount(), 0);
  assert.deepEqual(await f.runs(CAMPAIGN), []);

  // A new profile is not in the preview until it is refreshed (it is a snapshot at computedAt).
  await f.profile("kim", { email: "kim.real@shop.example", ...vip("Kimberly") }, "2026-11-16T00:00:00Z");
  await f.tickAndSettle();
  assert.equal((await apiPreview(ingest)).audience, 3, "not recomputed without a change or a refresh");
  const refresh = await ingest.app.inject({
    method: "POST",
    url: `/v1/campaigns/${CAMPAIGN}/preview/refresh`,
    headers: { authorization: ingest.auth },
  });
  assert.equal(refresh.statusCode, 202);
  await f.tickAndSettle();
  assert.equal((await apiPreview(ingest)).audience, 4, "kim is in the refreshed preview");

  // Editing the suspended campaign (a new generation) recomputes it; personal data on request.
  await op.write(
    "campaign.yaml",
    campaignYaml({ suspend: true, preview: "  preview:\n    samples: 1\n    showPersonalData: true\n" }),
  );
  await seen(f, 2);
  await f.tickAndSettle();
  const personal = await statusPreview(op, (candidate) => candidate.generation === 2);
  assert.equal(personal.audience, 4);
  assert.equal(personal.personalData, true);
  assert.deepEqual(personal.samples, [
    {
      profile: "bob",
      subject: "Hi Roberta",
      html: "<p>Hello Roberta, this goes to bob.real@shop.example.</p>",
      text: "Hello Roberta, this goes to bob.real@shop.example.",
    },
  ]);
  assert.equal(sink.received.length, 0, "nothing was sent while suspended");

  // Resuming sends exactly the previewed audience; the preview goes.
  await op.write("campaign.yaml", campaignYaml({ suspend: false }));
  await seen(f, 3);
  await f.tickAndSettle();
  const mails = await sink.waitFor(personal.audience, 20_000);
  const drained = await waitUntil(async () => (await f.queuedCount()) === 0, { timeoutMs: 15_000 });
  assert.equal(drained, "", "every queued job was delivered or skipped");
  assert.deepEqual(
    mails.flatMap((mail) => mail.to).sort(),
    ["bob", "hal", "ida", "kim"].map((id) => `${id}.real@shop.example`),
  );
  assert.equal(sink.received.length, personal.audience, "exactly the previewed audience, no more");
  const [run] = await f.runs(CAMPAIGN);
  assert.equal(run?.targeted, personal.targeted);
  const gone = await waitUntil(
    async () => {
      // Removed: null in the folder source's status (a merge patch's delete), absent in Kubernetes.
      const status = (await op.source.get(op.key("Campaign", CAMPAIGN)))?.status as { preview?: unknown } | undefined;
      return (status?.preview ?? undefined) === undefined;
    },
    { timeoutMs: 10_000 },
  );
  assert.equal(gone, "", "status.preview is removed once resumed");
  const after = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/${CAMPAIGN}/preview`,
    headers: { authorization: ingest.auth },
  });
  assert.equal(after.statusCode, 404);
});

async function seen(f: Awaited<ReturnType<typeof campaignFixture>>, generation: number): Promise<void> {
  const reason = await waitUntil(async () => f.runner.get(f.namespace, CAMPAIGN)?.generation === generation, {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  assert.equal(reason, "", `the runner has generation ${String(generation)}`);
}

async function statusPreview(
  op: Awaited<ReturnType<typeof operatorFixture>>,
  accept: (preview: CampaignPreview) => boolean,
): Promise<CampaignPreview> {
  let preview: CampaignPreview | undefined;
  const reason = await waitUntil(
    async () => {
      const status = (await op.source.get(op.key("Campaign", CAMPAIGN)))?.status as
        { preview?: CampaignPreview } | undefined;
      preview = status?.preview;
      return preview !== undefined && accept(preview);
    },
    { timeoutMs: 10_000 },
  );
  assert.equal(reason, "", `status.preview as expected: ${JSON.stringify(preview)}`);
  assert.ok(preview);
  return preview;
}

async function apiPreview(ingest: Awaited<ReturnType<typeof ingestFixture>>): Promise<CampaignPreview> {
  const response = await ingest.app.inject({
    method: "GET",
    url: `/v1/campaigns/${CAMPAIGN}/preview`,
    headers: { authorization: ingest.auth },
  });
  assert.equal(response.statusCode, 200);
  return response.json<CampaignPreview>();
}
