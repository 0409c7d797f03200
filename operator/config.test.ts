import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRelaisError } from "#runtime";
import { loadOperatorConfig } from "./config.ts";

describe("the operator's configuration", () => {
  it("reads RELAIS_* variables, with defaults from the schema", () => {
    const config = loadOperatorConfig({
      RELAIS_WATCH_NAMESPACES: "shop, blog,",
      RELAIS_AUTOSCALER: "keda",
      RELAIS_POOL_RESOURCES: '{"deliver":{"requests":{"cpu":"250m"}}}',
      RELAIS_IDENTITY: "relais-operator-0",
    });
    assert.deepEqual(config.watchNamespaces, ["shop", "blog"]);
    assert.equal(config.autoscaler, "keda");
    assert.deepEqual(config.poolResources.deliver, { requests: { cpu: "250m" }, limits: {} });
    assert.equal(config.leaseName, "relais-operator");
    assert.equal(config.identity, "relais-operator-0");
    assert.equal(config.namespace, "relais-system");
    assert.ok(Object.isFrozen(config));
  });

  it("refuses a bad value naming the variable, never echoing a secret", () => {
    assert.throws(
      () =>
        loadOperatorConfig({
          RELAIS_WATCH_NAMESPACES: "Shop",
          RELAIS_AUTOSCALER: "hpa",
          RELAIS_TOKEN_SECRET: "short-secret",
        }),
      (error: unknown) => {
        assert.ok(isRelaisError(error, "RELAIS_CONFIG_INVALID"));
        assert.match(error.message, /RELAIS_WATCH_NAMESPACES/);
        assert.match(error.message, /RELAIS_AUTOSCALER/);
        assert.match(error.message, /RELAIS_TOKEN_SECRET: must be at least 32 characters/);
        assert.doesNotMatch(error.message, /short-secret/);
        return true;
      },
    );
  });

  it("reads the shared pools' sizes and refuses a minimum above its maximum", () => {
    const config = loadOperatorConfig({
      RELAIS_INGEST_MIN_REPLICAS: "3",
      RELAIS_INGEST_MAX_REPLICAS: "3",
      RELAIS_ENGAGE_MAX_REPLICAS: "4",
      RELAIS_PUBLIC_BASE_URL: "https://engage.example.com",
    });
    assert.deepEqual(
      [config.ingestMinReplicas, config.ingestMaxReplicas, config.engageMinReplicas, config.engageMaxReplicas],
      [3, 3, 1, 4],
    );
    assert.equal(config.publicBaseUrl, "https://engage.example.com");
    assert.throws(
      () => loadOperatorConfig({ RELAIS_ENGAGE_MIN_REPLICAS: "5", RELAIS_ENGAGE_MAX_REPLICAS: "2" }),
      /RELAIS_ENGAGE_MIN_REPLICAS: must not exceed RELAIS_ENGAGE_MAX_REPLICAS/,
    );
    assert.throws(
      () => loadOperatorConfig({ RELAIS_LEASE_DURATION_MS: "5000", RELAIS_LEASE_RENEW_DEADLINE_MS: "5000" }),
      /RELAIS_LEASE_RENEW_DEADLINE_MS: must be shorter than RELAIS_LEASE_DURATION_MS/,
    );
    assert.throws(
      () => loadOperatorConfig({ RELAIS_PUBLIC_BASE_URL: "engage" }),
      /RELAIS_PUBLIC_BASE_URL: must be a URL/,
    );
  });
});
