import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRelaisError } from "#runtime";
import { parseComponents } from "./stack.ts";

describe("relais stack --only", () => {
  it("starts every component when absent", () => {
    assert.deepEqual(parseComponents(undefined), ["nats", "redis", "kube"]);
  });

  it("accepts a comma-separated subset, ignoring blanks", () => {
    assert.deepEqual(parseComponents("redis, nats,"), ["redis", "nats"]);
  });

  it("rejects an unknown component with a usage error naming it", () => {
    assert.throws(
      () => parseComponents("nats,postgres"),
      (error: unknown) => isRelaisError(error, "RELAIS_CLI_USAGE") && error.message.includes('"postgres"'),
    );
  });
});
