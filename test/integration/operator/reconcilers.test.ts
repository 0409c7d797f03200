// The reconcilers against real NATS and Redis, resources from a folder, pools as real processes:
// what a user sees in status and what the workers find in the config KV.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { generateDkimKey, spawnRelais, useStack, waitUntil } from "#harness";
import { API_KEY_LABEL, deliverPool, FINALIZER } from "#operator";
import type { Condition } from "#crds";
import type { ResourceKind } from "#operator";
import {
  ApiKeyKeys,
  ConfigKeys,
  ConsumerNames,
  PauseTargets,
  PolicyKeys,
  readPauses,
  RedisKeys,
  senderConfigSchema,
  Streams,
} from "#runtime";
import { operatorFixture, TOKEN_SECRET } from "../../fixtures/operator.ts";

const stack = useStack(["nats", "redis"]);

const sender = (name: string, extra = "") => `apiVersion: relais.dev/v1alpha1
kind: Sender
metadata:
  name: ${name}
spec:
  channel: email
  email:
    from:
      address: shop@example.com
    transport:
      smtp:
        host: 127.0.0.1
        port: 2525
        tls: none
${extra}`;

const dkim = `    dkim:
      domain: example.com
      selector: s1
      privateKeySecretRef:
        name: dkim
`;

const secret = (name: string, data: Record<string, string>, labels = "") => `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
${labels}stringData:
${Object.entries(data)
  .map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`)
  .join("\n")}
`;

const automation = (name: string, options: { sender?: string; filter?: string; subject?: string; webpush?: boolean }) =>
  `apiVersion: relais.dev/v1alpha1
kind: Automation
metadata:
  name: ${name}
spec:
  senderRef:
    name: ${options.sender ?? "mail"}
  trigger:
    event: signed_up
