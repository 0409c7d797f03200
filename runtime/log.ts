// One logger factory: constant messages, structured fields, and redaction paths set here so no
// caller can forget them. Never log a whole config, input or profile.
import { pino } from "pino";
import type { Logger } from "pino";

/** Field paths whose values are replaced by "[redacted]" wherever they appear. */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "privateKey",
  "*.privateKey",
  "email",
  "*.email",
] as const;

export interface LoggerOptions {
  name: string;
  level?: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Where lines go; defaults to stdout. Tests pass a stream to read what was logged. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      base: { pid: process.pid },
    },
    options.destination ?? process.stdout,
  );
}

export type { Logger };
