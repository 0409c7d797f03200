// Plans one run: walks the run's audience snapshot chunk by chunk (never the whole base in memory),
// decides each profile (screen.ts, shared with the preview), publishes the chunk's send jobs with async publishes awaited together
// (paced by throttle.perSecond), then commits the chunk's counters and the cursor in one script.
// A planner killed between publishing and committing leaves the cursor where the chunk started:
// its successor plans the chunk again, JetStream drops the repeated jobs by Nats-Msg-Id, the
// address claims recognise their own profile, and the counters are added once.
import type { Logger, SendJob } from "#runtime";
import { Subjects, campaignJobId, sendMessageId } from "#runtime";
import type { CompiledCampaign } from "./audience.ts";
import type { CampaignMetrics } from "./metrics.ts";
import type { LocalDelivery } from "./schedule.ts";
import { screenChunk } from "./screen.ts";
import type { CampaignStore } from "./store.ts";

/** Time as the planner and the scheduler see it; tests move it by hand. */
export interface Clock {
  now(): number;
  /** Resolves after `ms` (or at once when `signal` aborts). */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface PlannerDeps {
  store: CampaignStore;
  /** Publishes a job; resolves once JetStream stored it (or recognised its msgID as a duplicate). */
  publish: (subject: string, job: SendJob, msgId: string) => Promise<void>;
  clock: Clock;
  metrics: CampaignMetrics;
  log: Logger;
  chunkSize: number;
  /** The campaign as configured now; undefined once it is deleted. */
  current: () => CompiledCampaign | undefined;
}

export interface PlannedRun {
  namespace: string;
  campaign: string;
  runId: string;
  sender: string;
  owner: string;
  cursor: number;
  /** A local-time run (planned by local-time.ts). */
  local?: LocalDelivery;
  /** A local-time run whose whole snapshot is in its due set. */
  scheduled?: boolean;
}

/**
 * How a planner stopped: done, suspended, aborted (shutdown or delete), the lease was lost, or (a
 * local-time run) nobody is due yet and a later tick resumes it.
 */
export type PlanEnd = "completed" | "suspended" | "stopped" | "lost" | "waiting";

export interface Chunk {
  counters: Map<string, number>;
  jobs: SendJob[];
  skipped: Map<string, number>;
}

/** Paces publishes to `perSecond` from the planner's start. */
export class Pacer {
  readonly #perSecond: number;
  readonly #clock: Clock;
  readonly #start: number;
  #count = 0;

  constructor(perSecond: number, clock: Clock) {
    this.#perSecond = perSecond;
    this.#clock = clock;
    this.#start = clock.now();
  }

  /** Waits until `n` more publishes fit the pace. */
  async take(n: number, signal: AbortSignal): Promise<void> {
    const due = this.#start + (this.#count * 1000) / this.#perSecond;
    const wait = due - this.#clock.now();
    if (wait > 0) await this.#clock.sleep(wait, signal);
    this.#count += n;
  }
}

/**
 * Plans the run from its cursor until done, suspended, aborted or the lease is lost. Three chunks
 * overlap: the next one is read while the current one is decided, and the current one is decided
 * while the previous one is published and committed (commits stay in order: each checks the
 * cursor its predecessor left).
 */
export async function planRun(deps: PlannerDeps, run: PlannedRun, signal: AbortSignal): Promise<PlanEnd> {
  const reader = new ChunkReader(deps.store, run);
  let cursor = run.cursor;
  const pacers: { pacer?: Pacer } = {};
  let previous: Promise<PlanEnd | undefined> = Promise.resolve(undefined);
  for (;;) {
    const campaign = deps.current();
    const stop = stopReason(campaign, signal);
    if (stop !== undefined || campaign === undefined) return (await previous) ?? stop ?? "stopped";
    const { size, pacing } = pacingOf(deps, campaign, pacers);
    const profiles = await reader.take(cursor, size);
    if (profiles.length === 0) return (await previous) ?? "completed";
    const chunk = await decideChunk(deps, campaign, run, profiles);
    reader.prefetch(cursor + profiles.length, size);
    const ended = (await previous) ?? stopReason(deps.current(), signal);
    // Suspended or deleted while the previous chunk was out: this one is not published.
    if (ended !== undefined) return ended;
    const range = { from: cursor, to: cursor + profiles.length };
    previous = publishAndCommit(deps, {
      run,
      chunk,
      pacing,
      signal,
      commit: () => deps.store.commit({ ...run, ...range, counters: chunk.counters }),
    });
    previous.catch(() => undefined);
    cursor += profiles.length;
  }
}

/** The chunk size and pace of a campaign; a throttled chunk holds about a second of messages, so a suspend is honoured within a second. */
export function pacingOf(
  deps: PlannerDeps,
  campaign: CompiledCampaign,
  pacers: { pacer?: Pacer },
): { size: number; pacing: { pacer: Pacer; perSecond: number } | undefined } {
  const perSecond = campaign.spec.throttle?.perSecond;
  if (perSecond === undefined) return { size: deps.chunkSize, pacing: undefined };
  pacers.pacer ??= new Pacer(perSecond, deps.clock);
  return { size: Math.min(deps.chunkSize, perSecond), pacing: { pacer: pacers.pacer, perSecond } };
}

export function stopReason(campaign: CompiledCampaign | undefined, signal: AbortSignal): PlanEnd | undefined {
  if (signal.aborted || campaign === undefined) return "stopped";
  return campaign.spec.suspend ? "suspended" : undefined;
}

/** Reads chunks of the run's audience, one ahead. */
class ChunkReader {
  readonly #store: CampaignStore;
  readonly #run: PlannedRun;
  #ahead: { from: number; count: number; reading: ReturnType<CampaignStore["audienceChunk"]> } | undefined;

