// The SMTP sink of the harness is a real SMTP server: nodemailer, the client the delivery pool
// uses, talks to it over STARTTLS, implicit TLS and a pool, and it verifies DKIM and fails on cue.
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { describe, it } from "node:test";
import nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";
import type SMTPPool from "nodemailer/lib/smtp-pool";
import type SMTPTransport from "nodemailer/lib/smtp-transport";
import { defer, waitUntil } from "#harness";
import { generateDkimKey, startSmtpSink } from "../harness/smtp.ts";
import type { SmtpSink } from "../harness/smtp.ts";

const credentials = { user: "relais", pass: "s3cret-pass" };

async function sinkFor(t: TestContext, options: Parameters<typeof startSmtpSink>[0]): Promise<SmtpSink> {
  const sink = await startSmtpSink(options);
  defer(t, () => sink.stop());
  return sink;
}

function transportFor(
  t: TestContext,
  sink: SmtpSink,
  options: SMTPTransport.Options = {},
): Transporter<SMTPTransport.SentMessageInfo> {
  const transport = nodemailer.createTransport({ ...connectionTo(sink), ...options });
  defer(t, () => {
    transport.close();
  });
  return transport;
}

function connectionTo(sink: SmtpSink): SMTPTransport.Options {
  return {
    host: sink.host,
    port: sink.port,
    secure: sink.tls === "implicit",
    requireTLS: sink.tls === "starttls",
    ignoreTLS: sink.tls === "none",
    ...(sink.certificatePem === undefined ? {} : { tls: { ca: sink.certificatePem } }),
  };
}

const message = {
  from: "Relais <news@relais.example>",
  to: "ada@customer.example",
  subject: "Spring sale",
  html: "<p>Hello <b>Ada</b></p>",
  text: "Hello Ada",
  headers: { "X-Relais-Campaign": "spring-sale" },
};

