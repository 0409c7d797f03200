// Every error Relais raises carries a stable code. Callers branch on `code`, never on the message;
// docs/errors.md lists every code, and runtime/errors.test.ts keeps that page and this registry equal.

/** The closed set of error codes, each with the category it belongs to. */
export const ErrorCodes = {
  RELAIS_CONFIG_INVALID: "config",
  RELAIS_TOOL_MISSING: "harness",
  RELAIS_SERVER_START_FAILED: "harness",
  RELAIS_SERVER_NOT_READY: "harness",
  RELAIS_CLI_USAGE: "cli",
  RELAIS_HTTP_UNAUTHORIZED: "http",
  RELAIS_HTTP_INVALID_REQUEST: "http",
  RELAIS_HTTP_NOT_FOUND: "http",
  RELAIS_HTTP_PAYLOAD_TOO_LARGE: "http",
  RELAIS_HTTP_RATE_LIMITED: "http",
  RELAIS_HTTP_UNAVAILABLE: "http",
  RELAIS_PROFILE_TOO_MANY_FIELDS: "profiles",
  RELAIS_KUBE_REQUEST_FAILED: "kube",
  RELAIS_KUBE_RESOURCE_INVALID: "kube",
} as const;

export type ErrorCode = keyof typeof ErrorCodes;
export type ErrorCategory = (typeof ErrorCodes)[ErrorCode];

/**
 * Base of every error Relais throws. The message names the field or thing at fault and the rule it
 * broke; it never embeds a secret or a whole input.
 */
export class RelaisError extends Error {
  readonly code: ErrorCode;
  readonly category: ErrorCategory;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.category = ErrorCodes[code];
  }
}

/** A configuration value failed validation: the message names the variable or field. */
export class ConfigError extends RelaisError {
  constructor(message: string, options?: ErrorOptions) {
    super("RELAIS_CONFIG_INVALID", message, options);
  }
}

/** Narrows an unknown thrown value to a RelaisError with the given code. */
export function isRelaisError(error: unknown, code?: ErrorCode): error is RelaisError {
  return error instanceof RelaisError && (code === undefined || error.code === code);
}
