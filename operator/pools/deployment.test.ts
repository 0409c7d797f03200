import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { objectName } from "./deployment.ts";
import { poolConsumer } from "./keda.ts";

describe("pool object names", () => {
  it("keep a short pool name as it is", () => {
    assert.equal(objectName("deliver-mail"), "deliver-mail");
  });

  it("fit a long pool name into 63 characters, distinct for names sharing a long prefix", () => {
    const a = objectName(`deliver-${"x".repeat(80)}-a`);
    const b = objectName(`deliver-${"x".repeat(80)}-b`);
    assert.ok(a.length <= 63 && b.length <= 63);
    assert.match(a, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.notEqual(a, b);
    assert.equal(objectName(`deliver-${"x".repeat(80)}-a`), a, "stable across calls");
  });
});

describe("the consumer a pool scales on", () => {
  const base = { env: {}, secretRefs: [], minReplicas: 0, maxReplicas: 3, configHash: "h" };

  it("is the Sender's durable consumer on RELAIS_SENDS for a deliver pool", () => {
    assert.deepEqual(
      poolConsumer({
        ...base,
        kind: "deliver",
        namespace: "shop",
        name: "deliver-mail",
        owner: { kind: "Sender", namespace: "shop", name: "mail" },
      }),
      { stream: "RELAIS_SENDS", consumer: "deliver_shop_mail" },
    );
  });

  it("is engage on RELAIS_EVENTS for the engage pool, and none for ingest", () => {
    assert.deepEqual(poolConsumer({ ...base, kind: "engage", namespace: "relais-system", name: "engage" }), {
      stream: "RELAIS_EVENTS",
      consumer: "engage",
    });
    assert.equal(poolConsumer({ ...base, kind: "ingest", namespace: "relais-system", name: "ingest" }), undefined);
  });
});
