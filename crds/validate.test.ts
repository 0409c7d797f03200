import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateManifest } from "#crds";

const sender = {
  apiVersion: "relais.dev/v1alpha1",
  kind: "Sender",
  metadata: { name: "push" },
  spec: {
    channel: "webpush",
    webpush: { vapid: { subject: "mailto:a@example.com", keysSecretRef: { name: "vapid" } } },
  },
};

describe("local validation of manifests", () => {
  it("applies the schema's defaults, as the API server does", () => {
    const result = validateManifest(sender);
    assert.ok(result.kind === "valid");
    assert.ok(result.resource.kind === "Sender");
    assert.deepEqual(result.resource.spec.pool, {
      minReplicas: 1,
      maxReplicas: 10,
      targetLagPerReplica: 1000,
      concurrency: 16,
    });
    assert.deepEqual(result.resource.spec.retry, { maxAttempts: 5, initialBackoff: "10s", maxBackoff: "10m" });
    assert.equal(result.resource.spec.webpush?.ttl, "24h");
  });

  it("names apiVersion or kind when a document is not a Relais resource", () => {
    assert.deepEqual(validateManifest({ apiVersion: "v1", kind: "ConfigMap" }), {
      kind: "invalid",
      issues: [{ path: "apiVersion", message: "must be relais.dev/v1alpha1" }],
    });
    assert.deepEqual(validateManifest({ apiVersion: "relais.dev/v1alpha1", kind: "Journey" }), {
      kind: "invalid",
      issues: [{ path: "kind", message: "must be one of Sender, Campaign, Automation, SendPolicy" }],
    });
    assert.equal(validateManifest("not an object").kind, "invalid");
    assert.equal(validateManifest(null).kind, "invalid");
  });

  it("does not let a CEL rule mask the type error of a field it reads", () => {
    const result = validateManifest({ ...sender, spec: { ...sender.spec, pool: { minReplicas: "one" } } });
    assert.ok(result.kind === "invalid");
    assert.deepEqual(
      result.issues.map((issue) => issue.path),
      ["spec.pool.minReplicas"],
    );
  });
});