describe("SMTP sink of the harness", () => {
  it("records a message sent over STARTTLS with AUTH with its subject, html, text and headers", async (t) => {
    const sink = await sinkFor(t, { tls: "starttls", auth: credentials });
    assert.match(sink.certificatePem ?? "", /^-----BEGIN CERTIFICATE-----/);
    const transport = transportFor(t, sink, { auth: credentials });

    const info = await transport.sendMail(message);

    assert.deepEqual(info.accepted, ["ada@customer.example"]);
    assert.deepEqual(info.rejected, []);
    const [mail] = await sink.waitFor(1);
    assert.ok(mail);
    assert.deepEqual(mail.envelope, { from: "news@relais.example", to: ["ada@customer.example"] });
    assert.equal(mail.from, "news@relais.example");
    assert.deepEqual(mail.to, ["ada@customer.example"]);
    assert.equal(mail.subject, "Spring sale");
    assert.equal(mail.html, "<p>Hello <b>Ada</b></p>");
    assert.equal(mail.text, "Hello Ada");
    assert.equal(mail.headers["x-relais-campaign"], "spring-sale");
    assert.equal(mail.headers.subject, "Spring sale");
    assert.equal(mail.headers.from, "Relais <news@relais.example>");
    assert.equal(mail.headers["message-id"], info.messageId);
    assert.match(mail.raw, /^X-Relais-Campaign: spring-sale\r\n/m);
    assert.equal(mail.authenticatedUser, "relais");
    assert.equal(mail.dkim.result, "none");
  });

  it("refuses wrong credentials with 535 and records nothing", async (t) => {
    const sink = await sinkFor(t, { tls: "starttls", auth: credentials });
    const transport = transportFor(t, sink, { auth: { user: "relais", pass: "wrong" } });

    await assert.rejects(transport.sendMail(message), { code: "EAUTH", responseCode: 535 });

    assert.equal(sink.received.length, 0);
  });

  it("refuses a client that does not authenticate when AUTH is required", async (t) => {
    const sink = await sinkFor(t, { tls: "starttls", auth: credentials });
    const transport = transportFor(t, sink);

    await assert.rejects(transport.sendMail(message), { responseCode: 530 });

    assert.equal(sink.received.length, 0);
  });

  it("verifies a DKIM signature as pass against the key record it was given", async (t) => {
    const key = generateDkimKey();
    assert.match(key.txtRecord, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/);
    const sink = await sinkFor(t, { dkimKeys: { "mail._domainkey.relais.example": key.txtRecord } });
    const transport = transportFor(t, sink, {
      dkim: { domainName: "relais.example", keySelector: "mail", privateKey: key.privateKeyPem },
    });

    await transport.sendMail(message);

    const [mail] = await sink.waitFor(1);
    assert.ok(mail);
    assert.deepEqual(mail.dkim, { result: "pass", domain: "relais.example", selector: "mail" });
    assert.match(mail.headers["dkim-signature"] ?? "", /d=relais\.example; .*s=mail;/);
    assert.equal(mail.subject, "Spring sale");
  });

  it("verifies a DKIM signature as fail when the key record holds another key", async (t) => {
    const signing = generateDkimKey();
    const other = generateDkimKey();
    const sink = await sinkFor(t, { dkimKeys: { "mail._domainkey.relais.example": other.txtRecord } });
    const transport = transportFor(t, sink, {
      dkim: { domainName: "relais.example", keySelector: "mail", privateKey: signing.privateKeyPem },
    });

    await transport.sendMail(message);

    const [mail] = await sink.waitFor(1);
    assert.ok(mail);
    assert.deepEqual(mail.dkim, { result: "fail", domain: "relais.example", selector: "mail" });
  });

  it("reports neutral for a DKIM signature whose selector has no key record", async (t) => {
    const signing = generateDkimKey();
    const sink = await sinkFor(t, {});
    const transport = transportFor(t, sink, {
      dkim: { domainName: "relais.example", keySelector: "gone", privateKey: signing.privateKeyPem },
    });

    await transport.sendMail(message);

    const [mail] = await sink.waitFor(1);
    assert.ok(mail);
    assert.deepEqual(mail.dkim, { result: "neutral", domain: "relais.example", selector: "gone" });
  });

  it("rejects a recipient with 550 every time and records nothing", async (t) => {
    const sink = await sinkFor(t, {});
    sink.rejectRecipient("Ada@Customer.example", 550, "5.1.1 No such user");
    const transport = transportFor(t, sink);

    for (let attempt = 0; attempt < 2; attempt++) {
      await assert.rejects(transport.sendMail(message), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.equal((error as Error & { responseCode?: number }).responseCode, 550);
        assert.match(error.message, /550 5\.1\.1 No such user/);
        return true;
      });
    }

    assert.equal(sink.received.length, 0);
  });

  it("rejects a recipient with 451 once and accepts the retry", async (t) => {
    const sink = await sinkFor(t, {});
    sink.rejectRecipient("ada@customer.example", 451, "4.3.0 Try again later", { times: 1 });
    const transport = transportFor(t, sink);

    await assert.rejects(transport.sendMail(message), { responseCode: 451 });
    assert.equal(sink.received.length, 0);
    const info = await transport.sendMail(message);

    assert.deepEqual(info.accepted, ["ada@customer.example"]);
    const mails = await sink.waitFor(1);
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0]?.envelope.to, ["ada@customer.example"]);
  });

  it("accepts the other recipients of a message when one is rejected", async (t) => {
    const sink = await sinkFor(t, {});
    sink.rejectRecipient("bob@customer.example", 550, "5.1.1 No such user");
    const transport = transportFor(t, sink);

    const info = await transport.sendMail({ ...message, to: ["ada@customer.example", "bob@customer.example"] });

    assert.deepEqual(info.accepted, ["ada@customer.example"]);
    assert.deepEqual(info.rejected, ["bob@customer.example"]);
    const [mail] = await sink.waitFor(1);
    assert.deepEqual(mail?.envelope.to, ["ada@customer.example"]);
    assert.deepEqual(mail.to, ["ada@customer.example", "bob@customer.example"]);
  });

  it("receives a message over implicit TLS", async (t) => {
    const sink = await sinkFor(t, { tls: "implicit", auth: credentials });
    const transport = transportFor(t, sink, { auth: credentials });

    await transport.sendMail({ ...message, subject: "Over implicit TLS" });

    const [mail] = await sink.waitFor(1);
    assert.equal(mail?.subject, "Over implicit TLS");
    assert.equal(mail.authenticatedUser, "relais");
  });

  it("never has more connections open than a pooled transport's maxConnections", async (t) => {
    const sink = await sinkFor(t, { tls: "starttls" });
    const options: SMTPPool.Options = { ...connectionTo(sink), pool: true, maxConnections: 3 };
    const transport = nodemailer.createTransport(options);
    defer(t, () => {
      transport.close();
    });

    const sent = await Promise.all(
      Array.from({ length: 20 }, (_, index) => transport.sendMail({ ...message, subject: `Message ${index}` })),
    );

    assert.equal(sent.length, 20);
    const mails = await sink.waitFor(20);
    assert.equal(mails.length, 20);
    assert.deepEqual(
      mails.map((mail) => mail.subject).sort(),
      Array.from({ length: 20 }, (_, index) => `Message ${index}`).sort(),
    );
    assert.equal(sink.maxConcurrentConnections, 3);
    assert.ok(sink.openConnections <= 3);
    transport.close();
    assert.equal(await waitUntil(() => Promise.resolve(sink.openConnections === 0), { timeoutMs: 5000 }), "");
  });

  it("times out waiting for messages that never come", async (t) => {
    const sink = await sinkFor(t, {});

    await assert.rejects(sink.waitFor(1, 50), /smtp sink: 0 of 1 messages after 50 ms/);
  });
});
