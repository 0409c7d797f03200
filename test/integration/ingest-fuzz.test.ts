// Property and fuzz tests of the ingest HTTP API: random and hostile bodies, path ids, API keys
// and link tokens thrown at every route. Whatever arrives, the API answers 2xx or 4xx (never
// 5xx, never a crash), its errors keep the {error: {code: "RELAIS_…", message}} shape, and a
// request that got a 4xx changed nothing: neither a Redis key of the namespace nor a message on
// RELAIS_EVENTS / RELAIS_FEEDBACK. Every property uses its own namespace (fixture).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { z } from "zod";
import { useStack } from "#harness";
import { signToken, Streams } from "#runtime";
import type { TokenKind } from "#runtime";
import { ingestFixture, TOKEN_SECRET } from "../fixtures/ingest.ts";
import type { IngestFixture } from "../fixtures/ingest.ts";

const stack = useStack(["nats", "redis"]);

/** Runs per property: enough to find the bugs below in a few seconds each on 2 cores. */
const RUNS = 200;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// What the namespace holds, and what a request changed
// ---------------------------------------------------------------------------------------------

interface Holdings {
  /** Every Redis key of the namespace with its DUMP (base64). */
  redis: Map<string, string>;
  /** Messages per subject on RELAIS_EVENTS and RELAIS_FEEDBACK for the namespace. */
  events: Record<string, number>;
  feedback: Record<string, number>;
}

async function namespaceKeys(f: IngestFixture): Promise<string[]> {
  // The braces of the hash tag are glob syntax for MATCH: escape them.
  const pattern = `relais:\\{${f.namespace}\\}:*`;
  const keys = new Set<string>();
  let cursor = "0";
  do {
    const [next, batch] = await f.redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    for (const key of batch) keys.add(key);
  } while (cursor !== "0");
  return [...keys];
}

async function subjectCounts(f: IngestFixture, stream: string, filter: string): Promise<Record<string, number>> {
  const info = await f.jsm.streams.info(stream, { subjects_filter: filter });
  return { ...info.state.subjects };
}

async function holdings(f: IngestFixture): Promise<Holdings> {
  const keys = await namespaceKeys(f);
  const pipeline = f.redis.pipeline();
  for (const key of keys) pipeline.dumpBuffer(key);
  const replies = (await pipeline.exec()) ?? [];
  const redis = new Map<string, string>();
  keys.forEach((key, index) => {
    const [error, value] = replies[index] ?? [null, null];
    redis.set(key, error === null && Buffer.isBuffer(value) ? value.toString("base64") : `unreadable ${String(error)}`);
  });
  const [events, feedback] = await Promise.all([
    subjectCounts(f, Streams.events, `relais.events.${f.namespace}.>`),
    subjectCounts(f, Streams.feedback, `relais.feedback.${f.namespace}.>`),
  ]);
  return { redis, events, feedback };
}

function redisChanges(before: Holdings, after: Holdings): string[] {
  const changes: string[] = [];
  for (const [key, dump] of after.redis) {
    const old = before.redis.get(key);
    if (old === undefined) changes.push(`redis + ${key}`);
    else if (old !== dump) changes.push(`redis ~ ${key}`);
  }
  for (const key of before.redis.keys()) if (!after.redis.has(key)) changes.push(`redis - ${key}`);
  return changes;
}

function streamChanges(name: string, before: Record<string, number>, after: Record<string, number>): string[] {
  const changes: string[] = [];
  for (const subject of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const delta = (after[subject] ?? 0) - (before[subject] ?? 0);
    if (delta !== 0) changes.push(`${name} ${subject} ${delta > 0 ? "+" : ""}${delta}`);
  }
  return changes;
}

/** What a request changed, one line per key or subject: [] when it wrote nothing. */
function changes(before: Holdings, after: Holdings): string[] {
  return [
    ...redisChanges(before, after),
    ...streamChanges("events", before.events, after.events),
    ...streamChanges("feedback", before.feedback, after.feedback),
  ].sort();
}

