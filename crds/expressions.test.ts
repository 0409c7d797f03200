import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { checkExpression } from "#crds";
import type { ExpressionContext } from "#crds";

interface ExampleSpec {
  trigger?: { filter?: string };
  cancelOn?: { filter?: string }[];
  audience?: { segment?: string };
}

describe("CEL filters and segments", () => {
  it("accept every filter and segment of the examples", async () => {
    const dir = new URL("../examples/", import.meta.url);
    const found: [string, ExpressionContext][] = [];
    for (const file of (await readdir(dir)).filter((name) => name.endsWith(".yaml"))) {
      const { spec } = parse(await readFile(new URL(file, dir), "utf8")) as { spec: ExampleSpec };
      if (spec.trigger?.filter !== undefined) found.push([spec.trigger.filter, "triggerFilter"]);
      for (const cancel of spec.cancelOn ?? [])
        if (cancel.filter !== undefined) found.push([cancel.filter, "cancelFilter"]);
      if (spec.audience?.segment !== undefined) found.push([spec.audience.segment, "segment"]);
    }
    assert.ok(found.length >= 5);
    for (const [expression, context] of found)
      assert.deepEqual(checkExpression(expression, context), { kind: "valid" }, expression);
  });

  it("report a syntax error with its line and column", () => {
    const result = checkExpression('profile.attributes.country == "FR" &&\n  profile.x >', "segment");
    assert.ok(result.kind === "invalid");
    assert.equal(result.code, "unexpected_token");
    assert.deepEqual(result.position, { line: 2, column: 14 });
  });

  it("reject a variable the context does not offer, where it appears", () => {
    const result = checkExpression("profile.vip && trigger.cartId == 'x'", "segment");
    assert.ok(result.kind === "invalid");
    assert.equal(result.code, "unknown_variable");
    assert.match(result.message, /trigger/);
    assert.deepEqual(result.position, { line: 1, column: 16 });
    assert.equal(checkExpression("event.cartId == trigger.cartId", "cancelFilter").kind, "valid");
  });

  it("reject a type error and an expression that is not a condition", () => {
    const typeError = checkExpression("now + 1 > now", "triggerFilter");
    assert.ok(typeError.kind === "invalid");
    assert.equal(typeError.position?.line, 1);
    const notBool = checkExpression("profile.attributes.points + 1", "segment");
    assert.ok(notBool.kind === "invalid");
    assert.equal(notBool.code, "not_boolean");
  });
});
