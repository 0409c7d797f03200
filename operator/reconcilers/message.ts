// Campaign and Automation share their checks: the Sender they name exists in the same namespace
// with the channel of their message, their CEL compiles, their templates compile. Only a valid
// generation reaches the config KV; an invalid edit leaves the last valid one running, and the
// status says what to fix. The finalizer removes the KV entry before the resource goes, which
// makes the engage pool drop the automation, or stop and purge the campaign's queued work.
import { ConditionReasons, ConditionTypes } from "#crds";
import type { Automation, Campaign, Condition, ConditionReason, Message } from "#crds";
import { ConfigKeys, PauseTargets } from "#runtime";
import { checkAutomationExpressions, checkCampaignExpressions } from "../compile/expressions.ts";
import { checkMessage, describeProblem } from "../compile/templates.ts";
import type { ObjectKey } from "../types.ts";
import { setConditions, statusChanged } from "./conditions.ts";
import type { Observation } from "./conditions.ts";
import { announcePause, automationFigures, campaignFigures, pausedCondition } from "./figures.ts";
import { putConfig } from "./kv.ts";
import { metaOf } from "./meta.ts";
import { done, FINALIZER } from "./types.ts";
import type { ReconcileDeps, ReconcileResult } from "./types.ts";

type MessageResource = Campaign | Automation;

interface Problem {
  reason: ConditionReason;
  message: string;
}

function channelOf(message: Message): "email" | "webpush" {
  return message.email === undefined ? "webpush" : "email";
}

async function senderProblem(
  deps: ReconcileDeps,
  resource: MessageResource,
  namespace: string,
): Promise<Problem | undefined> {
  const name = resource.spec.senderRef.name;
  const sender = await deps.source.get({ kind: "Sender", namespace, name });
  if (sender?.kind !== "Sender") {
    return {
      reason: ConditionReasons.SenderNotFound,
      message: `Sender "${name}" (spec.senderRef.name) does not exist in namespace ${namespace}`,
    };
  }
  const wanted = channelOf(resource.spec.message);
  if (sender.spec.channel !== wanted) {
    return {
      reason: ConditionReasons.SenderChannelMismatch,
      message: `Sender "${name}" sends ${sender.spec.channel} but spec.message is ${wanted}`,
    };
  }
  return undefined;
}

async function compileProblem(resource: MessageResource): Promise<Problem | undefined> {
  const expressions =
    resource.kind === "Automation"
      ? checkAutomationExpressions(resource.spec)
      : checkCampaignExpressions(resource.spec);
  if (expressions.length > 0) {
    return { reason: ConditionReasons.InvalidExpression, message: expressions.map(describeProblem).join("; ") };
  }
  const templates = await checkMessage(resource.spec.message);
  if (templates.length > 0) {
    return { reason: ConditionReasons.InvalidTemplate, message: templates.map(describeProblem).join("; ") };
  }
  return undefined;
}

async function finalize(deps: ReconcileDeps, key: ObjectKey, finalizers: readonly string[]): Promise<ReconcileResult> {
  await deps.kv.delete(ConfigKeys.of(key.namespace, key.kind, key.name));
  if (finalizers.includes(FINALIZER)) await deps.source.removeFinalizer(key, FINALIZER);
  return done;
}

function readyCondition(problem: Problem | undefined, kind: string): Omit<Condition, "lastTransitionTime"> {
  return problem === undefined
    ? {
        type: ConditionTypes.Ready,
        status: "True",
        reason: ConditionReasons.Reconciled,
        message: `${kind} is compiled and published to the engage pool`,
      }
    : { type: ConditionTypes.Ready, status: "False", ...problem };
}

/** The compiled config in the KV, with the labels SendPolicy selectors match in the deliver pools. */
async function publish(deps: ReconcileDeps, key: ObjectKey, resource: MessageResource): Promise<void> {
  await putConfig(deps.kv, ConfigKeys.of(key.namespace, key.kind, key.name), {
    generation: metaOf(resource).generation,
    ...(resource.metadata.labels !== undefined && { labels: resource.metadata.labels }),
    spec: resource.spec,
  });
}

/** What the workers report about this Campaign or Automation, when the operator reads Redis. */
async function figuresOf(
  deps: ReconcileDeps,
  resource: MessageResource,
  key: ObjectKey,
): Promise<{ figures: Record<string, unknown>; paused: Observation | undefined }> {
  const redis = deps.redis;
  if (redis === undefined) return { figures: {}, paused: undefined };
  if (resource.kind === "Automation")
    return { figures: await automationFigures(redis, key.namespace, key.name), paused: undefined };
  const figures = await campaignFigures(redis, {
    namespace: key.namespace,
    name: key.name,
    suspended: resource.spec.suspend,
  });
  const paused = await pausedCondition(
    { ...deps, redis },
    { namespace: key.namespace, target: PauseTargets.campaign(key.name), annotations: resource.metadata.annotations },
  );
  return { figures, paused };
}

/**
 * Figures without a value (undefined) leave status: null where the previous status has them (a
 * merge patch deletes a field only when told null), nothing where it does not.
 */
function withRemovals(previous: object | undefined, figures: Record<string, unknown>): Record<string, unknown> {
  const before = (previous ?? {}) as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(figures).flatMap(([field, value]) => {
      if (value !== undefined) return [[field, value]];
      return before[field] === undefined || before[field] === null ? [] : [[field, null]];
    }),
  );
}

export async function reconcileMessageResource(key: ObjectKey, deps: ReconcileDeps): Promise<ReconcileResult> {
  const resource = await deps.source.get(key);
  if (resource === undefined) {
    // Gone without our finalizer (it was never reconciled, or removed by hand): still clean up.
    await deps.kv.delete(ConfigKeys.of(key.namespace, key.kind, key.name));
    return done;
  }
  if (resource.kind === "Sender" || resource.kind === "SendPolicy") return done;
  const meta = metaOf(resource);
  if (meta.deleting) return finalize(deps, key, meta.finalizers);
  if (!meta.finalizers.includes(FINALIZER)) await deps.source.addFinalizer(key, FINALIZER);

  const problem = (await senderProblem(deps, resource, key.namespace)) ?? (await compileProblem(resource));
  if (problem === undefined) await publish(deps, key, resource);
  const previous = resource.status?.conditions;
  const ready = readyCondition(problem, resource.kind);
  const { figures, paused } = await figuresOf(deps, resource, key);
  await announcePause(deps, key, { previous, paused });
  const conditions = setConditions(previous, [ready, ...(paused === undefined ? [] : [paused])], {
    generation: meta.generation,
    now: deps.now(),
  });
  const next = {
    ...resource.status,
    observedGeneration: meta.generation,
    conditions,
    ...withRemovals(resource.status, figures),
  };
  if (statusChanged(resource.status, next)) {
    if (problem !== undefined && previous?.[0]?.reason !== problem.reason) {
      await deps.source.recordEvent(key, { type: "Warning", reason: problem.reason, message: problem.message });
    }
    await deps.source.writeStatus(key, next);
  }
  return done;
}