${options.filter === undefined ? "" : `    filter: ${JSON.stringify(options.filter)}\n`}  message:
${
  options.webpush === true
    ? "    webpush:\n      title: Hi\n      body: Welcome\n"
    : `    email:\n      subject: ${JSON.stringify(options.subject ?? "Welcome {{ profile.attributes.firstName }}")}\n      html: <p>Hello</p>\n`
}`;

describe("Sender reconciler", () => {
  it("reports a missing Secret by name, recovers once it exists, and publishes the Sender and its pool", async (t) => {
    const op = await operatorFixture(t, stack);
    await op.write("sender.yaml", sender("mail", dkim));
    const missing = await op.waitForReady("Sender", "mail", (ready) => ready.status === "False");
    assert.equal(missing.reason, "SecretMissing");
    assert.match(missing.message, /Secret "dkim" \(spec\.email\.dkim\.privateKeySecretRef\) does not exist/);
    assert.equal(missing.observedGeneration, 1);
    assert.equal(await op.kv.get(ConfigKeys.of(op.namespace, "Sender", "mail")), null, "nothing published");
    const statusFile = await readFile(join(op.dir, ".relais-status", `${op.namespace}.Sender.mail.yaml`), "utf8");
    assert.match(statusFile, /reason: SecretMissing/);

    await op.write("secret.yaml", secret("dkim", { privateKey: "not a key" }));
    const invalid = await op.waitForReady("Sender", "mail", (ready) => ready.reason === "SecretInvalid");
    assert.equal(
      invalid.message,
      'Secret "dkim" key "privateKey" (spec.email.dkim.privateKeySecretRef) is not a PEM private key',
    );
    assert.doesNotMatch(invalid.message, /not a key"/, "the value never shows");

    await op.write("secret.yaml", secret("dkim", { privateKey: generateDkimKey().privateKeyPem }));
    const ready = await op.waitForReady("Sender", "mail", (condition) => condition.status === "True");
    assert.equal(ready.reason, "Reconciled");
    const entry = await op.kv.get(ConfigKeys.of(op.namespace, "Sender", "mail"));
    const config = senderConfigSchema.parse(entry?.json());
    assert.equal(config.generation, 1);
    assert.equal(config.spec.email?.from.address, "shop@example.com");
    const consumer = await op.jsm.consumers.info(Streams.sends, ConsumerNames.deliver(op.namespace, "mail"));
    assert.deepEqual(consumer.config.filter_subjects, [
      `relais.sends.${op.namespace}.mail`,
      `relais.sends.${op.namespace}.mail.>`,
    ]);
    const pool = deliverPool(op.namespace, "mail");
    const started = await waitUntil(async () => (await op.pools.state(pool))?.readyReplicas === 1, {
      timeoutMs: 15_000,
    });
    assert.equal(started, "", "the pool's replica serves /readyz");
  });

  it("rolls the pool when the Sender's spec changes and removes it when the Sender goes", async (t) => {
    const op = await operatorFixture(t, stack);
    await op.write("sender.yaml", sender("mail"));
    await op.waitForReady("Sender", "mail", (ready) => ready.status === "True");
    const pool = deliverPool(op.namespace, "mail");
    const before = op.pools.replicas(pool)[0]?.pid;
    assert.ok(before !== undefined);

    await op.write("sender.yaml", sender("mail").replace("shop@example.com", "news@example.com"));
    const rolled = await waitUntil(
      async () => {
        const pid = op.pools.replicas(pool)[0]?.pid;
        return pid !== undefined && pid !== before;
      },
      { timeoutMs: 15_000 },
    );
    assert.equal(rolled, "", "a new process serves the edited Sender");
    const entry = senderConfigSchema.parse((await op.kv.get(ConfigKeys.of(op.namespace, "Sender", "mail")))?.json());
    assert.equal(entry.generation, 2);
    assert.equal(entry.spec.email?.from.address, "news@example.com");

    await op.remove("sender.yaml");
    const gone = await waitUntil(
      async () =>
        (await op.pools.state(pool)) === undefined &&
        (await op.kv.get(ConfigKeys.of(op.namespace, "Sender", "mail")))?.operation === "DEL",
      { timeoutMs: 15_000 },
    );
    assert.equal(gone, "", "pool and config removed");
  });
});

describe("Automation and Campaign reconciler", () => {
  it("names the sender problems, the CEL error and the template error with their positions", async (t) => {
    const op = await operatorFixture(t, stack);
    const kvKey = ConfigKeys.of(op.namespace, "Automation", "welcome");
    await op.write("automation.yaml", automation("welcome", {}));
    const notFound = await op.waitForReady("Automation", "welcome", (ready) => ready.status === "False");
    assert.equal(notFound.reason, "SenderNotFound");
    assert.match(notFound.message, /Sender "mail" \(spec\.senderRef\.name\) does not exist/);

    await op.write("sender.yaml", sender("mail"));
    await op.waitForReady("Automation", "welcome", (ready) => ready.status === "True");
    assert.equal((await op.kv.get(kvKey))?.json<{ generation: number }>().generation, 1);

    await op.write("automation.yaml", automation("welcome", { webpush: true }));
    const mismatch = await op.waitForReady(
      "Automation",
      "welcome",
      (ready) => ready.reason === "SenderChannelMismatch",
    );
    assert.equal(mismatch.message, 'Sender "mail" sends email but spec.message is webpush');

    await op.write("automation.yaml", automation("welcome", { filter: "event.attributes.plan == " }));
    const cel = await op.waitForReady("Automation", "welcome", (ready) => ready.reason === "InvalidExpression");
    assert.match(cel.message, /^spec\.trigger\.filter line 1, column \d+: /);
    assert.equal(cel.observedGeneration, 3);

    await op.write(
      "automation.yaml",
      automation("welcome", { subject: "Hi {{ profile.attributes.firstName | shout }}" }),
    );
    const liquid = await op.waitForReady("Automation", "welcome", (ready) => ready.reason === "InvalidTemplate");
    assert.equal(liquid.message, "spec.message.email.subject line 1, column 4: undefined filter: shout");
    assert.equal(
      (await op.kv.get(kvKey))?.json<{ generation: number }>().generation,
      1,
      "the last valid generation runs on",
    );

    await op.write("automation.yaml", automation("welcome", { filter: 'event.attributes.plan == "pro"' }));
    await op.waitForReady("Automation", "welcome", (ready) => ready.status === "True");
    assert.equal((await op.kv.get(kvKey))?.json<{ generation: number }>().generation, 5);
  });

  it("holds a finalizer and removes the config from the KV before the resource goes", async (t) => {
    const op = await operatorFixture(t, stack);
    await op.write("sender.yaml", sender("mail"));
    await op.write(
      "campaign.yaml",
      `apiVersion: relais.dev/v1alpha1
kind: Campaign
metadata:
  name: promo
spec:
  senderRef:
    name: mail
  audience:
    segment: profile.attributes.country == "FR"
  message:
    email:
      subject: Promo
      html: <p>-20%</p>