function stored(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

// ---------------------------------------------------------------------------------------------
// Sending a request and the invariants every answer keeps
// ---------------------------------------------------------------------------------------------

interface Probe {
  method: "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS";
  url: string;
  headers?: Record<string, string>;
  payload?: string | Buffer;
}

interface Exchange {
  response: LightMyRequestResponse;
  /** What the request changed (see changes()). */
  wrote: string[];
  before: Holdings;
  after: Holdings;
  label: string;
}

const errorShape = z.object({
  error: z.object({ code: z.string().startsWith("RELAIS_"), message: z.string() }),
});

function preview(value: string | Buffer | undefined, max = 160): string {
  if (value === undefined) return "(none)";
  const text = typeof value === "string" ? value : `<${value.length} bytes> ${value.toString("latin1")}`;
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…(${text.length})` : text);
}

/** `value`, printed by fast-check with long strings cut, so counterexamples stay readable. */
function printable<T extends object>(value: T): T {
  const shorten = (_key: string, inner: unknown): unknown => {
    if (typeof inner === "string" && inner.length > 100) return `${inner.slice(0, 60)}…(${inner.length} chars)`;
    if (Array.isArray(inner) && inner.length > 20)
      return [...(inner as unknown[]).slice(0, 10), `…(${inner.length} items)`];
    return inner;
  };
  return Object.assign(value, { [fc.toStringMethod]: () => JSON.stringify(value, shorten) });
}

function describeExchange(probe: Probe, response: LightMyRequestResponse): string {
  const type = probe.headers?.["content-type"];
  return (
    `${probe.method} ${preview(probe.url, 200)} [${type ?? "no content-type"}] body=${preview(probe.payload)}` +
    ` → ${response.statusCode} ${preview(response.body, 300)}`
  );
}

function assertErrorShape(response: LightMyRequestResponse, label: string): void {
  let body: unknown;
  try {
    body = JSON.parse(response.body);
  } catch {
    assert.fail(`${label}\nthe error body is not JSON`);
  }
  assert.ok(errorShape.safeParse(body).success, `${label}\nthe error body is not {error: {code: "RELAIS_…", message}}`);
}

/** A DELETE of an unknown profile answers 404 yet announces the erasure (engage may hold instances). */
function isEraseAnnouncement(f: IngestFixture, probe: Probe, response: LightMyRequestResponse, wrote: string[]) {
  return (
    probe.method === "DELETE" &&
    response.statusCode === 404 &&
    wrote.length === 1 &&
    wrote[0] === `events relais.events.${f.namespace}.$erase +1`
  );
}

/**
 * Sends `probe` and checks what holds for every answer: no 5xx, errors in the RELAIS shape, and
 * nothing written on a 4xx (but the documented erase announcement of a DELETE answered 404).
 */
async function exchange(f: IngestFixture, probe: Probe): Promise<Exchange> {
  const before = await holdings(f);
  const response = await f.app.inject(probe as InjectOptions);
  const after = await holdings(f);
  const wrote = changes(before, after);
  const label = describeExchange(probe, response);
  assert.ok(response.statusCode < 500, `${label}\nanswered with a 5xx`);
  if (response.statusCode >= 400 && probe.method !== "HEAD") assertErrorShape(response, label);
  if (response.statusCode >= 400 && !isEraseAnnouncement(f, probe, response, wrote)) {
    assert.deepEqual(wrote, [], `${label}\nwrote although it answered ${response.statusCode}`);
  }
  return { response, wrote, before, after, label };
}

const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

/** The process is alive, answers, and no request polluted Object.prototype. */
async function assertHealthy(f: IngestFixture): Promise<void> {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeNames);
  const probe = {} as Record<string, unknown>;
  for (const key of ["admin", "polluted", "x"]) assert.equal(probe[key], undefined, `Object.prototype.${key}`);
  assert.equal((await f.app.inject({ url: "/healthz" })).statusCode, 200);
}

function headers(type: string | undefined, auth?: string): Record<string, string> {
  return {
    ...(auth !== undefined && { authorization: auth }),
    ...(type !== undefined && type !== "none" && { "content-type": type }),
  };
}

// ---------------------------------------------------------------------------------------------
// Text: JSON written by hand, so keys such as __proto__ and duplicate keys survive
// ---------------------------------------------------------------------------------------------

type Entry = readonly [key: string, jsonText: string];

const json = (value: unknown): string => JSON.stringify(value);
const objectText = (entries: readonly Entry[]): string =>
  `{${entries.map(([key, value]) => `${json(key)}:${value}`).join(",")}}`;
const arrayText = (items: readonly string[]): string => `[${items.join(",")}]`;

/** `fields` with `extra` put at `at`, replacing any field of the same name. */
function withField(fields: readonly Entry[], extra: Entry, at: number): Entry[] {
  const rest = fields.filter(([key]) => key !== extra[0]);
  rest.splice(at % (rest.length + 1), 0, extra);
  return rest;
}

/** RFC 3986 percent-encoding of the UTF-8 bytes (a lone surrogate becomes U+FFFD). */
function percentEncode(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function nested(depth: number, open = "[", close = "]", inner = ""): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

/** One character of any kind: astral, controls, NUL, lone UTF-16 surrogates, URL and JSON syntax. */
const anyChar: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1f }).map((code) => String.fromCharCode(code)) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)) },
  { weight: 1, arbitrary: fc.constantFrom("\u0000", "\u007f", "\u2028", "\ufeff", "%", "/", "\\", '"', "😀", "é") },
);
const hostileString = (maxLength = 24, minLength = 0) => fc.string({ unit: anyChar, minLength, maxLength });
const anyJsonText = fc.jsonValue({ maxDepth: 4, stringUnit: anyChar }).map(json);
const notStringText = fc
  .oneof(
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
  )
  .map(json);
const notStringOrNullText = notStringText.filter((text) => text !== "null");
const notObjectText = fc
  .oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.string({ maxLength: 8 }), fc.array(fc.integer()))
  .map(json);
/** A string of `allowed` characters broken by at least one character outside them. */
const brokenString = (allowed: RegExp) =>
  fc
    .tuple(
      fc.stringMatching(allowed, { size: "xsmall" }),
      fc.constantFrom(" ", "/", "\u0000", "é", "#", "%", "\ud800", "!", "\n", "😀", ","),
      fc.stringMatching(allowed, { size: "xsmall" }),
    )
    .map(([a, bad, b]) => a + bad + b);

const ATTRIBUTE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const PROFILE_ID = /^[A-Za-z0-9._:@+-]{1,256}$/;
const LANGUAGE = /^[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8})*$/;

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A content type; "none" sends none. */
const contentTypeArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: fc.constant("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/xml",
      "application/jsonx",
      "application/json; charset=latin1",
      "*/*",
      "",
      "none",
    ),
  },
);

// Identify ---------------------------------------------------------------------------------

const IDENTIFY_FIELDS = new Set(["attributes", "email", "emailSubscription", "language", "timezone", "webPush"]);

const validAttributeName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,15}$/);
const validAttributeValue = fc
  .oneof(
    fc.string({ unit: anyChar, maxLength: 30 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.string({ unit: anyChar, maxLength: 10 }), { maxLength: 5 }),
  )
  .map(json);
const badAttributeName = fc.oneof(
  hostileString(12).filter((name) => !ATTRIBUTE_NAME.test(name)),
  fc.constantFrom("", "1st", "_x", "a-b", "a b", "a".repeat(65), "é", "a\u0000", "__proto__", "constructor.prototype"),
);
const badAttributeValue = fc.oneof(
  fc.constantFrom(
    '{"a":1}',
    "{}",
    "[[]]",
    "[null]",
    json("x".repeat(2049)),
    json(Array.from({ length: 101 }, () => "a")),
    json(["x".repeat(257)]),
    "1e999",
    "-1e999",
    '{"constructor":{"prototype":{"polluted":true}}}',
  ),
  fc.array(fc.oneof(fc.integer(), fc.boolean()), { minLength: 1, maxLength: 3 }).map(json),
);
const attributesText = fc
  .array(
    fc.tuple(
      fc.oneof(
        { weight: 8, arbitrary: validAttributeName },
        { weight: 1, arbitrary: hostileString(12) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            "__proto__",
            "constructor",
            "prototype",
            "toString",
            "valueOf",
            "1st",
            "",
            "a\u0000",
          ),
        },
      ),
      fc.oneof({ weight: 6, arbitrary: validAttributeValue }, { weight: 1, arbitrary: badAttributeValue }),
    ),
    { maxLength: 6 },
  )
  .map(objectText);
const emailText = fc.oneof(
  fc.emailAddress().map(json),
  fc.constantFrom('"someone@example.com"', '"A.B@EXAMPLE.COM"', "null", '"a@b"', '"a\\u0000@example.com"', '""'),
  hostileString(20).map(json),
);
const languageText = fc.oneof(
  fc.constantFrom('"fr"', '"pt-BR"', '"zh-Hant-TW"', "null", '"f"', '"fr_FR"'),
  hostileString(10).map(json),
);
const timezoneText = fc.oneof(
  fc.constantFrom('"Europe/Paris"', '"UTC"', '"America/Argentina/Buenos_Aires"', "null", '"Mars/Olympus"', '""'),
  hostileString(20).map(json),
);
const base64url = fc.stringMatching(/^[A-Za-z0-9_-]{1,40}={0,2}$/);
const pushSubscriptionText = fc
  .record({
    endpoint: fc.oneof(fc.webUrl({ validSchemes: ["https"] }), fc.webUrl(), hostileString(30)),
    p256dh: fc.oneof({ weight: 4, arbitrary: base64url }, { weight: 1, arbitrary: hostileString(10) }),
    auth: fc.oneof({ weight: 4, arbitrary: base64url }, { weight: 1, arbitrary: hostileString(10) }),
  })
  .map(({ endpoint, p256dh, auth }) => json({ endpoint, keys: { p256dh, auth } }));
const webPushText = fc
  .record(
    {
      add: fc.array(pushSubscriptionText, { maxLength: 3 }).map(arrayText),
      remove: fc.array(fc.oneof(fc.webUrl(), hostileString(20)), { maxLength: 3 }).map(json),
    },
    { requiredKeys: [] },
  )
  .map((fields) => objectText(Object.entries(fields)));
const unknownIdentifyKey = fc
  .oneof(hostileString(12), fc.constantFrom("prototype", "Attributes", "email ", "id", "events", "__proto__"))
  .filter((key) => !IDENTIFY_FIELDS.has(key));

const identifyField: fc.Arbitrary<Entry> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constant("attributes"), attributesText) },
  { weight: 2, arbitrary: fc.tuple(fc.constant("email"), emailText) },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constant("emailSubscription"),
      fc.oneof(fc.constantFrom('"subscribed"', '"unsubscribed"', '"Subscribed"'), anyJsonText),
    ),
  },
  { weight: 2, arbitrary: fc.tuple(fc.constant("language"), languageText) },
  { weight: 2, arbitrary: fc.tuple(fc.constant("timezone"), timezoneText) },
  { weight: 2, arbitrary: fc.tuple(fc.constant("webPush"), fc.oneof(webPushText, anyJsonText)) },
  { weight: 1, arbitrary: fc.tuple(unknownIdentifyKey, anyJsonText) },
);

const validIdentifyField: fc.Arbitrary<Entry> = fc.oneof(
  fc.tuple(
    fc.constant("attributes"),
    fc
      .uniqueArray(fc.tuple(validAttributeName, validAttributeValue), { maxLength: 4, selector: ([n]) => n })
      .map(objectText),
  ),
  fc.tuple(fc.constant("email"), fc.constantFrom('"seed@example.com"', '"other@example.org"', "null")),
  fc.tuple(fc.constant("emailSubscription"), fc.constantFrom('"subscribed"', '"unsubscribed"')),
  fc.tuple(fc.constant("language"), fc.constantFrom('"fr"', '"pt-BR"', "null")),
  fc.tuple(fc.constant("timezone"), fc.constantFrom('"Europe/Paris"', '"UTC"', "null")),
  fc.tuple(
    fc.constant("webPush"),
    fc.constantFrom(
      '{"remove":["https://push.example/x"]}',
      '{"add":[{"endpoint":"https://push.example/y","keys":{"p256dh":"BBB","auth":"aaa"}}]}',
    ),
  ),
);

const pushSubscription = (n: number) => ({ endpoint: `https://push.example/${n}`, keys: { p256dh: "B", auth: "a" } });
const badAttributesText = fc.oneof(
  notObjectText,
  fc.constant(objectText(Array.from({ length: 201 }, (_, i): Entry => [`a${i}`, "1"]))),
  fc
    .tuple(
      fc.array(fc.tuple(validAttributeName, validAttributeValue), { maxLength: 3 }),
      fc.oneof(fc.tuple(badAttributeName, validAttributeValue), fc.tuple(validAttributeName, badAttributeValue)),
      fc.nat(),
    )
    .map(([valid, bad, at]) => objectText(withField(valid, bad, at))),
);
/** An identify field whose value the API must refuse, whatever the other fields say. */
const badIdentifyField: fc.Arbitrary<Entry> = fc.oneof(
  fc.tuple(unknownIdentifyKey, anyJsonText),
  fc.tuple(fc.constant("attributes"), badAttributesText),
  fc.tuple(
    fc.constant("email"),
    fc.oneof(
      notStringOrNullText,
      hostileString(20)
        .filter((text) => !text.includes("@"))
        .map(json),
      fc.constantFrom("a@", "@example.com", "a@b", "a b@example.com", `${"x".repeat(250)}@example.com`).map(json),
    ),
  ),
  fc.tuple(
    fc.constant("emailSubscription"),
    anyJsonText.filter((text) => text !== '"subscribed"' && text !== '"unsubscribed"'),
  ),
  fc.tuple(
    fc.constant("language"),
    fc.oneof(
      notStringOrNullText,
      fc
        .oneof(hostileString(10), fc.constantFrom("", "f", "french!", "fr_FR", "fr-"))
        .filter((tag) => !LANGUAGE.test(tag))
        .map(json),
    ),
  ),
  fc.tuple(
    fc.constant("timezone"),
    fc.oneof(
      notStringOrNullText,
      fc
        .oneof(hostileString(20), fc.constantFrom("Mars/Olympus", "Europe/Nowhere", "", "x".repeat(65)))
        .filter((zone) => zone.length > 64 || !isTimeZone(zone))
        .map(json),
    ),
  ),
  fc.tuple(
    fc.constant("webPush"),
    fc.oneof(
      notObjectText,
      fc.constantFrom(
        '{"add":{}}',
        '{"add":[{"endpoint":"http://push.example/x","keys":{"p256dh":"BBB","auth":"aaa"}}]}',
        '{"add":[{"endpoint":"https://push.example/x"}]}',
        '{"add":[{"endpoint":"https://push.example/x","keys":{"p256dh":"B B","auth":"aaa"}}]}',
        '{"add":[{"endpoint":"https://push.example/x","keys":{"p256dh":"BBB","auth":"aaa"},"x":1}]}',
        '{"remove":"https://push.example/x"}',
        json({ remove: Array.from({ length: 11 }, (_, i) => `https://push.example/${i}`) }),
        json({ add: Array.from({ length: 11 }, (_, i) => pushSubscription(i)) }),
        '{"extra":1}',
      ),
    ),
  ),
);

// Track ------------------------------------------------------------------------------------

const EVENT_FIELDS = new Set(["profileId", "name", "timestamp", "id", "attributes"]);
const idLike = fc.stringMatching(/^[A-Za-z0-9._:@+-]{1,24}$/);
const eventName = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
const timestamp = fc.oneof(
  fc
    .date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
    .map((date) => date.toISOString()),
  fc.constantFrom("2026-11-27T10:00:00+01:00", "2026-11-27T10:00:00.123456Z", "0001-01-01T00:00:00Z"),
);
const unknownEventKey = fc
  .oneof(hostileString(12), fc.constantFrom("namespace", "receivedAt", "Name", "profile_id", "__proto__"))
  .filter((key) => !EVENT_FIELDS.has(key));
const validEventFields: fc.Arbitrary<Entry[]> = fc
  .record(
    {
      profileId: idLike.map(json),
      name: eventName.map(json),
      id: fc.uuid().map(json),
      timestamp: timestamp.map(json),
      attributes: fc
        .dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 })
        .map(json),
    },
    { requiredKeys: ["profileId", "name"] },
  )
  .map((fields) => Object.entries(fields));

