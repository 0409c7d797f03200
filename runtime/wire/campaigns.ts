// Campaign runs across process boundaries: the id of a campaign's send job (which feedback carries
// back as messageId, so outcomes are attributed to their run), and the reader of run reports kept
// in Redis by engage, for the operator (status) and ingest (the report API).
import type { Redis } from "ioredis";
import { campaignPreviewSchema } from "#crds";
import type { CampaignPreview } from "#crds";
import { RedisKeys } from "./keys.ts";

/** Why a targeted profile received nothing. */
export const CampaignSkipReasons = {
  optOut: "optOut",
  suppressed: "suppressed",
  duplicateEmail: "duplicateEmail",
  domainExcluded: "domainExcluded",
  noAddress: "noAddress",
  noSubscription: "noSubscription",
} as const;
export type CampaignSkipReason = (typeof CampaignSkipReasons)[keyof typeof CampaignSkipReasons];

/**
 * Outcomes counted per run from RELAIS_FEEDBACK. `undelivered` is deliver's own skip (the address
 * was suppressed or the profile erased after planning); `dropped` counts queued jobs purged by a
 * suspend or a delete.
 */
export const CampaignOutcomeCounters = [
  "sent",
  "failed",
  "bounced",
  "expired",
  "undelivered",
  "dropped",
  "complained",
  "opened",
  "clicked",
  "unsubscribed",
] as const;
export type CampaignOutcomeCounter = (typeof CampaignOutcomeCounters)[number];

/**
 * Sends a SendPolicy or the campaign's holdout kept from a recipient at delivery (reported by the
 * deliver pool as skipped with this reason): part of `undelivered`, broken down in `policy`.
 */
export const CampaignPolicyReasons = ["holdout", "capped", "quiet_hours_dropped"] as const;
export type CampaignPolicyReason = (typeof CampaignPolicyReasons)[number];

export const CampaignRunStatuses = {
  running: "running",
  suspended: "suspended",
  completed: "completed",
  deleted: "deleted",
} as const;
export type CampaignRunStatus = (typeof CampaignRunStatuses)[keyof typeof CampaignRunStatuses];

const JOB_PREFIX = "cmp";

/**
 * The id (idempotency key) of a campaign's send job: run + destination + profile. The profile id
 * comes last because it may contain any character; campaign names (DNS names), run ids and
 * destinations ("email" or a push subscription's field) never contain "|".
 */
export function campaignJobId(job: {
  campaign: string;
  runId: string;
  destination: string;
  profileId: string;
}): string {
  return `${JOB_PREFIX}|${job.campaign}|${job.runId}|${job.destination}|${job.profileId}`;
}

/** The campaign and run of a job id made by campaignJobId; undefined for any other id. */
export function parseCampaignJobId(id: string): { campaign: string; runId: string } | undefined {
  const parts = id.split("|", 4);
  if (parts.length < 4 || parts[0] !== JOB_PREFIX) return undefined;
  const [, campaign, runId] = parts;
  if (campaign === undefined || runId === undefined || campaign === "" || runId === "") return undefined;
  return { campaign, runId };
}

/** One run as reported: its meta, its counters, and the derived figures. */
export interface CampaignRunReport {
  id: string;
  status: CampaignRunStatus;
  /** The schedule slot this run is for (RFC 3339), or when it was started for an immediate run. */
  scheduledFor: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  targeted: number;
  enqueued: number;
  skipped: Partial<Record<CampaignSkipReason, number>>;
  skippedTotal: number;
  outcomes: Record<CampaignOutcomeCounter, number>;
  /** Of `undelivered`: what send policies and the holdout group kept, by reason. */
  policy: Partial<Record<CampaignPolicyReason, number>>;
  /** enqueued - (sent + failed + bounced + expired + undelivered + dropped): not finished yet. */
  inFlight: number;
}

const int = (value: string | undefined): number => (value === undefined ? 0 : Number.parseInt(value, 10) || 0);
const iso = (value: string | undefined): string | undefined =>
  value === undefined || value === "" ? undefined : new Date(Number(value)).toISOString();

/** Builds a report from a run hash as engage writes it (HGETALL). */
export function campaignRunReport(id: string, hash: Record<string, string>): CampaignRunReport {
  const skipped: Partial<Record<CampaignSkipReason, number>> = {};
  let skippedTotal = 0;
  for (const reason of Object.values(CampaignSkipReasons)) {
    const count = int(hash[`skipped:${reason}`]);
    if (count > 0) skipped[reason] = count;
    skippedTotal += count;
  }
  const outcomes = Object.fromEntries(CampaignOutcomeCounters.map((name) => [name, int(hash[name])])) as Record<
    CampaignOutcomeCounter,
    number
  >;
  const policy: Partial<Record<CampaignPolicyReason, number>> = {};
  for (const reason of CampaignPolicyReasons) {
    const count = int(hash[`policy:${reason}`]);
    if (count > 0) policy[reason] = count;
  }
  const enqueued = int(hash.enqueued);
  const finished =
    outcomes.sent + outcomes.failed + outcomes.bounced + outcomes.expired + outcomes.undelivered + outcomes.dropped;
  const status = (hash.status ?? CampaignRunStatuses.running) as CampaignRunStatus;
  return {
    id,
    status,
    scheduledFor: iso(hash.slot),
    startedAt: iso(hash.startedAt),
    finishedAt: iso(hash.finishedAt),
    targeted: int(hash.targeted),
    enqueued,
    skipped,
    skippedTotal,
    outcomes,
    policy,
    inFlight: Math.max(0, enqueued - finished),
  };
}

