import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { htmlToText } from "#runtime";
import { classifyPushError, classifySmtpError, enhancedStatus, secretEnvName } from "#deliver";

describe("SMTP replies", () => {
  it("are transient for 4xx and connection errors, permanent for 5xx, bounces for bad recipients", () => {
    assert.deepEqual(classifySmtpError({ responseCode: 451, response: "451 4.3.0 Try later", message: "" }), {
      kind: "transient",
      reason: "smtp 451 4.3.0",
    });
    assert.deepEqual(classifySmtpError({ code: "ECONNECTION", message: "refused" }), {
      kind: "transient",
      reason: "smtp ECONNECTION",
    });
    assert.deepEqual(
      classifySmtpError({ code: "EENVELOPE", responseCode: 550, response: "550 5.1.1 No such user", message: "" }),
      {
        kind: "permanent",
        reason: "smtp 550 5.1.1",
        bounce: true,
      },
    );
    assert.deepEqual(
      classifySmtpError({ code: "EMESSAGE", responseCode: 552, response: "552 5.3.4 Message too big", message: "" }),
      {
        kind: "permanent",
        reason: "smtp 552 5.3.4",
        bounce: false,
      },
    );
  });

  it("never suppress a recipient for the Sender's own bad credentials", () => {
    assert.equal(
      classifySmtpError({ code: "EAUTH", responseCode: 535, response: "535 5.7.8 bad", message: "" }).kind,
      "transient",
    );
  });

  it("keep the enhanced status code", () => {
    assert.equal(enhancedStatus("550-5.1.1 The email account does not exist"), "5.1.1");
    assert.equal(enhancedStatus("250 OK"), undefined);
  });
});

describe("push service replies", () => {
  it("expire the subscription on 404/410, retry 429 after Retry-After and 5xx, refuse 413", () => {
    assert.equal(classifyPushError({ statusCode: 410, message: "" }).kind, "expired");
    assert.equal(classifyPushError({ statusCode: 404, message: "" }).kind, "expired");
    assert.deepEqual(classifyPushError({ statusCode: 429, headers: { "retry-after": "7" }, message: "" }), {
      kind: "transient",
      reason: "webpush 429",
      retryAfterMs: 7000,
    });
    assert.equal(classifyPushError({ statusCode: 503, message: "" }).kind, "transient");
    assert.deepEqual(classifyPushError({ statusCode: 413, message: "" }), {
      kind: "permanent",
      reason: "webpush 413",
      bounce: false,
    });
    assert.equal(classifyPushError({ message: "socket hang up" }).kind, "transient");
  });
});

describe("rendering helpers", () => {
  it("derive a readable text part from HTML", () => {
    assert.equal(
      htmlToText(
        "<html><head><style>p{}</style></head><body><h1>Sale</h1><p>Hello &amp; welcome</p><br>Bye</body></html>",
      ),
      "Sale\nHello & welcome\n\nBye",
    );
  });

  it("name a Secret's environment variable as local mode reads it", () => {
    assert.equal(secretEnvName("smtp-credentials", "password"), "RELAIS_SECRET_SMTP_CREDENTIALS_PASSWORD");
    assert.equal(secretEnvName("vapid.keys", "privateKey"), "RELAIS_SECRET_VAPID_KEYS_PRIVATEKEY");
  });
});
