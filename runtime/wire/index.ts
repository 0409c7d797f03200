// The wire contracts between processes: subjects, streams, Redis keys, message schemas, tokens.
export { ensureStreams, SEND_ACK_WAIT_MS, senderConsumerConfig, streamConfigs } from "./streams.ts";
export { ProfileFields, profileFromHash, RedisKeys } from "./keys.ts";
export type { ProfileFromHash } from "./keys.ts";
export { AutomationCounterFields, readAutomationCounters, SkipReasons, unaccountedInstances } from "./counters.ts";
export type { AutomationCounters, CountersRedis, SkipReason } from "./counters.ts";
export { eraseMessageSchema, eventMessageSchema, feedbackMessageSchema, FeedbackOutcomes } from "./messages.ts";
export { ConsumerNames, ERASE_EVENT, Streams, Subjects, splitSubject } from "./subjects.ts";
export { signToken, TokenKinds, verifyToken } from "./tokens.ts";

export type { EraseMessage, EventMessage, FeedbackMessage, FeedbackOutcome } from "./messages.ts";
export type { TokenKind, TokenPayload } from "./tokens.ts";
export {
  ApiKeyKeys,
  apiKeyEntrySchema,
  CONFIG_BUCKET,
  ConfigKeys,
  ConfigKinds,
  automationConfigSchema,
  campaignConfigSchema,
  configSchemas,
  openConfigBucket,
  parseConfigKey,
  sendPolicyConfigSchema,
  senderConfigSchema,
} from "./config.ts";
export { sendJobSchema, sendMessageId, sendSourceSchema } from "./messages.ts";
export type {
  ApiKeyEntry,
  AutomationConfig,
  CampaignConfig,
  ConfigKind,
  SendPolicyConfig,
  SenderConfig,
} from "./config.ts";
export type { SendJob } from "./messages.ts";
export { inHoldout } from "./holdout.ts";
export { PauseTargets, PolicyKeys, clearPause, pauseSchema, readPauses, readPolicyDecisions } from "./policy.ts";
export type { Pause } from "./policy.ts";
export {
  CampaignOutcomeCounters,
  CampaignPolicyReasons,
  CampaignRunStatuses,
  CampaignSkipReasons,
  campaignJobId,
  campaignRunReport,
  parseCampaignJobId,
  readCampaignRun,
  readCampaignRuns,
  readCampaignPreview,
  readCampaignStatusSummary,
  requestCampaignPreview,
} from "./campaigns.ts";
export type {
  CampaignOutcomeCounter,
  CampaignPolicyReason,
  CampaignRunReport,
  CampaignRunStatus,
  CampaignSkipReason,
} from "./campaigns.ts";
export { secretEnvName } from "./secrets.ts";
