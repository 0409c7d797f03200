// Measures how much of the official CEL conformance suite (cel-spec's simple tests, as packaged in
// @bufbuild/cel-spec) the CEL library Relais uses passes. Run: node test/bench/cel-conformance.ts
//
// Tests that need protobuf messages (a container, message literals, message-typed bindings or
// results, enums) are counted as not applicable: Relais filters see JSON-shaped profiles and
// events, never messages. The library runs with its defaults, as Relais runs it.
import { evaluate } from "@marcbachmann/cel-js";
import { tests } from "@bufbuild/cel-spec/testdata/conformance.js";

type Json = Record<string, unknown>;
interface SerializedTest {
  original: Json & { name?: string; expr: string };
}
interface SerializedSuite {
  name: string;
  suites?: SerializedSuite[];
  tests?: SerializedTest[];
}

const NOT_APPLICABLE = Symbol("not applicable");

/** A conformance Value (its JSON form) as the JS value cel-js returns; NOT_APPLICABLE for messages. */
function fromValue(value: Json): unknown {
  if ("int64Value" in value) return BigInt(String(value.int64Value));
  if ("uint64Value" in value) return BigInt(String(value.uint64Value));
  if ("doubleValue" in value) return Number(value.doubleValue);
  if ("stringValue" in value) return value.stringValue;
  if ("boolValue" in value) return value.boolValue;
  if ("nullValue" in value) return null;
  if ("bytesValue" in value) return new Uint8Array(Buffer.from(String(value.bytesValue), "base64"));
  if ("listValue" in value) {
    const values = ((value.listValue as Json).values ?? []) as Json[];
    const items = values.map(fromValue);
    return items.includes(NOT_APPLICABLE) ? NOT_APPLICABLE : items;
  }
  if ("mapValue" in value) {
    const entries = ((value.mapValue as Json).entries ?? []) as { key: Json; value: Json }[];
    const pairs = entries.map(({ key, value: inner }) => [fromValue(key), fromValue(inner)] as const);
    if (pairs.some(([key, inner]) => key === NOT_APPLICABLE || inner === NOT_APPLICABLE)) return NOT_APPLICABLE;
    return pairs.every(([key]) => typeof key === "string") ? Object.fromEntries(pairs) : new Map(pairs);
  }
  return NOT_APPLICABLE;
}

function sameMap(actual: unknown, expected: Map<unknown, unknown> | Json): boolean {
  const toMap = (value: unknown): Map<unknown, unknown> =>
    value instanceof Map ? value : new Map(Object.entries((value ?? {}) as Json));
  const a = toMap(actual);
  const e = toMap(expected);
  return a.size === e.size && [...e].every(([key, inner]) => a.has(key) && same(a.get(key), inner));
}

function same(actual: unknown, expected: unknown): boolean {
  if (typeof expected === "number") {
    return typeof actual === "number" && (Object.is(actual, expected) || actual === expected);
  }
  if (expected instanceof Uint8Array) return actual instanceof Uint8Array && Buffer.from(actual).equals(expected);
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) && actual.length === expected.length && expected.every((item, i) => same(actual[i], item))
    );
  }
  if (expected instanceof Map || actual instanceof Map) return sameMap(actual, expected as Json);
  if (expected !== null && typeof expected === "object") {
    return actual !== null && typeof actual === "object" && sameMap(actual, expected as Json);
  }
  return actual === expected;
}

type Outcome = "passed" | "failed" | "notApplicable";

/** The bindings and expected value of a test, or undefined when it needs protobuf messages. */
function prepare(
  t: SerializedTest["original"],
): { bindings: Json; expected: unknown; expectsError: boolean } | undefined {
  if (t.container !== undefined || t.typeEnv !== undefined || t.checkOnly === true) return undefined;
  // Message literals (TestAllTypes{...}, google.protobuf.Int64Value{...}) need protobuf descriptors.
  if (/[A-Za-z_][\w.]*\{/.test(t.expr) || t.expr.includes("google.protobuf.")) return undefined;
  const bindings: Json = {};
  for (const [name, binding] of Object.entries((t.bindings ?? {}) as Record<string, { value?: Json }>)) {
    const value = binding.value === undefined ? NOT_APPLICABLE : fromValue(binding.value);
    if (value === NOT_APPLICABLE) return undefined;
    bindings[name] = value;
  }
  const expectsError = t.evalError !== undefined || t.anyEvalErrors !== undefined;
  const expected = t.value === undefined ? (expectsError ? undefined : true) : fromValue(t.value as Json);
  return expected === NOT_APPLICABLE ? undefined : { bindings, expected, expectsError };
}

function run(test: SerializedTest): Outcome {
  const prepared = prepare(test.original);
  if (prepared === undefined) return "notApplicable";
  try {
    const actual: unknown = evaluate(test.original.expr, prepared.bindings);
    return !prepared.expectsError && same(actual, prepared.expected) ? "passed" : "failed";
  } catch {
    return prepared.expectsError ? "passed" : "failed";
  }
}

/** Sections that test optional extension libraries (cel-go's ext package), not the core language. */
const isExtension = (name: string): boolean => name.endsWith("_ext") || name === "optionals" || name === "macros2";

const totals = {
  core: { passed: 0, failed: 0, notApplicable: 0 },
  extensions: { passed: 0, failed: 0, notApplicable: 0 },
};
const rows: string[] = [];
for (const section of (tests as SerializedSuite).suites ?? []) {
  const counts = { passed: 0, failed: 0, notApplicable: 0 };
  const walk = (suite: SerializedSuite): void => {
    for (const test of suite.tests ?? []) counts[run(test)]++;
    for (const inner of suite.suites ?? []) walk(inner);
  };
  walk(section);
  const total = isExtension(section.name) ? totals.extensions : totals.core;
  for (const key of Object.keys(total) as Outcome[]) total[key] += counts[key];
  const applicable = counts.passed + counts.failed;
  rows.push(
    `${(isExtension(section.name) ? `${section.name} (ext)` : section.name).padEnd(22)} ${String(counts.passed).padStart(5)} / ${String(applicable).padEnd(5)} ` +
      `${applicable === 0 ? "   -" : `${((100 * counts.passed) / applicable).toFixed(1).padStart(5)}%`}   (${counts.notApplicable} n/a)`,
  );
}
const line = (name: string, counts: Record<Outcome, number>): string => {
  const applicable = counts.passed + counts.failed;
  return (
    `${name.padEnd(22)} ${String(counts.passed).padStart(5)} / ${String(applicable).padEnd(5)} ` +
    `${((100 * counts.passed) / applicable).toFixed(1).padStart(5)}%   (${counts.notApplicable} need protobuf messages)`
  );
};
process.stdout.write(
  `CEL conformance of @marcbachmann/cel-js against cel-spec's simple tests\n` +
    `${"section".padEnd(22)} passed / applicable\n${rows.join("\n")}\n` +
    `${line("core language", totals.core)}\n${line("extensions", totals.extensions)}\n`,
);
