// Each process parses its configuration once, from the environment, with one zod strictObject.
// Defaults live in that schema and nowhere else; the result is frozen and passed down.
import { z } from "zod";
import { ConfigError } from "./errors.ts";

/**
 * Reads `schema`'s fields from `env`: field `natsUrl` comes from RELAIS_NATS_URL. Values are
 * strings; the schema coerces them (z.coerce.number(), JSON via `jsonString`). Throws ConfigError
 * (RELAIS_CONFIG_INVALID) naming every bad variable, never echoing a value.
 */
export function parseConfig<T extends z.ZodObject>(
  schema: T,
  env: Record<string, string | undefined>,
): Readonly<z.output<T>> {
  const input: Record<string, string> = {};
  for (const field of Object.keys(schema.shape)) {
    const value = env[envName(field)];
    if (value !== undefined && value !== "") input[field] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const field = String(issue.path[0] ?? "");
      return `${envName(field)}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  return Object.freeze(parsed.data);
}

/** natsUrl -> RELAIS_NATS_URL */
export function envName(field: string): string {
  return `RELAIS_${field.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}`;
}

/** A JSON-valued variable, parsed then validated by `schema`. */
export function jsonString<T extends z.ZodType>(schema: T) {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "must be JSON" });
        return z.NEVER;
      }
    })
    .pipe(schema);
}