/** The latest `limit` runs of a campaign, newest first (empty when it never ran). */
export async function readCampaignRuns(
  redis: Redis,
  options: { namespace: string; campaign: string; limit?: number },
): Promise<CampaignRunReport[]> {
  const { namespace, campaign } = options;
  const ids = await redis.zrange(
    RedisKeys.campaignRuns(namespace, campaign),
    "0",
    String((options.limit ?? 20) - 1),
    "REV",
  );
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hgetall(RedisKeys.campaignRun(namespace, campaign, id));
  const hashes = (await pipeline.exec()) ?? [];
  return ids.flatMap((id, index) => {
    const hash = hashes[index]?.[1] as Record<string, string> | undefined;
    return hash === undefined || Object.keys(hash).length === 0 ? [] : [campaignRunReport(id, hash)];
  });
}

/** One run's report, or undefined when the campaign has no such run (or it was trimmed). */
export async function readCampaignRun(
  redis: Redis,
  options: { namespace: string; campaign: string; runId: string },
): Promise<CampaignRunReport | undefined> {
  const hash = await redis.hgetall(RedisKeys.campaignRun(options.namespace, options.campaign, options.runId));
  return Object.keys(hash).length === 0 ? undefined : campaignRunReport(options.runId, hash);
}

/** A campaign's latest run and next run as the Campaign status shows them (crds campaignStatusSchema). */
export interface CampaignStatusSummary {
  /** Absent until the first run starts. */
  lastRun?: {
    id: string;
    startedAt?: string;
    finishedAt?: string;
    targeted: number;
    enqueued: number;
    sent: number;
    failed: number;
    skipped: Record<string, number>;
    /** Still planning (running), stopped mid-way (suspended), completed or deleted. */
    status: CampaignRunStatus;
  };
  /** "sent/targeted" of the latest run. */
  progress?: string;
  /** When the next run is due (RFC 3339), as engage last computed it; absent when none is. */
  nextRunAt?: string;
}

/**
 * What the operator folds into a Campaign's status: its latest run (`failed` counts every
 * definitive failure: failed, bounced and expired) and its next run time.
 */
export async function readCampaignStatusSummary(
  redis: Redis,
  options: { namespace: string; campaign: string },
): Promise<CampaignStatusSummary> {
  const [[run], next] = await Promise.all([
    readCampaignRuns(redis, { ...options, limit: 1 }),
    redis.hget(RedisKeys.campaignState(options.namespace, options.campaign), "nextRunAt"),
  ]);
  const nextRunAt = next === null || next === "" ? undefined : new Date(Number(next)).toISOString();
  if (run === undefined) return nextRunAt === undefined ? {} : { nextRunAt };
  return {
    lastRun: {
      id: run.id,
      ...(run.startedAt !== undefined && { startedAt: run.startedAt }),
      ...(run.finishedAt !== undefined && { finishedAt: run.finishedAt }),
      targeted: run.targeted,
      enqueued: run.enqueued,
      sent: run.outcomes.sent,
      failed: run.outcomes.failed + run.outcomes.bounced + run.outcomes.expired,
      skipped: run.skipped,
      status: run.status,
    },
    progress: `${run.outcomes.sent}/${run.targeted}`,
    ...(nextRunAt !== undefined && { nextRunAt }),
  };
}

/**
 * The preview engage last computed for a suspended campaign (status.preview and the preview API);
 * undefined when there is none (the campaign is not suspended, or engage has not walked it yet) or
 * when what Redis holds does not parse (it is recomputed).
 */
export async function readCampaignPreview(
  redis: Redis,
  options: { namespace: string; campaign: string },
): Promise<CampaignPreview | undefined> {
  const raw = await redis.hget(RedisKeys.campaignPreview(options.namespace, options.campaign), "json");
  if (raw === null) return undefined;
  try {
    const parsed = campaignPreviewSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Asks engage to compute the campaign's preview again, on its next tick (a counter: no clock to agree on). */
export async function requestCampaignPreview(
  redis: Redis,
  options: { namespace: string; campaign: string },
): Promise<void> {
  await redis.incr(RedisKeys.campaignPreviewRequest(options.namespace, options.campaign));
}
