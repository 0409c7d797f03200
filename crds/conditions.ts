// Status speaks Kubernetes: condition types and reasons are closed sets, shared by the operator's
// status writers and its Kubernetes Events.
import { z } from "zod";

export const ConditionTypes = {
  /** The resource is valid, its dependencies exist and its workers run. */
  Ready: "Ready",
  /** Sender: the pool is scaling or rolling. Campaign: a run is enqueuing. */
  Progressing: "Progressing",
  /** Campaign: a future run is scheduled. */
  Scheduled: "Scheduled",
  /** Sender, Campaign: a SendPolicy's autoPause holds its sends until a person resumes it. */
  Paused: "Paused",
} as const;
export type ConditionType = (typeof ConditionTypes)[keyof typeof ConditionTypes];

export const ConditionReasons = {
  Reconciled: "Reconciled",
  Pending: "Pending",
  SecretMissing: "SecretMissing",
  SecretInvalid: "SecretInvalid",
  SenderNotFound: "SenderNotFound",
  SenderChannelMismatch: "SenderChannelMismatch",
  InvalidExpression: "InvalidExpression",
  InvalidTemplate: "InvalidTemplate",
  PoolScaling: "PoolScaling",
  PoolUnavailable: "PoolUnavailable",
  Suspended: "Suspended",
  RunInProgress: "RunInProgress",
  RunCompleted: "RunCompleted",
  NextRunScheduled: "NextRunScheduled",
  NoFurtherRuns: "NoFurtherRuns",
  AutoPaused: "AutoPaused",
} as const;
export type ConditionReason = (typeof ConditionReasons)[keyof typeof ConditionReasons];

export const conditionSchema = z
  .strictObject({
    type: z
      .enum(Object.values(ConditionTypes))
      .describe("Type of the condition: Ready, Progressing, Scheduled or Paused."),
    status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .describe("The metadata.generation of the resource this condition was computed from."),
    lastTransitionTime: z.iso.datetime({ offset: true }).describe("When the status last changed."),
    reason: z
      .enum(Object.values(ConditionReasons))
      .describe("A CamelCase reason from a closed set, also used by Events."),
    message: z.string().max(32768).default("").describe("What a person should know or fix, in a sentence."),
  })
  .describe("One aspect of the resource's state, per Kubernetes API conventions.");
export type Condition = z.infer<typeof conditionSchema>;

export const conditionsSchema = z
  .array(conditionSchema)
  .max(8)
  .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
  .describe("The latest observations of the resource's state, one per type.");

export const observedGeneration = z.int().min(0).describe("The metadata.generation the status was last computed from.");