const badProfileIdText = fc
  .oneof(fc.constantFrom("", "x".repeat(257)), brokenString(/^[A-Za-z0-9._:@+-]*$/))
  .filter((id) => !PROFILE_ID.test(id))
  .map(json);
const badTimestampText = fc
  .oneof(
    fc.constantFrom(
      "yesterday",
      "",
      "2026-13-01T00:00:00Z",
      "2026-02-30T00:00:00Z",
      "2026-01-01",
      "2026-01-01T24:00:00Z",
      "2026-01-01T00:00:00",
      "2026-01-01 00:00:00Z",
      "1764237600000",
      "2026-01-01T00:00:00+25:00",
      "2026-01-01T00:00:00Z\u0000",
    ),
    hostileString(20).filter((text) => !/^\d{4}-/.test(text)),
  )
  .map(json);
const tooDeepText = fc
  .tuple(fc.integer({ min: 9, max: 60 }), fc.boolean())
  .map(([depth, arrays]) => objectText([["a", arrays ? nested(depth) : nested(depth, '{"a":', "}", "1")]]));

type Mutation = { drop: string } | { set: Entry };
/** A change to a valid event after which the API must refuse the whole batch. */
const badEventMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(unknownEventKey, anyJsonText).map((set) => ({ set })),
  fc.constantFrom("profileId", "name").map((drop) => ({ drop })),
  fc.tuple(fc.constant("profileId"), fc.oneof(notStringText, badProfileIdText)).map((set) => ({ set })),
  fc
    .tuple(
      fc.constant("name"),
      fc.oneof(
        notStringText,
        fc.constantFrom('""', json("x".repeat(101)), '"bad.name"', '"a:b"'),
        brokenString(/^[A-Za-z0-9_-]*$/).map(json),
      ),
    )
    .map((set) => ({ set })),
  fc.tuple(fc.constant("timestamp"), fc.oneof(notStringText, badTimestampText)).map((set) => ({ set })),
  fc
    .tuple(
      fc.constant("id"),
      fc.oneof(
        notStringText,
        fc.constantFrom('""', json("x".repeat(129))),
        brokenString(/^[A-Za-z0-9._:@+-]*$/).map(json),
      ),
    )
    .map((set) => ({ set })),
  fc
    .tuple(
      fc.constant("attributes"),
      fc.oneof(
        fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.string({ maxLength: 8 })).map(json),
        tooDeepText,
        fc.constant(objectText([["k".repeat(129), "1"]])),
      ),
    )
    .map((set) => ({ set })),
);

function mutate(fields: readonly Entry[], mutation: Mutation): Entry[] {
  if ("drop" in mutation) return fields.filter(([key]) => key !== mutation.drop);
  return [...fields.filter(([key]) => key !== mutation.set[0]), mutation.set];
}

/** Valid events whose attribute keys and values may hold any character, lone surrogates included. */
const oddEventFields: fc.Arbitrary<Entry[]> = fc
  .record(
    {
      profileId: idLike.map(json),
      name: eventName.map(json),
      id: fc.uuid().map(json),
      timestamp: timestamp.map(json),
      attributes: fc
        .array(
          fc.tuple(
            fc.oneof(fc.string({ maxLength: 12 }), hostileString(12), fc.constantFrom("constructor", "toString", "")),
            fc.jsonValue({ maxDepth: 5, stringUnit: anyChar }).map(json),
          ),
          { maxLength: 4 },
        )
        .map(objectText),
    },
    { requiredKeys: ["profileId", "name"] },
  )
  .map((fields) => Object.entries(fields));
/** An event that is valid three times in four. */
const anyEventText = fc.oneof(
  { weight: 3, arbitrary: oddEventFields.map(objectText) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(oddEventFields, badEventMutation)
      .map(([fields, mutation]) => objectText(mutate(fields, mutation))),
  },
);

const eventsBody = (events: readonly string[], extra: Entry[] = []) =>
  objectText([["events", arrayText(events)], ...extra]);

// ---------------------------------------------------------------------------------------------
// Hand-written hostile bodies
// ---------------------------------------------------------------------------------------------

interface HostileBody {
  label: string;
  payload: string | Buffer;
  /** Content type; undefined sends none. */
  type: string | undefined;
}

const DEEP = 10_000;
const invalidUtf8 = (before: string, after: string, bytes = 8) =>
  Buffer.concat([Buffer.from(before), Buffer.alloc(bytes, 0xff), Buffer.from(after)]);

/** A body sent as application/json, or with `type` ("none" sends no content type). */
function hostile(label: string, payload: string | Buffer, type = "application/json"): HostileBody {
  return printable({ label, payload, type: type === "none" ? undefined : type });
}

