// The wire contracts between processes: subjects, streams, Redis keys, message schemas, tokens.
export { ensureStreams, streamConfigs } from "./streams.ts";
export { ProfileFields, RedisKeys } from "./keys.ts";
export { AutomationCounterFields, readAutomationCounters, SkipReasons, unaccountedInstances } from "./counters.ts";
export type { AutomationCounters, CountersRedis, SkipReason } from "./counters.ts";
export { eraseMessageSchema, eventMessageSchema, feedbackMessageSchema, FeedbackOutcomes } from "./messages.ts";
export { ConsumerNames, ERASE_EVENT, Streams, Subjects, splitSubject } from "./subjects.ts";
export { signToken, TokenKinds, verifyToken } from "./tokens.ts";

export type { EraseMessage, EventMessage, FeedbackMessage, FeedbackOutcome } from "./messages.ts";
export type { TokenKind, TokenPayload } from "./tokens.ts";
export {
  CONFIG_BUCKET,
  ConfigKeys,
  ConfigKinds,
  automationConfigSchema,
  campaignConfigSchema,
  configSchemas,
  openConfigBucket,
  parseConfigKey,
  senderConfigSchema,
} from "./config.ts";
export { sendJobSchema, sendMessageId, sendSourceSchema } from "./messages.ts";
export type { AutomationConfig, CampaignConfig, ConfigKind, SenderConfig } from "./config.ts";
export type { SendJob } from "./messages.ts";