  constructor(store: CampaignStore, run: PlannedRun) {
    this.#store = store;
    this.#run = run;
  }

  prefetch(from: number, count: number): void {
    const reading = this.#store.audienceChunk({ ...this.#run, cursor: from, count });
    reading.catch(() => undefined);
    this.#ahead = { from, count, reading };
  }

  async take(from: number, count: number): ReturnType<CampaignStore["audienceChunk"]> {
    const ahead = this.#ahead;
    this.#ahead = undefined;
    if (ahead?.from === from && ahead.count === count) return ahead.reading;
    return this.#store.audienceChunk({ ...this.#run, cursor: from, count });
  }
}

/** Publishes a chunk's jobs, then commits it with `commit` (false: the run was lost); undefined when both went through. */
export async function publishAndCommit(
  deps: PlannerDeps,
  options: {
    run: PlannedRun;
    chunk: Chunk;
    pacing: { pacer: Pacer; perSecond: number } | undefined;
    signal: AbortSignal;
    commit: () => Promise<boolean>;
  },
): Promise<PlanEnd | undefined> {
  const { run, chunk, pacing, signal } = options;
  if (!(await publishAll(deps, { run, jobs: chunk.jobs, pacing, signal }))) return "stopped";
  if (!(await options.commit())) return "lost";
  count(deps.metrics, run, chunk);
  return undefined;
}

function count(metrics: CampaignMetrics, run: PlannedRun, chunk: Chunk): void {
  const labels = { namespace: run.namespace, campaign: run.campaign };
  metrics.recipients.inc({ ...labels, outcome: "enqueued", reason: "" }, chunk.jobs.length);
  for (const [reason, value] of chunk.skipped) metrics.recipients.inc({ ...labels, outcome: "skipped", reason }, value);
}

async function publishAll(
  deps: PlannerDeps,
  options: {
    run: PlannedRun;
    jobs: SendJob[];
    pacing: { pacer: Pacer; perSecond: number } | undefined;
    signal: AbortSignal;
  },
): Promise<boolean> {
  const { run, jobs, pacing, signal } = options;
  const subject = Subjects.campaignSend(run.namespace, run.sender, run.campaign, run.runId);
  // Unthrottled, the whole chunk is one window of async publishes; throttled, windows of about
  // 50 ms worth of messages keep the pace smooth.
  const window = pacing === undefined ? jobs.length : Math.max(1, Math.ceil(pacing.perSecond / 20));
  for (let start = 0; start < jobs.length; start += window) {
    const slice = jobs.slice(start, start + window);
    if (pacing !== undefined) await pacing.pacer.take(slice.length, signal);
    if (signal.aborted) return false;
    await Promise.all(slice.map((job) => deps.publish(subject, job, sendMessageId(job.namespace, job.id))));
  }
  return !signal.aborted;
}

/** Decides a chunk of profiles and builds its jobs and counters (email addresses screened in Redis). */
export async function decideChunk(
  deps: PlannerDeps,
  campaign: CompiledCampaign,
  run: PlannedRun,
  profiles: { id: string; hash: Record<string, string> }[],
): Promise<Chunk> {
  const now = new Date(deps.clock.now());
  const { counters, skipped, recipients } = await screenChunk(deps.store, { campaign, run, profiles, now });
  const createdAt = now.toISOString();
  const jobs = recipients.flatMap(({ id, destinations }) =>
    destinations.map((destination): SendJob => ({
      id: campaignJobId({ campaign: run.campaign, runId: run.runId, destination: destination.key, profileId: id }),
      namespace: run.namespace,
      sender: run.sender,
      profileId: id,
      source: { kind: "Campaign", name: run.campaign, runId: run.runId },
      transactional: campaign.spec.audience.subscription === "all",
      ...(destination.endpoint !== undefined && { endpoint: destination.endpoint }),
      createdAt,
    })),
  );
  counters.set("enqueued", (counters.get("enqueued") ?? 0) + jobs.length);
  return { counters, jobs, skipped };
}
