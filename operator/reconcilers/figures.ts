// Status figures the workers keep in Redis, folded into status on the reconcile and resync timer
// (never per message): an Automation's counters, a Campaign's last run and next run, a
// SendPolicy's decisions, and whether a Sender or Campaign is paused by a SendPolicy.
import type { Redis } from "ioredis";
import { CampaignPhases, ConditionReasons, ConditionTypes } from "#crds";
import type { CampaignPhase, CampaignStatus, Condition } from "#crds";
import {
  clearPause,
  readAutomationCounters,
  readCampaignPreview,
  readCampaignStatusSummary,
  readPauses,
  readPolicyDecisions,
} from "#runtime";
import type { Observation } from "./conditions.ts";
import type { ObjectKey } from "../types.ts";
import type { ReconcileDeps } from "./types.ts";

/** The annotation a person sets (to the current time) to resume a paused Sender or Campaign. */
export const RESUME_ANNOTATION = "relais.dev/resume";

export async function automationFigures(redis: Redis, namespace: string, name: string) {
  const counters = await readAutomationCounters(redis, namespace, name);
  return {
    counters: {
      triggered: counters.triggered,
      filteredOut: counters.filteredOut,
      waiting: counters.waiting,
      cancelled: counters.cancelled + counters.erased,
      sent: counters.sent,
      skipped: counters.skipped,
    },
  };
}

export async function campaignFigures(
  redis: Redis,
  options: { namespace: string; name: string; suspended: boolean },
): Promise<Pick<CampaignStatus, "phase" | "progress" | "nextRunAt" | "lastRun" | "preview">> {
  const campaign = { namespace: options.namespace, campaign: options.name };
  const [summary, preview] = await Promise.all([
    readCampaignStatusSummary(redis, campaign),
    options.suspended ? readCampaignPreview(redis, campaign) : undefined,
  ]);
  const phase = phaseOf(summary, options.suspended);
  // Only while suspended: a resumed campaign's preview is history (engage deletes it too). Always
  // set, undefined included, so the spread over the previous status drops a stale one.
  if (summary.lastRun === undefined) return { ...summary, phase, preview };
  // The run's status shows as the phase; status.lastRun has no such field, so the API server would
  // prune it while local mode's status files kept it: the two would disagree.
  const { status: _status, ...lastRun } = summary.lastRun;
  return { ...summary, lastRun, phase, preview };
}

function phaseOf(summary: Awaited<ReturnType<typeof readCampaignStatusSummary>>, suspended: boolean): CampaignPhase {
  if (suspended) return CampaignPhases.Suspended;
  if (summary.lastRun?.status === "running") return CampaignPhases.Running;
  if (summary.nextRunAt !== undefined) return CampaignPhases.Scheduled;
  if (summary.lastRun?.status === "completed") return CampaignPhases.Completed;
  return CampaignPhases.Pending;
}

export async function policyFigures(redis: Redis, namespace: string, name: string) {
  return { decisions: await readPolicyDecisions(redis, namespace, name) };
}

/**
 * The Paused condition of a Sender or Campaign (`target` as `Sender/<name>`), or undefined when it
 * is not paused. A resume annotation newer than the pause clears it, with an Event.
 */
export async function pausedCondition(
  deps: ReconcileDeps & { redis: Redis },
  options: { namespace: string; target: string; annotations: Record<string, string> | undefined },
): Promise<Observation | undefined> {
  const pause = (await readPauses(deps.redis, options.namespace)).get(options.target);
  if (pause === undefined) return undefined;
  const resume = Date.parse(options.annotations?.[RESUME_ANNOTATION] ?? "");
  if (Number.isFinite(resume) && resume >= Date.parse(pause.at)) {
    await clearPause(deps.redis, options.namespace, options.target);
    deps.log.info({ target: options.target }, "resumed by its annotation");
    return undefined;
  }
  const rate = `${(pause.rate * 100).toFixed(1)}%`;
  return {
    type: ConditionTypes.Paused,
    status: "True",
    reason: ConditionReasons.AutoPaused,
    message:
      `SendPolicy ${pause.policy}: ${pause.reason} ${rate} over ${pause.sends} sends at ${pause.at}; sends are held. ` +
      `Resume with: kubectl annotate ${options.target.split("/")[0]?.toLowerCase() ?? ""} ${options.target.split("/")[1] ?? ""} ${RESUME_ANNOTATION}=$(date -u +%FT%TZ) --overwrite`,
  };
}

/** Records a Warning Event when a Sender or Campaign becomes paused (once, on the transition). */
export async function announcePause(
  deps: ReconcileDeps,
  key: ObjectKey,
  options: { previous: readonly Condition[] | undefined; paused: Observation | undefined },
): Promise<void> {
  if (options.paused === undefined) return;
  if (options.previous?.some((condition) => condition.type === ConditionTypes.Paused) === true) return;
  await deps.source.recordEvent(key, {
    type: "Warning",
    reason: ConditionReasons.AutoPaused,
    message: options.paused.message,
  });
}