/** Bodies no route may accept, whatever it is. */
const anywhereInvalid: HostileBody[] = [
  hostile("10,000 nested arrays", nested(DEEP)),
  hostile("10,000 nested objects", nested(DEEP, '{"a":', "}", "1")),
  hostile("500,000 nested arrays (1 MB)", nested(500_000)),
  hostile("a 1.5 MiB string", json("x".repeat(1.5 * MiB))),
  hostile("a 1.5 MiB key", `{${json("k".repeat(1.5 * MiB))}:1}`),
  hostile("__proto__ at the top", '{"__proto__":{"admin":true}}'),
  hostile("__proto__ spelled with escapes", '{"\\u005f_proto__":{"admin":true}}'),
  hostile("constructor.prototype at the top", '{"constructor":{"prototype":{"admin":true}}}'),
  hostile("an empty body", ""),
  hostile("truncated JSON", '{"attributes":{"a":'),
  hostile("mismatched brackets", "{]"),
  hostile("single quotes", "{'attributes':{}}"),
  hostile("a trailing comma", '{"attributes":{},}'),
  hostile("NaN", "NaN"),
  hostile("two documents", '{"a":1} {"b":2}'),
  hostile("a raw NUL byte", "\u0000"),
  hostile("a raw NUL inside a string", '{"attributes":{"a":"x\u0000y"}}'),
  hostile("a raw newline inside a string", '{"attributes":{"a":"x\ny"}}'),
  hostile("invalid UTF-8 outside strings", invalidUtf8("{", "}")),
  hostile("UTF-16 text", Buffer.from('{"attributes":{}}', "utf16le")),
  hostile("null", "null"),
  hostile("a string", '"just a string"'),
  hostile("an array", "[]"),
  hostile("a number out of range", "1e999999"),
  hostile("JSON as text/plain", '{"attributes":{"plan":"gold"}}', "text/plain"),
  hostile("JSON as a form", '{"attributes":{"plan":"gold"}}', "application/x-www-form-urlencoded"),
  hostile("JSON as multipart", '{"attributes":{"plan":"gold"}}', "multipart/form-data; boundary=x"),
  hostile("JSON as XML", '{"attributes":{"plan":"gold"}}', "application/xml"),
  hostile("JSON as application/jsonx", '{"attributes":{"plan":"gold"}}', "application/jsonx"),
  hostile("JSON without a content type", '{"attributes":{"plan":"gold"}}', "none"),
  hostile("a form", "a=1&b=2", "application/x-www-form-urlencoded"),
];

const identifyInvalid: HostileBody[] = [
  ...anywhereInvalid,
  hostile("10,000 nested arrays in an attribute", `{"attributes":{"a":${nested(DEEP)}}}`),
  hostile("10,000 nested objects in an attribute", `{"attributes":{"a":${nested(DEEP, '{"a":', "}", "1")}}}`),
  hostile("a 1.5 MiB attribute", json({ attributes: { a: "x".repeat(1.5 * MiB) } })),
  hostile("a 1 MiB attribute under the body limit", json({ attributes: { a: "x".repeat(MiB - 100) } })),
  hostile("__proto__ as an attribute", '{"attributes":{"__proto__":{"admin":true}}}'),
  hostile("constructor.prototype as an attribute", '{"attributes":{"constructor":{"prototype":{"admin":true}}}}'),
  hostile("prototype as a field", '{"prototype":{"admin":true}}'),
  hostile("prototype as an attribute object", '{"attributes":{"prototype":{"admin":true}}}'),
  hostile("NaN as an attribute", '{"attributes":{"a":NaN}}'),
  hostile("an escaped NUL in an attribute name", '{"attributes":{"a\\u0000":1}}'),
  hostile("an escaped NUL in the email", '{"email":"a\\u0000@example.com"}'),
  hostile("attributes as an array", '{"attributes":[]}'),
  hostile("attributes as a string", '{"attributes":"plan=gold"}'),
  hostile("email as a number", '{"email":42}'),
  hostile("emailSubscription as a boolean", '{"emailSubscription":true}'),
  hostile("webPush as an array", '{"webPush":[]}'),
  hostile("timezone as an object", '{"timezone":{}}'),
  hostile("language as a list", '{"language":["fr"]}'),
  hostile(
    "valid fields beside a bad one",
    '{"attributes":{"plan":"gold"},"email":"x@example.com","timezone":"Mars/Olympus"}',
  ),
];

const okEvent = (profileId = "p", id = "e1") => json({ profileId, name: "viewed", id });
const trackInvalid: HostileBody[] = [
  ...anywhereInvalid,
  hostile("10,000 nested arrays as the batch", `{"events":${nested(DEEP)}}`),
  hostile(
    "10,000 nested arrays in an attribute",
    eventsBody([`{"profileId":"p","name":"x","attributes":{"a":${nested(DEEP)}}}`]),
  ),
  hostile(
    "10,000 nested objects in an attribute",
    eventsBody([`{"profileId":"p","name":"x","attributes":{"a":${nested(DEEP, '{"a":', "}", "1")}}}`]),
  ),
  hostile(
    "400,000 nested arrays in an attribute",
    eventsBody([`{"profileId":"p","name":"x","attributes":{"a":${nested(400_000)}}}`]),
  ),
  hostile("1,001 events", eventsBody(Array.from({ length: 1001 }, (_, i) => okEvent("p", `m${i}`)))),
  hostile(
    "a 1.5 MiB attribute",
    eventsBody([json({ profileId: "p", name: "x", attributes: { a: "x".repeat(1.5 * MiB) } })]),
  ),
  hostile("__proto__ around the batch", `{"__proto__":{"events":[${okEvent()}]}}`),
  hostile("__proto__ in an event", `{"events":[{"__proto__":{"profileId":"p"},"profileId":"p","name":"x"}]}`),
  hostile(
    "__proto__ as an attribute",
    eventsBody(['{"profileId":"p","name":"x","attributes":{"__proto__":{"polluted":1}}}']),
  ),
  hostile(
    "__proto__ as an escaped attribute",
    eventsBody(['{"profileId":"p","name":"x","attributes":{"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":1}}}']),
  ),
  hostile(
    "constructor.prototype as an attribute",
    eventsBody(['{"profileId":"p","name":"x","attributes":{"constructor":{"prototype":{"polluted":1}}}}']),
  ),
  hostile("a NUL in the profile id", eventsBody(['{"profileId":"p\\u0000","name":"x"}'])),
  hostile("a NUL in the name", eventsBody(['{"profileId":"p","name":"x\\u0000"}'])),
  hostile("a NUL in the id", eventsBody(['{"profileId":"p","name":"x","id":"e\\u0000"}'])),
  hostile(
    "a NUL in the timestamp",
    eventsBody(['{"profileId":"p","name":"x","timestamp":"2026-01-01T00:00:00Z\\u0000"}']),
  ),
  hostile("a good event beside a bad one", eventsBody([okEvent("p", "good"), '{"profileId":"p","name":"bad.name"}'])),
  hostile("no events", '{"events":[]}'),
  hostile("events as an object", '{"events":{}}'),
  hostile("events as a string", '{"events":"[]"}'),
  hostile("an event as a number", '{"events":[1]}'),
  hostile("an event as an array", '{"events":[[]]}'),
  hostile("an event as null", '{"events":[null]}'),
  hostile("a profile id as a number", '{"events":[{"profileId":1,"name":"x"}]}'),
];

// ---------------------------------------------------------------------------------------------
// Profiles: identify, view, erase
// ---------------------------------------------------------------------------------------------

const identifyBody: fc.Arbitrary<HostileBody> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.array(validIdentifyField, { maxLength: 5 }).map((fields) => hostile("valid", objectText(fields))),
  },
  {
    weight: 8,
    arbitrary: fc
      .tuple(fc.array(identifyField, { maxLength: 5 }).map(objectText), contentTypeArb)
      .map(([payload, type]) => hostile("random", payload, type)),
  },
  { weight: 1, arbitrary: anyJsonText.map((payload) => hostile("random JSON", payload)) },
  { weight: 1, arbitrary: hostileString(40).map((payload) => hostile("random text", payload)) },
  { weight: 1, arbitrary: fc.constantFrom(...identifyInvalid) },
);

/** The attributes a valid identify body sets (null removes), JSON-normalised; undefined if unknown. */
function expectedAttributes(payload: string | Buffer): unknown {
  try {
    const body = JSON.parse(payload.toString()) as { attributes?: Record<string, unknown> };
    const set = Object.entries(body.attributes ?? {}).filter(([, value]) => value !== null);
    return JSON.parse(JSON.stringify(Object.fromEntries(set))) as unknown;
  } catch {
    return undefined;
  }
}

