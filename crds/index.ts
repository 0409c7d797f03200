// The front door of crds/: the Relais API (group relais.dev, version v1alpha1).
export { automationKind, automationSpecSchema, automationStatusSchema } from "./automation.ts";
export {
  CampaignPhases,
  campaignKind,
  campaignPreviewSchema,
  campaignSpecSchema,
  campaignStatusSchema,
  PREVIEW_EXCERPT_CHARS,
  PREVIEW_MAX_SAMPLES,
} from "./campaign.ts";
export { ConditionReasons, ConditionTypes, conditionSchema } from "./conditions.ts";
export { customResourceDefinition } from "./crd.ts";
export { ExpressionContexts, checkExpression, compileExpression, toCelValue } from "./expressions.ts";
export { renderCrds } from "./generate.ts";
export { API_VERSION, CATEGORY, GROUP, VERSION } from "./kind.ts";
export { kinds } from "./kinds.ts";
export { Subscriptions } from "./message.ts";
export { isTimeZone } from "./schema.ts";
export { sendPolicyKind, sendPolicySpecSchema, sendPolicyStatusSchema } from "./sendpolicy.ts";
export { Channels, senderKind, senderSpecSchema, senderStatusSchema } from "./sender.ts";
export { automationSchema, campaignSchema, sendPolicySchema, senderSchema, validateManifest } from "./validate.ts";

export type { AutomationSpec, AutomationStatus } from "./automation.ts";
export type { CampaignPhase, CampaignPreview, CampaignSpec, CampaignStatus, PreviewSample } from "./campaign.ts";
export type { Condition, ConditionReason, ConditionType } from "./conditions.ts";
export type { CustomResourceDefinition } from "./crd.ts";
export type {
  CompiledExpression,
  ExpressionCheck,
  ExpressionContext,
  ExpressionEvaluation,
  ExpressionPosition,
} from "./expressions.ts";
export type { KindDefinition, PrinterColumn } from "./kind.ts";
export type { Message, Subscription } from "./message.ts";
export type { SendPolicySpec, SendPolicyStatus } from "./sendpolicy.ts";
export type { Channel, SenderSpec, SenderStatus } from "./sender.ts";
export type {
  Automation,
  Campaign,
  RelaisResource,
  SendPolicy,
  Sender,
  ValidationIssue,
  ValidationResult,
} from "./validate.ts";
