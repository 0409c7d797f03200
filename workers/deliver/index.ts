// The front door of workers/deliver: a Sender's delivery pool.
export { buildChannel } from "./channels/build.ts";
export { classifySmtpError, enhancedStatus, smtpChannel } from "./channels/email/smtp.ts";
export { sparkPostChannel } from "./channels/email/sparkpost.ts";
export { nullChannel } from "./channels/null.ts";
export { classifyPushError, webPushChannel } from "./channels/webpush/webpush.ts";
export { deliverConfigSchema, loadDeliverConfig } from "./config.ts";
export { ConfigView } from "./config-view.ts";
export { ACK_WAIT_MS, ensureSenderConsumer } from "./consumer.ts";
export { runDeliver } from "./main.ts";
export { createDeliverMetrics, DeliverOutcomes, SkipReasons } from "./metrics.ts";
export { DeliveryPipeline } from "./pipeline.ts";
export { renderEmail, renderPush } from "./render.ts";
export { chainSecrets, dirSecrets, envSecrets, secretEnvName } from "./secrets.ts";
export { CLAIM_TTL_MS, DeliverStore } from "./store.ts";

export type { Channel, RenderedEmail, RenderedMessage, RenderedPush, SendResult } from "./channel.ts";
export type { ChannelBuild } from "./channels/build.ts";
export type { DeliverConfig } from "./config.ts";
export type { ChannelFactory } from "./config-view.ts";
export type { DeliverOverrides } from "./main.ts";
export type { DeliverMetrics } from "./metrics.ts";
export type { SecretSource } from "./secrets.ts";
