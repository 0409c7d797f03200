// The front door of runtime/: process plumbing shared by the operator and every worker.
export { ConfigError, ErrorCodes, RelaisError, isRelaisError } from "./errors.ts";
export { abortOnSignals, delay, untilAborted } from "./lifecycle.ts";
export { REDACT_PATHS, createLogger } from "./log.ts";

export type { ErrorCategory, ErrorCode } from "./errors.ts";
export type { Runnable } from "./lifecycle.ts";
export type { Logger, LoggerOptions } from "./log.ts";

export { envName, jsonString, parseConfig } from "./config.ts";
export * from "./wire/index.ts";
export { EARLIEST_OFFSET_MS, clockSeconds, localDate, localSeconds, recipientZone, zonedInstant } from "./zones.ts";
export { connectNats, connectRedis } from "./connections.ts";
export { registerProcessMetrics } from "./metrics.ts";
export { startOpsServer } from "./http.ts";
export type { OpsServer, OpsServerOptions } from "./http.ts";
export { compileEmail, compilePush, htmlToText, renderEmailContent, renderPushContent } from "./render.ts";
export type {
  CompiledEmail,
  CompiledPush,
  RenderedEmailContent,
  RenderedPushContent,
  RenderProfile,
  TemplateScope,
} from "./render.ts";