async function seedProfile(f: IngestFixture, id: string): Promise<string> {
  const body = {
    attributes: { plan: "gold", points: 1, tags: ["a"] },
    email: "seed@example.com",
    emailSubscription: "subscribed",
    language: "fr",
    timezone: "Europe/Paris",
    webPush: { add: [pushSubscription(1)] },
  };
  const put = await exchange(f, {
    method: "PUT",
    url: `/v1/profiles/${id}`,
    headers: headers("application/json", f.auth),
    payload: json(body),
  });
  assert.equal(put.response.statusCode, 201);
  const track = await exchange(f, {
    method: "POST",
    url: "/v1/events",
    headers: headers("application/json", f.auth),
    payload: eventsBody([okEvent(id, `seed-${id}`)]),
  });
  assert.equal(track.response.statusCode, 202);
  const view = await f.app.inject({ url: `/v1/profiles/${id}`, headers: headers(undefined, f.auth) });
  assert.equal(view.statusCode, 200);
  return view.body;
}

describe("the profile API under random input", () => {
  it("answers every random identify body with 2xx or 4xx, writes nothing on 4xx, and reads back what it took", async (t) => {
    const f = await ingestFixture(t, stack);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(identifyBody, async ({ payload, type }) => {
        const id = `fuzz-${n++}`;
        const put = await exchange(f, {
          method: "PUT",
          url: `/v1/profiles/${id}`,
          headers: headers(type, f.auth),
          payload,
        });
        if (put.response.statusCode >= 400) return;
        assert.equal(put.response.statusCode, 201, `${put.label}\na fresh id is created`);
        assert.ok(
          put.wrote.every((change) => change.startsWith("redis ")),
          `${put.label}\nidentify publishes nothing: ${put.wrote.join(", ")}`,
        );
        const view = await f.app.inject({ url: `/v1/profiles/${id}`, headers: headers(undefined, f.auth) });
        assert.equal(view.statusCode, 200, put.label);
        const expected = expectedAttributes(payload);
        if (expected !== undefined) {
          const attributes = JSON.parse(JSON.stringify(view.json<{ attributes: unknown }>().attributes)) as unknown;
          assert.deepEqual(attributes, expected, `${put.label}\nattributes read back`);
        }
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });

  it("rejects every identify body with an unknown field or a wrong value with 400 and leaves the profile untouched", async (t) => {
    const f = await ingestFixture(t, stack);
    const seeded = await seedProfile(f, "seeded");
    const invalidBody = fc
      .tuple(fc.array(validIdentifyField, { maxLength: 4 }), badIdentifyField, fc.nat())
      .map(([valid, bad, at]) => objectText(withField(valid, bad, at)));
    await fc.assert(
      fc.asyncProperty(invalidBody, async (payload) => {
        const put = await exchange(f, {
          method: "PUT",
          url: "/v1/profiles/seeded",
          headers: headers("application/json", f.auth),
          payload,
        });
        assert.equal(put.response.statusCode, 400, put.label);
        assert.equal(put.response.json<{ error: { code: string } }>().error.code, "RELAIS_HTTP_INVALID_REQUEST");
      }),
      { numRuns: RUNS },
    );
    const view = await f.app.inject({ url: "/v1/profiles/seeded", headers: headers(undefined, f.auth) });
    assert.equal(view.body, seeded, "the seeded profile reads exactly as before");
    await assertHealthy(f);
  });

  it("rejects hostile identify bodies (deep nesting, huge strings, prototype keys, bad JSON, wrong types and content types, NUL) with 4xx and writes nothing", async (t) => {
    const f = await ingestFixture(t, stack);
    const seeded = await seedProfile(f, "target");
    for (const { label, payload, type } of identifyInvalid) {
      await t.test(label, async () => {
        const put = await exchange(f, {
          method: "PUT",
          url: "/v1/profiles/target",
          headers: headers(type, f.auth),
          payload,
        });
        assert.ok(put.response.statusCode >= 400, `${put.label}\nmust be refused`);
        await assertHealthy(f);
      });
    }
    const view = await f.app.inject({ url: "/v1/profiles/target", headers: headers(undefined, f.auth) });
    assert.equal(view.body, seeded);
  });

  it("takes hostile but valid identify bodies (a BOM, prototype-named attributes, NUL, surrogates, bad UTF-8, limits) and reads them back", async (t) => {
    const f = await ingestFixture(t, stack);
    const cases: { label: string; payload: string | Buffer; type?: string; attributes: Record<string, unknown> }[] = [
      { label: "a byte-order mark", payload: '\ufeff{"attributes":{"a":1}}', attributes: { a: 1 } },
      {
        label: "a charset that is not UTF-8",
        payload: '{"attributes":{"a":"é"}}',
        type: "application/json; charset=utf-16",
        attributes: { a: "é" },
      },
      {
        label: "prototype-named attributes",
        payload:
          '{"attributes":{"constructor":"x","toString":"y","hasOwnProperty":1,"valueOf":true,"prototype":false}}',
        attributes: { constructor: "x", toString: "y", hasOwnProperty: 1, valueOf: true, prototype: false },
      },
      { label: "a duplicate key", payload: '{"attributes":{"a":1,"a":2}}', attributes: { a: 2 } },
      {
        label: "NUL, lone surrogates and separators in values",
        payload: '{"attributes":{"s":"\\u0000\\ud800\\udfff\\u2028","l":["\\udc00","\\u0000"]}}',
        attributes: { s: "\u0000\ud800\udfff\u2028", l: ["\udc00", "\u0000"] },
      },
      {
        label: "invalid UTF-8 inside a value",
        payload: invalidUtf8('{"attributes":{"s":"', '"}}', 3),
        attributes: { s: "\ufffd\ufffd\ufffd" },
      },
      {
        label: "a 2,048-character value",
        payload: json({ attributes: { s: "x".repeat(2048) } }),
        attributes: { s: "x".repeat(2048) },
      },
      {
        label: "200 attributes",
        payload: json({ attributes: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`a${i}`, i])) }),
        attributes: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`a${i}`, i])),
      },
    ];
    for (const [index, { label, payload, type, attributes }] of cases.entries()) {
      await t.test(label, async () => {
        const put = await exchange(f, {
          method: "PUT",
          url: `/v1/profiles/odd-${index}`,
          headers: headers(type ?? "application/json", f.auth),
          payload,
        });
        assert.equal(put.response.statusCode, 201, put.label);
        const view = await f.app.inject({ url: `/v1/profiles/odd-${index}`, headers: headers(undefined, f.auth) });
        assert.deepEqual(view.json<{ attributes: unknown }>().attributes, attributes);
      });
    }
    await assertHealthy(f);
  });

  it("answers 422 and writes nothing when identify would take a profile past its field limit", async (t) => {
    const f = await ingestFixture(t, stack);
    const attributes = (prefix: string) =>
      json({ attributes: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`${prefix}${i}`, i])) });
    for (const [prefix, status] of [
      ["a", 201],
      ["b", 200],
      ["c", 422],
    ] as const) {
      const put = await exchange(f, {
        method: "PUT",
        url: "/v1/profiles/full",
        headers: headers("application/json", f.auth),
        payload: attributes(prefix),
      });
      assert.equal(put.response.statusCode, status, put.label);
    }
  });

  it("answers any id in the profile path with 2xx or 4xx on PUT, GET and DELETE, and writes only for a valid id", async (t) => {
    const f = await ingestFixture(t, stack);
    const id = fc.oneof(
      { weight: 3, arbitrary: idLike },
      { weight: 3, arbitrary: hostileString(30) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "",
          "%",
          "%00",
          "a\u0000b",
          "a/b",
          "a?b=1",
          "a#b",
          " a",
          "\ud800",
          "x".repeat(256),
          "x".repeat(257),
          "x".repeat(8192),
          "x".repeat(20_000),
        ),
      },
    );
    // Sent as typed, not encoded: malformed escapes, dot segments, spaces, raw non-ASCII.
    const rawId = fc.constantFrom(
      "%zz",
      "%E0%A4%A",
      "a%",
      "%%",
      "..",
      "../../metrics",
      "a b",
      "é",
      "\u0000",
      "a?b",
      "a#b",
    );
    const probe = fc
      .record({
        method: fc.constantFrom("PUT" as const, "GET" as const, "DELETE" as const),
        id: fc.oneof(
          { weight: 6, arbitrary: id.map((value) => ({ value, raw: false })) },
          {
            weight: 1,
            arbitrary: rawId.map((value) => ({ value, raw: true })),
          },
        ),
      })
      .map(printable);
    const allowed = { PUT: [200, 201], GET: [200, 404], DELETE: [200, 404] };
    await fc.assert(
      fc.asyncProperty(probe, async ({ method, id: { value, raw } }) => {
        const sent = await exchange(f, {
          method,
          url: `/v1/profiles/${raw ? value : percentEncode(value)}`,
          headers: headers(method === "PUT" ? "application/json" : undefined, f.auth),
          ...(method === "PUT" && { payload: '{"attributes":{"n":1}}' }),
        });
        const decoded = value.toWellFormed();
        if (raw || decoded === "." || decoded === "..") return;
        const status = sent.response.statusCode;
        if (PROFILE_ID.test(decoded)) assert.ok(allowed[method].includes(status), sent.label);
        else assert.ok(status >= 400 && status < 500, `${sent.label}\nan invalid id is refused`);
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });

  it("keeps a profile whose id ends in :events or :subs apart from the profile it extends, or refuses that id", async (t) => {
    // Redis keys are p:<id>, p:<id>:events and p:<id>:subs, and ":" is a legal id character.
    const f = await ingestFixture(t, stack);
    let n = 0;
    const send = async (method: "PUT" | "POST", url: string, body: unknown) =>
      exchange(f, { method, url, headers: headers("application/json", f.auth), payload: json(body) });
    const read = async (id: string) =>
      (await f.app.inject({ url: `/v1/profiles/${id}`, headers: headers(undefined, f.auth) })).json<{
        attributes: { who?: string };
        events: unknown[];
        email: { history: unknown[] };
      }>();
    const writeBase = async (base: string) => {
      const steps = [
        await send("PUT", `/v1/profiles/${base}`, { attributes: { who: "base" }, emailSubscription: "subscribed" }),
        await send("POST", "/v1/events", { events: [{ profileId: base, name: "viewed" }] }),
        await send("PUT", `/v1/profiles/${base}`, { emailSubscription: "unsubscribed" }),
      ];
      for (const step of steps) assert.ok(step.response.statusCode < 300, step.label);
    };
    /** Writes the suffixed profile; false when the API refuses such an id (400, nothing written). */
    const writeOther = async (other: string) => {
      const steps = [
        await send("PUT", `/v1/profiles/${other}`, { attributes: { who: "other" } }),
        await send("POST", "/v1/events", { events: [{ profileId: other, name: "viewed" }] }),
      ];
      const refused = steps.map((step) => step.response.statusCode === 400);
      for (const step of steps) assert.ok(step.response.statusCode < 300 || refused.every(Boolean), step.label);
      return !refused.every(Boolean);
    };
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[A-Za-z0-9._@+-]{1,12}$/),
        fc.constantFrom(":events", ":subs"),
        fc.boolean(),
        async (stem, suffix, baseFirst) => {
          const base = `${stem}-${n++}`;
          const other = `${base}${suffix}`;
          let kept: boolean;
          if (baseFirst) {
            await writeBase(base);
            kept = await writeOther(other);
          } else {
            kept = await writeOther(other);
            await writeBase(base);
          }
          const baseView = await read(base);
          assert.equal(baseView.attributes.who, "base");
          assert.equal(baseView.events.length, 1);
          assert.equal(baseView.email.history.length, 2);
          if (kept) {
            const otherView = await read(other);
            assert.equal(otherView.attributes.who, "other");
            assert.equal(otherView.events.length, 1);
          }
          const erase = await exchange(f, {
            method: "DELETE",
            url: `/v1/profiles/${base}`,
            headers: headers(undefined, f.auth),
          });
          assert.equal(erase.response.statusCode, 200, erase.label);
          if (kept) assert.equal((await read(other)).attributes.who, "other", "erasing a profile leaves the other one");
        },
      ),
      { numRuns: 30 },
    );
    await assertHealthy(f);
  });
});