`,
    );
    await op.waitForReady("Campaign", "promo", (ready) => ready.status === "True");
    const campaign = await op.source.get(op.key("Campaign", "promo"));
    assert.deepEqual((campaign?.metadata as { finalizers?: string[] }).finalizers, [FINALIZER]);
    const kvKey = ConfigKeys.of(op.namespace, "Campaign", "promo");
    assert.equal((await op.kv.get(kvKey))?.operation, "PUT");

    await op.remove("campaign.yaml");
    const gone = await waitUntil(async () => (await op.source.get(op.key("Campaign", "promo"))) === undefined, {
      timeoutMs: 10_000,
    });
    assert.equal(gone, "");
    assert.equal((await op.kv.get(kvKey))?.operation, "DEL");
  });
});

describe("API key reconciler", () => {
  const value = "Zm9vYmFyYmF6cXV4cXV1eA";
  it("publishes the hash of a labelled Secret's key; ingest accepts it, and refuses it seconds after the Secret goes", async (t) => {
    const op = await operatorFixture(t, stack);
    const ingest = await spawnRelais(t, {
      command: "ingest",
      name: "ingest",
      env: {
        RELAIS_NATS_URL: stack.natsUrl,
        RELAIS_REDIS_URL: stack.redisUrl,
        RELAIS_TOKEN_SECRET: TOKEN_SECRET,
        RELAIS_LOG_LEVEL: "warn",
      },
    });
    const putProfile = async (): Promise<number> => {
      const response = await fetch(`${ingest.baseUrl}/v1/profiles/ann`, {
        method: "PUT",
        headers: { authorization: `Bearer shop.${value}`, "content-type": "application/json" },
        body: JSON.stringify({ email: "ann@example.com" }),
      });
      await response.body?.cancel();
      return response.status;
    };
    const labels = `  labels:\n    ${API_KEY_LABEL}: "true"\n`;
    await op.write("key.yaml", secret("shop-key", { key: `shop.${value}` }, labels));
    const kvKey = ApiKeyKeys.of(op.namespace, "shop");
    const published = await waitUntil(async () => (await op.kv.get(kvKey))?.operation === "PUT", { timeoutMs: 10_000 });
    assert.equal(published, "");
    assert.deepEqual((await op.kv.get(kvKey))?.json(), {
      keyId: "shop",
      namespace: op.namespace,
      secretSha256: createHash("sha256").update(value).digest("hex"),
    });
    const accepted = await waitUntil(async () => [200, 201].includes(await putProfile()), { timeoutMs: 15_000 });
    assert.equal(accepted, "", "ingest accepts the key once the KV has it");

    await op.remove("key.yaml");
    const removedAt = Date.now();
    const revoked = await waitUntil(async () => (await putProfile()) === 401, { timeoutMs: 5000 });
    assert.equal(revoked, "", "the revoked key is refused within 5 s");
    t.diagnostic(`key refused ${Date.now() - removedAt} ms after its Secret was removed`);
    assert.notEqual((await op.kv.get(kvKey))?.operation, "PUT");
  });
});

describe("status figures", () => {
  it("folds the workers' figures into status, and a resume annotation clears an auto-pause", async (t) => {
    const op = await operatorFixture(t, stack);
    // What the workers would have recorded: an automation's counters, a policy's decisions, a pause.
    await op.redis.hset(RedisKeys.automationCounters(op.namespace, "welcome"), {
      triggered: "5",
      filteredOut: "2",
      waiting: "1",
      cancelled: "1",
      erased: "1",
      sent: "1",
      "skipped:grace": "1",
    });
    await op.redis.hset(PolicyKeys.decisions(op.namespace), "weekly-cap:capped", "3");
    const pausedAt = new Date().toISOString();
    const pause = { policy: "weekly-cap", reason: "bounceRate", rate: 0.5, sends: 200, at: pausedAt };
    await op.redis.hset(PolicyKeys.pauses(op.namespace), PauseTargets.sender("mail"), JSON.stringify(pause));
    await op.write("sender.yaml", sender("mail"));
    await op.write("automation.yaml", automation("welcome", {}));
    await op.write(
      "policy.yaml",
      "apiVersion: relais.dev/v1alpha1\nkind: SendPolicy\nmetadata:\n  name: weekly-cap\nspec:\n  frequencyCap:\n    max: 3\n    per: 168h\n",
    );
    const status = async (kind: ResourceKind, name: string) =>
      (await op.source.get(op.key(kind, name)))?.status as Record<string, unknown> | undefined;
    const conditionOf = async (type: string) =>
      ((await status("Sender", "mail"))?.conditions as Condition[] | undefined)?.find((c) => c.type === type);

    assert.equal(
      await waitUntil(async () => (await conditionOf("Paused"))?.status === "True", { timeoutMs: 15_000 }),
      "",
      "Sender paused",
    );
    assert.match((await conditionOf("Paused"))?.message ?? "", /weekly-cap: bounceRate 50\.0% over 200 sends/);
    const pausedEvents = () => op.events.filter(({ event }) => event.reason === "AutoPaused");
    assert.deepEqual(
      pausedEvents().map(({ key, event }) => [key.kind, key.name, event.type]),
      [["Sender", "mail", "Warning"]],
    );
    await waitUntil(async () => (await status("Automation", "welcome"))?.counters !== undefined, { timeoutMs: 15_000 });
    assert.deepEqual((await status("Automation", "welcome"))?.counters, {
      triggered: 5,
      filteredOut: 2,
      waiting: 1,
      cancelled: 2,
      sent: 1,
      skipped: { grace: 1 },
    });
    await waitUntil(async () => (await status("SendPolicy", "weekly-cap"))?.decisions !== undefined, {
      timeoutMs: 15_000,
    });
    assert.deepEqual((await status("SendPolicy", "weekly-cap"))?.decisions, { capped: 3 });

    await op.write(
      "sender.yaml",
      sender("mail").replace(
        "  name: mail\n",
        `  name: mail\n  annotations:\n    relais.dev/resume: "${new Date().toISOString()}"\n`,
      ),
    );
    assert.equal(
      await waitUntil(async () => (await conditionOf("Paused")) === undefined, { timeoutMs: 15_000 }),
      "",
      "resumed",
    );
    assert.equal((await readPauses(op.redis, op.namespace)).size, 0);
    assert.equal(pausedEvents().length, 1, "one Event for one pause, however many reconciles saw it");
  });
});
