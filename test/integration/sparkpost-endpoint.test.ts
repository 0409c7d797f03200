// The fake SparkPost endpoint of the harness speaks the Transmissions API as documented, to plain fetch.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { startSparkPostEndpoint } from "../harness/sparkpost.ts";
import type { ErrorResponse, SparkPostEndpoint, TransmissionResponse } from "../harness/sparkpost.ts";

async function start(t: TestContext, apiKey?: string): Promise<SparkPostEndpoint> {
  const endpoint = await startSparkPostEndpoint(apiKey === undefined ? {} : { apiKey });
  t.after(() => endpoint.stop());
  return endpoint;
}

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

async function post(
  endpoint: SparkPostEndpoint,
  body: unknown,
  init: { authorization?: string; contentType?: string; path?: string } = {},
): Promise<Reply> {
  const response = await fetch(`${endpoint.url}${init.path ?? "/api/v1/transmissions"}`, {
    method: "POST",
    headers: {
      authorization: init.authorization ?? endpoint.apiKey,
      "content-type": init.contentType ?? "application/json",
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const inline = {
  from: { email: "news@shop.example.com", name: "Example Shop" },
  subject: "Your order {{order_id}}",
  html: "<p>Hello {{name}}</p>",
  text: "Hello {{name}}",
};

const valid = {
  recipients: [{ address: { email: "wilma@example.com", name: "Wilma" } }],
  content: inline,
};

describe("SparkPost endpoint of the harness", () => {
  it("accepts a valid inline transmission with the documented response and records it", async (t) => {
    const endpoint = await start(t, "14ac5499cfdd2bb2859e4476d2e5b1d2bad079bf");
    const request = {
      options: { open_tracking: true, click_tracking: false, transactional: true },
      campaign_id: "spring-sale",
      metadata: { message_id: "m-1" },
      substitution_data: { order_id: "A-17" },
      recipients: [
        {
          address: { email: "wilma@example.com", name: "Wilma Flintstone" },
          metadata: { profile: "p-1" },
          substitution_data: { name: "Wilma" },
        },
        { address: "fred@example.com", tags: ["vip"] },
      ],
      content: {
        ...inline,
        reply_to: "Support <support@shop.example.com>",
        headers: { "List-Unsubscribe": "<https://shop.example.com/u/1>", "X-Relais-Message": "m-1" },
      },
      unknown_field: "ignored, as SparkPost ignores unexpected fields",
    };

    const reply = await post(endpoint, request);

    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get("content-type"), "application/json");
    const body = reply.body as TransmissionResponse;
    assert.deepEqual(Object.keys(body), ["results"]);
    assert.equal(body.results.total_accepted_recipients, 2);
    assert.equal(body.results.total_rejected_recipients, 0);
    assert.match(body.results.id, /^\d{17,}$/);

    const [received, ...rest] = await endpoint.waitFor(1);
    assert.deepEqual(rest, []);
    assert.ok(received);
    assert.equal(received.id, body.results.id);
    assert.equal(received.headers.authorization, "14ac5499cfdd2bb2859e4476d2e5b1d2bad079bf");
    assert.equal(received.headers["content-type"], "application/json");
    const { unknown_field: _ignored, ...documented } = request;
    assert.deepEqual(received.body, documented);
    assert.deepEqual(endpoint.transmissions, [received]);
  });

  it("accepts the API key as Basic credentials with an empty password, as the docs allow", async (t) => {
    const endpoint = await start(t, "key-123");
    const basic = `Basic ${Buffer.from("key-123:").toString("base64")}`;
    const reply = await post(endpoint, valid, { authorization: basic });
    assert.equal(reply.status, 200);
    assert.equal((reply.body as TransmissionResponse).results.total_accepted_recipients, 1);
    assert.equal(endpoint.transmissions.length, 1);
  });

  it("answers a wrong, missing or Bearer-prefixed key with 401 and an errors array, recording nothing", async (t) => {
    const endpoint = await start(t, "right-key");
    for (const authorization of ["wrong-key", "Bearer right-key", ""]) {
      const reply = await post(endpoint, valid, { authorization });
      assert.equal(reply.status, 401, authorization);
      assert.deepEqual(reply.body, { errors: [{ message: "Unauthorized." }] });
    }
    assert.deepEqual(endpoint.transmissions, []);
  });

  it("answers a body without recipients with 422 and code 1400, recording nothing", async (t) => {
    const endpoint = await start(t);
    const reply = await post(endpoint, { content: inline });
    assert.equal(reply.status, 422);
    assert.deepEqual(reply.body, {
      errors: [{ message: "required field is missing", description: "recipients or list_id required", code: "1400" }],
    });
    assert.deepEqual(endpoint.transmissions, []);
  });

  it("answers inline content missing from, subject, or both html and text with the documented 422", async (t) => {
    const endpoint = await start(t);
    const { from: _from, ...withoutFrom } = inline;
    const { subject: _subject, ...withoutSubject } = inline;
    const { html: _html, text: _text, ...withoutBody } = inline;
    const cases = [
      { content: withoutFrom, description: "content.from is a required field" },
      { content: { ...inline, from: { name: "No address" } }, description: "content.from.email is a required field" },
      { content: withoutSubject, description: "content.subject is a required field" },
      { content: withoutBody, description: "At least one of 'text' or 'html' needs to exist in 'content'" },
      { content: undefined, description: "content object or template_id required" },
    ];
    for (const { content, description } of cases) {
      const reply = await post(endpoint, { recipients: valid.recipients, content });
      assert.equal(reply.status, 422, description);
      assert.deepEqual(reply.body, { errors: [{ message: "required field is missing", description, code: "1400" }] });
    }
    assert.deepEqual(endpoint.transmissions, []);
  });

  it("answers fields of the wrong type with 422 and code 1300", async (t) => {
    const endpoint = await start(t);
    const reply = await post(endpoint, { ...valid, options: { open_tracking: "yes" } });
    assert.equal(reply.status, 422);
    assert.deepEqual(reply.body, {
      errors: [
        {
          message: "invalid data format/type",
          description: "field 'options.open_tracking' is of type 'string', but needs to be of type 'boolean'",
          code: "1300",
        },
      ],
    });
    const notJson = await post(endpoint, "{ not json", {});
    assert.equal(notJson.status, 422);
    assert.deepEqual(notJson.body, {
      errors: [{ message: "invalid data format/type", description: "Problems parsing request as json", code: "1300" }],
    });
    assert.deepEqual(endpoint.transmissions, []);
  });

  it("rejects a body that is not sent as application/json with 415", async (t) => {
    const endpoint = await start(t);
    const reply = await post(endpoint, valid, { contentType: "text/plain" });
    assert.equal(reply.status, 415);
    assert.deepEqual(reply.body, { errors: [{ message: "Unsupported Content-Type header", code: "1700" }] });
  });

  it("accepts the valid recipients of a mixed list and reports the others in rcpt_to_errors", async (t) => {
    const endpoint = await start(t);
    const recipients = [{ address: "good@example.com" }, { address: "not-an-address" }, { address: { name: "x" } }];
    const reply = await post(endpoint, { recipients, content: inline });
    assert.equal(reply.status, 200);
    const body = reply.body as TransmissionResponse;
    assert.deepEqual(body.errors, [{ message: "transmission created, but with validation errors", code: "2000" }]);
    assert.deepEqual(body.results.rcpt_to_errors, [
      { message: "invalid data format/type", description: "invalid recipient address: not-an-address", code: "1300" },
      {
        message: "required field is missing",
        description: "address.email is required for each recipient",
        code: "1400",
      },
    ]);
    assert.equal(body.results.total_accepted_recipients, 1);
    assert.equal(body.results.total_rejected_recipients, 2);
    const [received] = await endpoint.waitFor(1);
    assert.deepEqual(received?.body.recipients, [{ address: "good@example.com" }]);

    const none = await post(endpoint, { recipients: [{ address: "nope" }], content: inline });
    assert.equal(none.status, 400);
    assert.deepEqual(none.body, { errors: [{ message: "At least one valid recipient is required", code: "5002" }] });
    assert.equal(endpoint.transmissions.length, 1);
  });

  it("fails the next request with 429 and Retry-After, then accepts the retry", async (t) => {
    const endpoint = await start(t);
    endpoint.failNext(429, { times: 1, headers: { "Retry-After": "2" } });

    const limited = await post(endpoint, valid);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("retry-after"), "2");
    assert.deepEqual(limited.body, { errors: [{ message: "Too many requests" }] });
    assert.deepEqual(endpoint.transmissions, []);

    const retried = await post(endpoint, valid);
    assert.equal(retried.status, 200);
    const [received] = await endpoint.waitFor(1);
    assert.equal(received?.id, (retried.body as TransmissionResponse).results.id);
  });

  it("keeps failing with the given status and errors for as many requests as asked, in queue order", async (t) => {
    const endpoint = await start(t);
    const errors = [
      { message: "Invalid domain", description: "Unconfigured Sending Domain <shop.example.com>", code: "7001" },
    ];
    endpoint.failNext(400, { times: 2, errors });
    endpoint.failNext(503, { times: 1 });
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      const reply = await post(endpoint, valid);
      statuses.push(reply.status);
      if (attempt < 2) assert.deepEqual(reply.body, { errors } satisfies ErrorResponse);
      if (attempt === 2) assert.deepEqual(reply.body, { errors: [{ message: "Service Unavailable" }] });
    }
    assert.deepEqual(statuses, [400, 400, 503, 200]);
    assert.equal(endpoint.transmissions.length, 1);
  });

  it("accepts email_rfc822 content and records the raw message, but not alongside inline fields", async (t) => {
    const endpoint = await start(t);
    const message = "From: news@shop.example.com\r\nSubject: Hi\r\nContent-Type: text/plain\r\n\r\nHello {{name}}\r\n";
    const reply = await post(endpoint, {
      recipients: [{ address: "wilma@example.com" }],
      content: { email_rfc822: message },
    });
    assert.equal(reply.status, 200);
    assert.equal((reply.body as TransmissionResponse).results.total_accepted_recipients, 1);
    const [received] = await endpoint.waitFor(1);
    assert.deepEqual(received?.body.content, { email_rfc822: message });

    const mixed = await post(endpoint, { ...valid, content: { email_rfc822: message, subject: "Hi" } });
    assert.equal(mixed.status, 422);
    assert.deepEqual(mixed.body, {
      errors: [
        {
          message: "invalid combination of fields",
          description: "content.email_rfc822 and content.subject are mutually exclusive",
          code: "1301",
        },
      ],
    });
    assert.equal(endpoint.transmissions.length, 1);
  });

  it("answers other methods with 405 and unknown paths with 404, while a trailing slash is ignored", async (t) => {
    const endpoint = await start(t);
    const put = await fetch(`${endpoint.url}/api/v1/transmissions`, {
      method: "PUT",
      headers: { authorization: endpoint.apiKey },
    });
    assert.equal(put.status, 405);
    assert.deepEqual(await put.json(), {
      errors: [
        { message: "invalid http method", description: "PUT is not supported on /api/v1/transmissions", code: "1102" },
      ],
    });
    const unknown = await post(endpoint, valid, { path: "/api/v1/transmission" });
    assert.equal(unknown.status, 404);
    const slash = await post(endpoint, valid, { path: "/api/v1/transmissions/?num_rcpt_errors=3" });
    assert.equal(slash.status, 200);
    assert.equal(endpoint.transmissions.length, 1);
  });

  it("rejects waitFor when too few transmissions arrive in time, and when stopped", async (t) => {
    const endpoint = await start(t);
    await assert.rejects(endpoint.waitFor(1, 50), /0 of 1 transmissions arrived within 50 ms/);
    const pending = endpoint.waitFor(2, 5000);
    await post(endpoint, valid);
    await endpoint.stop();
    await assert.rejects(pending, /stopped/);
    await assert.rejects(fetch(`${endpoint.url}/api/v1/transmissions`));
  });
});
