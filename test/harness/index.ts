// The front door of the test harness: real servers on loopback, started and stopped cleanly.
export { ServerNotReadyError, ServerStartError, ToolMissingError } from "./errors.ts";
export { startKube } from "./kube.ts";
export { freePort, waitUntil } from "./net.ts";
export { ManagedProcess } from "./process.ts";
export { startEtcd, startNats, startRedis } from "./servers.ts";
export { Components, StackEnv, startStack } from "./stack.ts";
export { defer, uniqueName, useStack } from "./context.ts";
export { spawnRelais, within } from "./relais.ts";
export { Tools, hasTool, provisionedBinDir, toolPath } from "./tools.ts";
export { generateDkimKey, startSmtpSink } from "./smtp.ts";
export { startSparkPostEndpoint } from "./sparkpost.ts";
export { maxPushBodyBytes, startWebPushEndpoint } from "./webpush.ts";

export type { KubeControlPlane } from "./kube.ts";
export type { ProcessSpec } from "./process.ts";
export type { EtcdServer, NatsServer, RedisServer, Server } from "./servers.ts";
export type { Component, Stack, StackOptions } from "./stack.ts";
export type { StackInfo } from "./context.ts";
export type { RelaisProcess, RelaisProcessOptions } from "./relais.ts";
export type { Tool } from "./tools.ts";
export type {
  PushAttempt,
  PushSubscriptionJson,
  ReceivedPush,
  WebPushEndpoint,
  WebPushEndpointOptions,
} from "./webpush.ts";
export type { DkimResult, ReceivedMail, SmtpSink, SmtpSinkOptions, SmtpTlsMode } from "./smtp.ts";
export type {
  ErrorResponse,
  ReceivedTransmission,
  SparkPostEndpoint,
  SparkPostError,
  TransmissionContent,
  TransmissionRequest,
  TransmissionResponse,
} from "./sparkpost.ts";
