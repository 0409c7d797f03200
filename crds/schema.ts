// Building blocks for the Relais API schemas. Each zod schema is the single source of truth for
// both the TypeScript types and the CRD's OpenAPI schema; a cross-field rule is written once, in
// CEL, and is enforced by the API server (x-kubernetes-validations) and by local mode (evaluated
// here with the same CEL library that checks filters), so the two can never disagree.
import { evaluate } from "@marcbachmann/cel-js";
import { z } from "zod";

/** One x-kubernetes-validations entry. `rule` sees the annotated value as `self`. */
export interface CelRule {
  rule: string;
  /** Names the field and the fix; the API server prefixes it with the field's path. */
  message: string;
  /** A path below `self` (".maxReplicas") to report instead of the annotated object's own. */
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueDuplicate";
}

/** CEL sees integers as int and other numbers as double, as the API server does. */
function toCel(value: unknown): unknown {
  if (typeof value === "number") return Number.isInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map(toCel);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toCel(inner)]));
  }
  return value;
}

function fieldPathSegments(fieldPath: string | undefined): string[] {
  return fieldPath === undefined ? [] : fieldPath.split(".").filter((segment) => segment !== "");
}

/**
 * Attaches CEL rules and a description to a schema. The rules become the CRD's
 * x-kubernetes-validations and are checked by zod after parsing (defaults applied), as the API
 * server checks them after defaulting.
 */
export function withRules<T extends z.ZodType>(schema: T, description: string, rules: readonly CelRule[]): T {
  const checked = schema.superRefine((value, ctx) => {
    for (const rule of rules) {
      let passed: unknown;
      try {
        passed = evaluate(rule.rule, { self: toCel(value) });
      } catch {
        // A rule that cannot evaluate (a field of the wrong type) is reported by the type check.
        continue;
      }
      if (passed !== true)
        ctx.addIssue({ code: "custom", message: rule.message, path: fieldPathSegments(rule.fieldPath) });
    }
  });
  return checked.meta({ description, "x-kubernetes-validations": rules.map((rule) => ({ ...rule })) });
}

/** Go/Kubernetes durations: "90s", "48h", "1h30m", "250ms". */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
const SIGNED_DURATION_PATTERN = "^-?([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

export function duration(description: string): z.ZodString {
  return z
    .string()
    .max(32)
    .regex(new RegExp(DURATION_PATTERN), { error: 'must be a duration such as "90s", "15m" or "48h"' })
    .describe(`${description} A duration such as "90s", "15m", "48h" or "1h30m".`);
}

export function signedDuration(description: string): z.ZodString {
  return z
    .string()
    .max(33)
    .regex(new RegExp(SIGNED_DURATION_PATTERN), { error: 'must be a duration such as "-24h" or "30m"' })
    .describe(`${description} A duration, negative for before: "-24h", "30m".`);
}

/** A CEL expression; the operator type-checks it and reports errors with their position in status. */
export function celExpression(description: string): z.ZodString {
  return z.string().min(1).max(4096).describe(`${description} A CEL expression.`);
}

/** A DNS-1123 name of another object in the same namespace. */
export function objectName(description: string): z.ZodString {
  return z
    .string()
    .min(1)
    .max(253)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
      error: "must be a lowercase DNS-1123 name such as my-sender",
    })
    .describe(description);
}

/** A reference to a key of a Secret in the resource's namespace (or an env variable in local mode). */
export function secretKeyRef(description: string, defaultKey: string) {
  return z
    .strictObject({
      name: objectName("Name of the Secret, in the same namespace."),
      key: z
        .string()
        .min(1)
        .max(253)
        .default(defaultKey)
        .describe(`Key within the Secret. Defaults to "${defaultKey}".`),
    })
    .describe(description);
}

/** Names an event: letters, digits, "_" and "-" (it becomes a NATS subject token). */
export function eventName(description: string): z.ZodString {
  return z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9_-]+$/, { error: 'must use only letters, digits, "_" and "-", such as cart_updated' })
    .describe(description);
}

export const RFC3339_DESCRIPTION = 'An RFC 3339 date-time such as "2026-11-27T09:00:00Z".';

export function dateTime(description: string): z.ZodISODateTime {
  return z.iso.datetime({ offset: true }).describe(`${description} ${RFC3339_DESCRIPTION}`);
}

/** A 24-hour local time of day, "HH:MM". */
export function clockTime(description: string): z.ZodString {
  return z
    .string()
    .regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, { error: 'must be a 24-hour time HH:MM such as "21:00"' })
    .describe(description);
}

/** True when Intl knows the zone (the same database local times are computed with). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** An IANA time zone, checked against Intl's database by zod (the operator and local mode). */
export function timeZone(description: string) {
  return z
    .string()
    .min(1)
    .max(64)
    .refine((zone) => isTimeZone(zone), { error: 'must be an IANA time zone such as "Europe/Paris"' })
    .describe(description);
}