// ---------------------------------------------------------------------------------------------
// Track
// ---------------------------------------------------------------------------------------------

const trackBody: fc.Arbitrary<HostileBody> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(
        fc.array(anyEventText, { minLength: 1, maxLength: 4 }),
        fc.option(fc.tuple(fc.oneof(hostileString(8), fc.constantFrom("Events", "namespace")), anyJsonText), {
          freq: 10,
          nil: undefined,
        }),
        contentTypeArb,
      )
      .map(([events, extra, type]) => hostile("random", eventsBody(events, extra === undefined ? [] : [extra]), type)),
  },
  { weight: 1, arbitrary: anyJsonText.map((payload) => hostile("random JSON", payload)) },
  { weight: 1, arbitrary: hostileString(40).map((payload) => hostile("random text", payload)) },
  { weight: 1, arbitrary: fc.constantFrom(...trackInvalid) },
);

interface Accepted {
  accepted: number;
  duplicates: number;
  ids: string[];
}

/** A 202 stored exactly the events it reports accepted, on RELAIS_EVENTS, and counted every event. */
function assertAcceptedStored(sent: Exchange, payload: string | Buffer): number {
  assert.equal(sent.response.statusCode, 202, sent.label);
  const result = sent.response.json<Accepted>();
  const delta = stored(sent.after.events) - stored(sent.before.events);
  assert.equal(delta, result.accepted, `${sent.label}\nRELAIS_EVENTS grew by ${delta}, not by the accepted count`);
  try {
    const { events } = JSON.parse(payload.toString()) as { events: unknown[] };
    assert.equal(result.ids.length, events.length, sent.label);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
  }
  assert.equal(result.accepted + result.duplicates, result.ids.length, sent.label);
  return result.accepted;
}

/** POST /v1/events; `type` undefined sends no content type. */
async function track(f: IngestFixture, payload: string | Buffer, type: string | undefined) {
  return exchange(f, { method: "POST", url: "/v1/events", headers: headers(type, f.auth), payload });
}

