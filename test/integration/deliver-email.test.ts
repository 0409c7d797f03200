// A Sender's pool delivering email: through a real SMTP server (STARTTLS, AUTH, DKIM) and through
// a relay speaking SparkPost's API, with retries, bounces, opt-outs and suppression.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { defer, generateDkimKey, hasTool, startSmtpSink, startSparkPostEndpoint, toolPath, useStack } from "#harness";
import type { ReceivedMail } from "#harness";
import { RedisKeys, verifyToken } from "#runtime";
import { deliverFixture, LINK_SECRET, PUBLIC_BASE_URL } from "../fixtures/deliver.ts";

const stack = useStack(["nats", "redis"]);

const message = {
  email: {
    subject: "{{ profile.attributes.firstName | default: 'Hello' }}, your offer",
    preheader: "Only this week",
    html: '<html><body><p>Hi {{ profile.attributes.firstName }} &amp; co</p><a href="https://shop.example/sale?a=1&amp;b=2">Shop</a></body></html>',
  },
};

function smtpSender(port: number, extra: Record<string, unknown> = {}) {
  return {
    channel: "email",
    email: {
      from: { address: "news@shop.example", name: "Shop" },
      transport: {
        smtp: { host: "127.0.0.1", port, tls: "starttls", authSecretRef: { name: "smtp" }, maxConnections: 2 },
      },
      dkim: { domain: "shop.example", selector: "relais", privateKeySecretRef: { name: "dkim" } },
      tracking: { opens: true, clicks: true },
    },
    retry: { maxAttempts: 3, initialBackoff: "200ms", maxBackoff: "1s" },
    pool: { concurrency: 8 },
    ...extra,
  };
}

async function smtpSetup(t: Parameters<typeof deliverFixture>[0]) {
  const dkim = generateDkimKey();
  const sink = await startSmtpSink({
    tls: "starttls",
    auth: { user: "relais", pass: "s3cret-pass" },
    dkimKeys: { "relais._domainkey.shop.example": dkim.txtRecord },
  });
  defer(t, () => sink.stop());
  const pool = await deliverFixture(t, stack, {
    senderSpec: smtpSender(sink.port),
    caPem: sink.certificatePem,
    secretsEnv: {
      RELAIS_SECRET_SMTP_USERNAME: "relais",
      RELAIS_SECRET_SMTP_PASSWORD: "s3cret-pass",
      RELAIS_SECRET_DKIM_PRIVATEKEY: dkim.privateKeyPem,
    },
  });
  await pool.publishTemplate("promo", message);
  return { sink, pool };
}

/** Click, open and unsubscribe links point at the public base URL with tokens for this send. */
function assertTrackedLinks(mail: ReceivedMail, id: string): void {
  const html = mail.html ?? "";
  const click = /href="(https:\/\/engage\.shop\.example\/c\/[^"]+)"/.exec(html)?.[1] ?? "";
  assert.deepEqual(
    verifyToken(LINK_SECRET, click.split("/c/")[1] ?? "", "c")?.url,
    "https://shop.example/sale?a=1&b=2",
  );
  assert.match(html, new RegExp(`<img src="${PUBLIC_BASE_URL}/o/`));
  assert.match(mail.text ?? "", /Hi Ann & co/);
  const unsubscribe = /^<(.+)>$/.exec(mail.headers["list-unsubscribe"] ?? "")?.[1] ?? "";
  const token = verifyToken(LINK_SECRET, unsubscribe.split("/u/")[1] ?? "", "u");
  assert.deepEqual([token?.profileId, token?.messageId], ["ann", id]);
  assert.equal(mail.headers["list-unsubscribe-post"], "List-Unsubscribe=One-Click");
}

