import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { ConfigError, ErrorCodes, RelaisError, isRelaisError } from "#runtime";

describe("error codes", () => {
  it("are each documented in docs/errors.md with their category, and the page lists no other", async () => {
    const page = await readFile(new URL("../docs/errors.md", import.meta.url), "utf8");
    const documented = new Map(
      [...page.matchAll(/^\|\s*`(RELAIS_[A-Z_]+)`\s*\|\s*(\w+)\s*\|/gm)].map((match) => [match[1], match[2]] as const),
    );
    assert.deepEqual(Object.fromEntries(documented), { ...ErrorCodes });
  });

  it("carry their code and category, and chain their cause", () => {
    const cause = new Error("low level");
    const error = new ConfigError("RELAIS_NATS_URL: must be a nats:// URL", { cause });
    assert.equal(error.code, "RELAIS_CONFIG_INVALID");
    assert.equal(error.category, "config");
    assert.equal(error.name, "ConfigError");
    assert.equal(error.cause, cause);
    assert.ok(isRelaisError(error, "RELAIS_CONFIG_INVALID"));
    assert.ok(!isRelaisError(error, "RELAIS_CLI_USAGE"));
    assert.ok(!isRelaisError(new Error("plain")));
    assert.ok(new RelaisError("RELAIS_CLI_USAGE", "x") instanceof Error);
  });
});