describe("the track API under random input", () => {
  it("answers every random track body with 202 or 4xx, writes nothing on 4xx, and stores exactly the events it accepted", async (t) => {
    const f = await ingestFixture(t, stack);
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(trackBody, async ({ payload, type }) => {
        const sent = await track(f, payload, type);
        if (sent.response.statusCode < 400) accepted += assertAcceptedStored(sent, payload);
      }),
      { numRuns: RUNS },
    );
    assert.equal((await f.storedEvents()).length, accepted, "RELAIS_EVENTS holds the accepted events, no more");
    await assertHealthy(f);
  });

  it("rejects, whole, every batch holding an invalid event or field, with 400, and stores none of it", async (t) => {
    const f = await ingestFixture(t, stack);
    const badEventBatch = fc
      .tuple(fc.array(validEventFields, { maxLength: 4 }), validEventFields, badEventMutation, fc.nat())
      .map(([valid, victim, mutation, at]) => {
        const events = valid.map(objectText);
        events.splice(at % (events.length + 1), 0, objectText(mutate(victim, mutation)));
        return eventsBody(events);
      });
    const badBatch = fc.oneof(
      { weight: 5, arbitrary: badEventBatch },
      {
        weight: 1,
        arbitrary: fc
          .tuple(
            fc.array(validEventFields, { minLength: 1, maxLength: 3 }),
            fc.oneof(hostileString(8), fc.constant("Events")),
            anyJsonText,
          )
          .filter(([, key]) => key !== "events")
          .map(([events, key, value]) => eventsBody(events.map(objectText), [[key, value]])),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "{}",
          '{"events":[]}',
          '{"events":null}',
          '{"events":{}}',
          '{"events":"[]"}',
          '{"Events":[]}',
        ),
      },
    );
    await fc.assert(
      fc.asyncProperty(badBatch, async (payload) => {
        const sent = await track(f, payload, "application/json");
        assert.equal(sent.response.statusCode, 400, sent.label);
      }),
      { numRuns: RUNS },
    );
    assert.equal((await f.storedEvents()).length, 0);
    await assertHealthy(f);
  });

  it("rejects hostile track bodies (deep nesting, huge strings, prototype keys, bad JSON, wrong types and content types, NUL) with 4xx and stores nothing", async (t) => {
    const f = await ingestFixture(t, stack);
    for (const { label, payload, type } of trackInvalid) {
      await t.test(label, async () => {
        const sent = await track(f, payload, type);
        assert.ok(sent.response.statusCode >= 400, `${sent.label}\nmust be refused`);
        await assertHealthy(f);
      });
    }
  });

  it("accepts hostile but valid batches (1,000 events, depth 8, prototype-named and odd keys, NUL, bad UTF-8) and stores exactly them", async (t) => {
    const f = await ingestFixture(t, stack);
    const cases: HostileBody[] = [
      hostile("1,000 events", eventsBody(Array.from({ length: 1000 }, (_, i) => okEvent(`p${i % 7}`, `k${i}`)))),
      hostile("attributes nested 8 deep", eventsBody([`{"profileId":"p","name":"x","attributes":{"a":${nested(7)}}}`])),
      hostile(
        "prototype-named and empty keys",
        eventsBody(['{"profileId":"p","name":"x","attributes":{"constructor":1,"toString":{"valueOf":2},"":3}}']),
      ),
      hostile(
        "NUL and separators in values",
        eventsBody(['{"profileId":"p","name":"x","attributes":{"s":"\\u0000\\u2028"}}']),
      ),
      hostile(
        "invalid UTF-8 inside a value",
        invalidUtf8('{"events":[{"profileId":"p","name":"x","attributes":{"s":"', '"}}]}'),
      ),
      hostile("a retried batch", eventsBody([okEvent("p", "again"), okEvent("p", "again")])),
    ];
    for (const { label, payload, type } of cases) {
      await t.test(label, async () => {
        assertAcceptedStored(await track(f, payload, type), payload);
      });
    }
    await assertHealthy(f);
  });

  it("stores an event whose attributes hold a lone UTF-16 surrogate whole or refuses it whole, never a 503 after a partial write", async (t) => {
    const f = await ingestFixture(t, stack);
    const payload = eventsBody([
      okEvent("s0", "before"),
      '{"profileId":"s1","name":"x","id":"lone","attributes":{"a":"\\ud800","\\udc00":1}}',
      okEvent("s2", "after"),
    ]);
    const sent = await track(f, payload, "application/json");
    if (sent.response.statusCode >= 400) return;
    assertAcceptedStored(sent, payload);
    const view = await f.app.inject({ url: "/v1/profiles/s1", headers: headers(undefined, f.auth) });
    const profile = view.json<{ events: { id: string }[]; lastActivityAt: string | null }>();
    assert.deepEqual(
      profile.events.map((event) => event.id),
      ["lone"],
    );
    assert.ok(profile.lastActivityAt !== null);
  });

  it("answers 413 or 202, never 503, to events that fit the 1 MiB body limit but not a NATS message, storing all or none", async (t) => {
    const f = await ingestFixture(t, stack);
    const shell = '{"events":[{"profileId":"big","name":"x","attributes":{"b":""}}]}';
    const cases: HostileBody[] = [
      hostile("one event of exactly 1 MiB", shell.replace('""', json("x".repeat(MiB - shell.length)))),
      // Each invalid byte becomes U+FFFD: 1 byte in the body, 3 in the stored message.
      hostile("400 KB of invalid UTF-8 in a value", invalidUtf8(shell.slice(0, -5), shell.slice(-5), 400_000)),
      hostile(
        "a small event beside one that grows past the limit",
        invalidUtf8(
          `{"events":[${okEvent("small", "small")},{"profileId":"big","name":"x","attributes":{"b":"`,
          '"}}]}',
          400_000,
        ),
      ),
    ];
    for (const { label, payload, type } of cases) {
      await t.test(label, async () => {
        const sent = await track(f, payload, type);
        if (sent.response.statusCode < 400) assertAcceptedStored(sent, payload);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

describe("authentication under random input", () => {
  it("answers any malformed, altered or foreign Authorization header with 401 and writes nothing", async (t) => {
    const f = await ingestFixture(t, stack);
    await seedProfile(f, "kept");
    const headerChar = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code));
    const secretStart = "Bearer main.".length;
    const altered = fc.tuple(fc.nat(), fc.stringMatching(/^[A-Za-z0-9_-]$/)).map(([at, char]) => {
      const index = secretStart + (at % (f.auth.length - secretStart));
      const replacement = f.auth[index] === char ? (char === "A" ? "B" : "A") : char;
      return f.auth.slice(0, index) + replacement + f.auth.slice(index + 1);
    });
    const authorization = fc.oneof(
      fc.string({ unit: headerChar, maxLength: 80 }),
      fc.string({ unit: headerChar, maxLength: 80 }).map((rest) => `Bearer ${rest}`),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{16,64}$/).map((key) => `Bearer ${key}`),
      altered,
      fc.constantFrom(
        "Bearer",
        `bearer ${f.auth.slice(7)}`,
        f.auth.replace("Bearer", "Basic"),
        `${f.auth}${"x".repeat(300)}`,
        `Bearer main.${"a".repeat(15)}`,
        f.auth.replace("main.", "main.."),
        f.auth.replace("main.", "other."),
        `${f.auth}, ${f.auth}`,
      ),
    );
    const route = fc.constantFrom(
      { method: "PUT" as const, url: "/v1/profiles/kept", payload: '{"attributes":{"plan":"free"}}' },
      { method: "PUT" as const, url: "/v1/profiles/new", payload: "{}" },
      { method: "POST" as const, url: "/v1/events", payload: eventsBody([okEvent("kept", "k")]) },
      { method: "GET" as const, url: "/v1/profiles/kept" },
      { method: "DELETE" as const, url: "/v1/profiles/kept" },
    );
    await fc.assert(
      fc.asyncProperty(route, authorization, async (probe, auth) => {
        fc.pre(auth.trim() !== f.auth);
        const sent = await exchange(f, {
          ...probe,
          headers: headers(probe.payload === undefined ? undefined : "application/json", auth),
        });
        assert.equal(sent.response.statusCode, 401, sent.label);
        assert.equal(sent.response.json<{ error: { code: string } }>().error.code, "RELAIS_HTTP_UNAUTHORIZED");
        assert.equal(sent.response.headers["www-authenticate"], "Bearer");
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });
});

// ---------------------------------------------------------------------------------------------
// Recipients' links
// ---------------------------------------------------------------------------------------------

const KINDS: readonly TokenKind[] = ["u", "o", "c"];
const linkRoute = fc.constantFrom(
  { method: "GET" as const, kind: "u" as const },
  { method: "POST" as const, kind: "u" as const },
  { method: "HEAD" as const, kind: "u" as const },
  { method: "GET" as const, kind: "o" as const },
  { method: "HEAD" as const, kind: "o" as const },
  { method: "GET" as const, kind: "c" as const },
);

type TokenCase =
  | { type: "text"; text: string; raw: boolean }
  | { type: "tampered"; at: number; char: string; op: "replace" | "insert" | "delete" }
  | { type: "wrongKind"; shift: number; profileId: string };

const tokenCase: fc.Arbitrary<TokenCase> = fc
  .oneof(
    fc.record({ type: fc.constant("text" as const), text: hostileString(60), raw: fc.constant(false) }),
    fc.record({
      type: fc.constant("text" as const),
      text: fc.tuple(base64url, base64url).map(([a, b]) => `${a}.${b}`),
      raw: fc.constant(false),
    }),
    fc.record({
      type: fc.constant("text" as const),
      text: fc.constantFrom("", ".", "..", "a.b.c", "x".repeat(8192), "x".repeat(8193), "x".repeat(30_000)),
      raw: fc.constant(false),
    }),
    fc.record({
      type: fc.constant("text" as const),
      text: fc.constantFrom("%zz", "%E0%A4%A", "%00", "a%", "a b", "é", "..%2F..%2Fmetrics", "a?x=1", "a#b"),
      raw: fc.constant(true),
    }),
    fc.record({
      type: fc.constant("tampered" as const),
      at: fc.nat(),
      char: fc.stringMatching(/^[A-Za-z0-9_-]$/),
      op: fc.constantFrom("replace" as const, "insert" as const, "delete" as const),
    }),
    fc.record({
      type: fc.constant("wrongKind" as const),
      shift: fc.constantFrom(1, 2),
      profileId: hostileString(10, 1),
    }),
  )
  .map(printable);

/** A token that must not verify for `kind`: forged, altered in its signed part, or of another kind. */
function badToken(f: IngestFixture, kind: TokenKind, spec: TokenCase): string {
  const sign = (k: TokenKind, profileId: string) =>
    signToken(TOKEN_SECRET, {
      kind: k,
      namespace: f.namespace,
      profileId,
      messageId: "m1",
      url: "https://shop.example/",
    });
  switch (spec.type) {
    case "text":
      return spec.raw ? spec.text : percentEncode(spec.text);
    case "wrongKind": {
      const other = KINDS[(KINDS.indexOf(kind) + spec.shift) % KINDS.length] ?? "u";
      return sign(other, spec.profileId);
    }
    case "tampered": {
      const [body = "", signature = ""] = sign(kind, "victim").split(".");
      const at = spec.at % body.length;
      const old = body[at] ?? "";
      const changed =
        spec.op === "insert"
          ? body.slice(0, at) + spec.char + body.slice(at)
          : spec.op === "delete"
            ? body.slice(0, at) + body.slice(at + 1)
            : body.slice(0, at) + (old === spec.char ? (old === "A" ? "B" : "A") : spec.char) + body.slice(at + 1);
      return `${changed}.${signature}`;
    }
  }
}

/** Whether `text` holds a control character, which no header value may carry (header injection). */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}
const oneClick = { "content-type": "application/x-www-form-urlencoded" };

describe("recipients' links under random input", () => {
  it("answers forged, altered and other-kind tokens with 404 (or the pixel) and records nothing", async (t) => {
    const f = await ingestFixture(t, stack);
    await fc.assert(
      fc.asyncProperty(linkRoute, tokenCase, async ({ method, kind }, spec) => {
        const sent = await exchange(f, {
          method,
          url: `/${kind}/${badToken(f, kind, spec)}`,
          ...(method === "POST" && { headers: oneClick, payload: "List-Unsubscribe=One-Click" }),
        });
        const status = sent.response.statusCode;
        if (kind === "o" && status < 400) {
          assert.equal(status, 200, sent.label);
          assert.equal(sent.response.headers["content-type"], "image/gif");
        } else {
          assert.ok(status >= 400, `${sent.label}\nan invalid token is refused`);
        }
        assert.deepEqual(sent.wrote, [], `${sent.label}\nan invalid token records nothing`);
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });

  it("answers the one-click POST under random bodies and content types without a 5xx or a write", async (t) => {
    const f = await ingestFixture(t, stack);
    const body = fc.oneof(
      fc.tuple(hostileString(60), contentTypeArb),
      fc.tuple(fc.constantFrom(...anywhereInvalid.map((c) => c.payload.toString())), contentTypeArb),
      fc.constant<[string, string]>(["x".repeat(5000), "application/x-www-form-urlencoded"]).map(printable),
    );
    await fc.assert(
      fc.asyncProperty(tokenCase, body, async (spec, [payload, type]) => {
        const sent = await exchange(f, {
          method: "POST",
          url: `/u/${badToken(f, "u", spec)}`,
          headers: headers(type),
          payload,
        });
        assert.ok(sent.response.statusCode >= 400, sent.label);
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });

  it("serves validly signed links carrying hostile profile ids and URLs: a page, the pixel, a safe redirect or 404, and never resurrects a profile", async (t) => {
    const f = await ingestFixture(t, stack);
    const url = fc.oneof(
      fc.webUrl({ validSchemes: ["https"], withQueryParameters: true, withFragments: true }),
      fc.webUrl(),
      hostileString(30).map((path) => `https://shop.example/${path}`),
      fc.constantFrom("javascript:alert(1)", "//evil.example/", "HTTPS://shop.example/", "ftp://shop.example/", ""),
    );
    const link = fc
      .record({
        route: linkRoute,
        profileId: hostileString(40, 1),
        messageId: fc.option(hostileString(20), { nil: undefined }),
        url,
      })
      .map(printable);
    await fc.assert(
      fc.asyncProperty(link, async ({ route: { method, kind }, profileId, messageId, url: target }) => {
        const token = signToken(TOKEN_SECRET, { kind, namespace: f.namespace, profileId, messageId, url: target });
        const sent = await exchange(f, {
          method,
          url: `/${kind}/${token}`,
          ...(method === "POST" && { headers: oneClick, payload: "List-Unsubscribe=One-Click" }),
        });
        const status = sent.response.statusCode;
        const outcome = (name: string) => [`feedback relais.feedback.${f.namespace}.${name} +1`];
        switch (kind) {
          case "u":
            // Nobody is subscribed in this namespace: the page shows, nothing is created or reported.
            assert.equal(status, 200, sent.label);
            assert.deepEqual(sent.wrote, [], `${sent.label}\nan unknown profile stays unknown`);
            return;
          case "o":
            assert.equal(status, 200, sent.label);
            assert.deepEqual(sent.wrote, outcome("opened"), sent.label);
            return;
          case "c": {
            // Schemes are case-insensitive (RFC 3986 §3.1): HTTPS://x is redirectable too.
            const redirectable = /^https?:\/\//i.test(target);
            const plain = /^[\u0021-\u007e]*$/.test(target);
            if (!redirectable) assert.equal(status, 404, sent.label);
            else if (plain) assert.equal(status, 302, sent.label);
            else assert.ok(status === 302 || status === 404, sent.label);
            if (status !== 302) return;
            const location = String(sent.response.headers.location);
            assert.ok(!hasControl(location), `${sent.label}\nLocation ${JSON.stringify(location)}`);
            // As signed, or normalised by a URL parser.
            if (plain) assert.ok([target, URL.canParse(target) && new URL(target).href].includes(location), sent.label);
            assert.deepEqual(sent.wrote, outcome("clicked"), sent.label);
          }
        }
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });

  it("redirects a signed click whose URL holds non-ASCII or control characters safely or refuses it, never with a 500", async (t) => {
    const f = await ingestFixture(t, stack);
    for (const target of [
      "https://shop.example/café",
      "https://shop.example/☃?q=é",
      "https://shop.example/a\r\nset-cookie: x=1",
      "https://shop.example/\u0000",
    ]) {
      await t.test(JSON.stringify(target), async () => {
        const token = signToken(TOKEN_SECRET, { kind: "c", namespace: f.namespace, profileId: "p", url: target });
        const sent = await exchange(f, { method: "GET", url: `/c/${token}` });
        assert.ok([302, 404].includes(sent.response.statusCode), sent.label);
        if (sent.response.statusCode === 302) {
          const location = String(sent.response.headers.location);
          assert.ok(location.startsWith("https://shop.example/") && !hasControl(location), location);
        }
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Operational endpoints, unknown routes, malformed URLs
// ---------------------------------------------------------------------------------------------

describe("the rest of the surface under random input", () => {
  it("answers the operational endpoints and unknown routes under random methods, paths, query strings and bodies without a 5xx or a write", async (t) => {
    const f = await ingestFixture(t, stack);
    const OPS = ["/healthz", "/readyz", "/metrics", "/docs/json"];
    const path = fc.oneof(
      fc.constantFrom(...OPS),
      fc.constantFrom(
        "/",
        "/docs",
        "/v1",
        "/v1/",
        "/v1/profiles",
        "/v1/events/x",
        "/u",
        "/o/",
        "/healthz/x",
        "//healthz",
        "/HEALTHZ",
      ),
      hostileString(30).map((segment) => `/${percentEncode(segment)}`),
    );
    const query = fc.oneof(
      fc.constant(""),
      hostileString(30).map((q) => `?${percentEncode(q)}`),
      fc.constantFrom(
        "?__proto__[x]=1",
        "?constructor[prototype][x]=1",
        "?a=%zz",
        "?%",
        "?a[]=1&a[]=2",
        `?${"x".repeat(5000)}`,
      ),
    );
    const method = fc.constantFrom<Probe["method"]>("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS");
    const body = fc.option(fc.tuple(anyJsonText, contentTypeArb), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(path, query, method, body, async (p, q, m, b) => {
        const sent = await exchange(f, {
          method: m,
          url: `${p}${q}`,
          ...(b !== undefined && m !== "GET" && m !== "HEAD" && { headers: headers(b[1]), payload: b[0] }),
        });
        if (OPS.includes(p) && (m === "GET" || m === "HEAD")) assert.equal(sent.response.statusCode, 200, sent.label);
        assert.deepEqual(sent.wrote, [], sent.label);
      }),
      { numRuns: RUNS },
    );
    await assertHealthy(f);
  });

  it("answers malformed percent-encoding and over-long path parameters with 4xx in the RELAIS error shape", async (t) => {
    const f = await ingestFixture(t, stack);
    for (const url of [
      "/v1/profiles/%zz",
      "/v1/profiles/%E0%A4%A",
      `/v1/profiles/${"a".repeat(9000)}`,
      "/u/%zz",
      `/o/${"a".repeat(9000)}`,
    ]) {
      await t.test(url.slice(0, 40), async () => {
        const sent = await exchange(f, { method: "GET", url, headers: headers(undefined, f.auth) });
        assert.ok(sent.response.statusCode >= 400, sent.label);
      });
    }
  });
});