describe("email delivery over SMTP", () => {
  it("sends the rendered, DKIM-signed message with tracking and one-click unsubscribe headers", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    await pool.profiles.identify(pool.namespace, "ann", { email: "ann@example.com", attributes: { firstName: "Ann" } });
    const id = await pool.enqueue("ann");
    const [mail] = await sink.waitFor(1);
    assert.ok(mail);
    assert.equal(mail.subject, "Ann, your offer");
    assert.deepEqual(mail.envelope.to, ["ann@example.com"]);
    assert.equal(mail.authenticatedUser, "relais");
    assert.equal(mail.dkim.result, "pass");
    assert.match(mail.html ?? "", /Hi Ann &amp; co/);
    assert.match(mail.html ?? "", /Only this week/);
    assertTrackedLinks(mail, id);
    await pool.waitForOutcome("sent", 1);
    assert.deepEqual(
      (await pool.feedback("sent")).map((f) => f.messageId),
      [id],
    );
  });

  it("skips opted-out profiles unless the message is transactional, and never sends to a suppressed address", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    const ns = pool.namespace;
    await pool.profiles.identify(ns, "out", {
      email: "out@example.com",
      emailSubscription: { status: "unsubscribed", source: "api" },
    });
    await pool.profiles.identify(ns, "bad", { email: "bad@example.com" });
    await pool.profiles.suppress(ns, "bad@example.com", "hard_bounce 5.1.1");
    await pool.enqueue("out");
    await pool.enqueue("out", { transactional: true });
    await pool.enqueue("bad", { transactional: true });
    await pool.enqueue("ghost");
    await pool.waitForOutcome("skipped", 3);
    await pool.waitForOutcome("sent", 1);
    assert.deepEqual(
      sink.received.map((mail) => mail.envelope.to[0]),
      ["out@example.com"],
    );
    const reasons = (await pool.feedback("skipped")).map((f) => f.reason).sort();
    assert.deepEqual(reasons, ["no_profile", "opt_out", "suppressed"]);
  });

  it("retries a transient refusal, and reports a permanent one as a bounce with the address", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    await pool.profiles.identify(pool.namespace, "later", { email: "later@example.com" });
    await pool.profiles.identify(pool.namespace, "nobody", { email: "nobody@example.com" });
    sink.rejectRecipient("later@example.com", 451, "4.3.0 Try again later", { times: 1 });
    sink.rejectRecipient("nobody@example.com", 550, "5.1.1 No such user");
    await pool.enqueue("later");
    await pool.enqueue("nobody");
    await pool.waitForOutcome("bounced", 1);
    await pool.waitForOutcome("sent", 1);
    assert.deepEqual(
      sink.received.map((mail) => mail.envelope.to[0]),
      ["later@example.com"],
    );
    const bounces = await pool.feedback("bounced");
    assert.deepEqual(
      bounces.map((bounce) => [bounce.address, bounce.reason]),
      [["nobody@example.com", "smtp 550 5.1.1"]],
    );
    assert.match(await pool.metricsText(), /outcome="retried"\} 1/);
  });

  it("acks a redelivered job whose send completed without sending it again", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    await pool.profiles.identify(pool.namespace, "once", { email: "once@example.com" });
    const id = await pool.enqueue("once");
    await pool.waitForOutcome("sent", 1);
    await pool.enqueue("once", { id, msgId: `${id}-replayed` });
    await pool.waitForOutcome("duplicate", 1);
    assert.equal(sink.received.length, 1);
  });

  it("publishes a completed send's outcome again when its job comes back, once, without sending it", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    await pool.profiles.identify(pool.namespace, "lost", { email: "lost@example.com" });
    // Sent, recorded, but its outcome never reached RELAIS_FEEDBACK (NATS restarting meanwhile).
    const id = "run-lost:lost";
    await pool.redis.set(RedisKeys.sendRecord(pool.namespace, id), "done:sent", "EX", 3600);
    await pool.enqueue("lost", { id, msgId: `${id}-1` });
    await pool.waitForOutcome("duplicate", 1);
    await pool.enqueue("lost", { id, msgId: `${id}-2` });
    await pool.waitForOutcome("duplicate", 2);
    const sent = await pool.feedback("sent");
    assert.deepEqual(
      sent.map((outcome) => outcome.messageId),
      [id],
      "reported once: the second copy has the same Nats-Msg-Id",
    );
    assert.equal(sink.received.length, 0);
  });

  it("fails a message whose template does not render, and goes on with the next", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    await pool.publishTemplate("broken", {
      email: { subject: "Hi {{ profile.email | nosuchfilter }}", html: "<p>x</p>" },
    });
    await pool.profiles.identify(pool.namespace, "p1", { email: "p1@example.com" });
    await pool.enqueue("p1", { campaign: "broken" });
    await pool.enqueue("p1");
    await pool.waitForOutcome("failed", 1);
    await pool.waitForOutcome("sent", 1);
    const [failure] = await pool.feedback("failed");
    assert.match(String(failure?.reason), /^template: .*nosuchfilter/);
    assert.equal(sink.received.length, 1);
  });

  it("applies a changed template without a restart", async (t) => {
    const { sink, pool } = await smtpSetup(t);
    await pool.profiles.identify(pool.namespace, "p2", { email: "p2@example.com" });
    await pool.enqueue("p2");
    await sink.waitFor(1);
    await pool.publishTemplate("promo", { email: { subject: "Second edition", html: "<p>v2</p>" } }, 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await pool.enqueue("p2");
    const mails = await sink.waitFor(2);
    assert.equal(mails[1]?.subject, "Second edition");
  });

  it("exports metrics that promtool accepts, with no address or profile in them", async (t) => {
    const { pool } = await smtpSetup(t);
    await pool.profiles.identify(pool.namespace, "customer-7731", { email: "metrics@example.com" });
    await pool.enqueue("customer-7731");
    await pool.waitForOutcome("sent", 1);
    const text = await pool.metricsText();
    assert.match(text, /relais_deliver_send_duration_seconds_count\{[^}]*channel="email"\} 1/);
    assert.doesNotMatch(text, /metrics@example\.com|customer-7731/);
    if (hasTool("promtool")) {
      const check = promisify(execFile)(toolPath("promtool"), ["check", "metrics"]);
      check.child.stdin?.end(text);
      await check;
    }
  });
});

