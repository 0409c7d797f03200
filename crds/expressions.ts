// CEL filters and segments: which variables each sees, and a checker that reports syntax and type
// errors with their position, for the operator to put in status. The library is
// @marcbachmann/cel-js (type-checking Environment, error ranges); its conformance against the
// cel-spec suite is measured by test/bench/cel-conformance.ts.
import { Environment } from "@marcbachmann/cel-js";

export const ExpressionContexts = {
  /** Automation trigger filter: the event, the profile, and the time. */
  triggerFilter: "triggerFilter",
  /** Automation cancel filter: the cancel event, the triggering event, the profile, the time. */
  cancelFilter: "cancelFilter",
  /** Campaign segment: the profile and the time. */
  segment: "segment",
} as const;
export type ExpressionContext = (typeof ExpressionContexts)[keyof typeof ExpressionContexts];

const variables: Record<ExpressionContext, readonly string[]> = {
  triggerFilter: ["event", "profile"],
  cancelFilter: ["event", "trigger", "profile"],
  segment: ["profile"],
};

function environment(context: ExpressionContext): Environment {
  const env = new Environment({ limits: { maxAstNodes: 2000, maxDepth: 50 } });
  for (const name of variables[context]) env.registerVariable(name, "map<string, dyn>");
  return env.registerVariable("now", "google.protobuf.Timestamp");
}

const environments = new Map<ExpressionContext, Environment>();

function environmentFor(context: ExpressionContext): Environment {
  let env = environments.get(context);
  if (env === undefined) {
    env = environment(context);
    environments.set(context, env);
  }
  return env;
}

export interface ExpressionPosition {
  /** 1-based line and column of the first offending character. */
  line: number;
  column: number;
}

export type ExpressionCheck =
  { kind: "valid" } | { kind: "invalid"; code: string; message: string; position: ExpressionPosition | undefined };

function positionOf(expression: string, offset: number | undefined): ExpressionPosition | undefined {
  if (offset === undefined) return undefined;
  const before = expression.slice(0, offset).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

interface CelLibraryError {
  code?: string;
  summary?: string;
  message: string;
  range?: { start: number; end: number };
}

function invalid(expression: string, error: CelLibraryError): ExpressionCheck {
  return {
    kind: "invalid",
    code: error.code ?? "invalid_expression",
    message: error.summary ?? error.message.split("\n")[0] ?? "invalid expression",
    position: positionOf(expression, error.range?.start),
  };
}

/**
 * Parses and type-checks `expression` for `context`. Resolves to a value, never throws: an
 * invalid expression is an expected outcome, reported with its position.
 */
export function checkExpression(expression: string, context: ExpressionContext): ExpressionCheck {
  const env = environmentFor(context);
  let result: ReturnType<Environment["check"]>;
  try {
    result = env.check(expression);
  } catch (error) {
    return invalid(expression, error as CelLibraryError);
  }
  if (!result.valid) return invalid(expression, result.error as CelLibraryError);
  if (result.type !== "bool" && result.type !== "dyn") {
    return {
      kind: "invalid",
      code: "not_boolean",
      message: `must evaluate to a bool, not ${result.type}`,
      position: { line: 1, column: 1 },
    };
  }
  return { kind: "valid" };
}

/** JSON values as CEL sees them: integral numbers become ints, as the API server types them. */
export function toCelValue(value: unknown): unknown {
  if (typeof value === "number") return Number.isInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map(toCelValue);
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toCelValue(inner)]));
  }
  return value;
}

export type CompiledExpression =
  | { kind: "compiled"; evaluate(variables: Record<string, unknown>): ExpressionEvaluation }
  | Extract<ExpressionCheck, { kind: "invalid" }>;

/** Evaluating a filter is an outcome, not a throw: a missing field or a type clash is `error`. */
export type ExpressionEvaluation = { kind: "value"; value: boolean } | { kind: "error"; message: string };

/**
 * Checks and parses `expression` once for `context`; the result evaluates it many times. Variables
 * are JSON-shaped (converted with toCelValue); `now` may be a Date.
 */
export function compileExpression(expression: string, context: ExpressionContext): CompiledExpression {
  const checked = checkExpression(expression, context);
  if (checked.kind === "invalid") return checked;
  const program = environmentFor(context).parse(expression);
  return {
    kind: "compiled",
    evaluate(variables) {
      try {
        const converted = Object.fromEntries(
          Object.entries(variables).map(([name, value]) => [name, toCelValue(value)]),
        );
        const value: unknown = program(converted);
        return typeof value === "boolean"
          ? { kind: "value", value }
          : { kind: "error", message: `evaluated to ${typeof value}, not a bool` };
      } catch (error) {
        return {
          kind: "error",
          message: error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error),
        };
      }
    },
  };
}