describe("email delivery through a SparkPost relay", () => {
  it("posts a correct transmission with the key as Authorization, and retries a 429", async (t) => {
    const relay = await startSparkPostEndpoint({ apiKey: "sp-test-key" });
    defer(t, () => relay.stop());
    relay.failNext(429, { times: 1, headers: { "retry-after": "0" } });
    const pool = await deliverFixture(t, stack, {
      senderSpec: {
        channel: "email",
        email: {
          from: { address: "news@shop.example", name: "Shop" },
          replyTo: { address: "help@shop.example" },
          transport: { sparkpost: { endpoint: relay.url, apiKeySecretRef: { name: "sparkpost" } } },
        },
        retry: { maxAttempts: 3, initialBackoff: "100ms", maxBackoff: "1s" },
      },
      secretsEnv: { RELAIS_SECRET_SPARKPOST_APIKEY: "sp-test-key" },
    });
    await pool.publishTemplate("promo", message);
    await pool.profiles.identify(pool.namespace, "sp", { email: "sp@example.com", attributes: { firstName: "Sam" } });
    const id = await pool.enqueue("sp");
    const transmission = (await relay.waitFor(1))[0];
    assert.ok(transmission);
    assert.equal(transmission.headers.authorization, "sp-test-key");
    const body = transmission.body as unknown as {
      recipients: { address: { email: string } }[];
      content: {
        from: { email: string; name: string };
        subject: string;
        reply_to: string;
        html: string;
        headers: Record<string, string>;
      };
      options: { open_tracking: boolean; click_tracking: boolean };
    };
    assert.deepEqual(body.recipients, [{ address: { email: "sp@example.com" } }]);
    assert.deepEqual(body.content.from, { email: "news@shop.example", name: "Shop" });
    assert.equal(body.content.subject, "Sam, your offer");
    assert.equal(body.content.reply_to, "help@shop.example");
    assert.equal(body.content.headers["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    assert.deepEqual(body.options, { open_tracking: false, click_tracking: false, transactional: false });
    await pool.waitForOutcome("sent", 1);
    assert.deepEqual(
      (await pool.feedback("sent")).map((f) => f.messageId),
      [id],
    );
  });
});
