// Plans a run in each recipient's local time (schedule.localTime). Deliver never holds these jobs
// (held messages count against a Sender consumer's max_ack_pending and would stall it): the run
// starts when the day's local time arrives first anywhere, and engage enqueues each recipient
// when its own local instant arrives.
//
// Two phases, both resumable by whichever replica holds the lease:
// 1. scheduling: the audience snapshot is walked chunk by chunk, like any run; each profile the
//    segment matches goes into the run's due set (a ZSET scored by its send instant), and the
//    cursor moves with it in one script;
// 2. planning: while members are due (score <= now), they are read in chunks, decided like any run
//    (segment again, address, opt-out, suppression, de-duplication: the profile as it is at its
//    send time), published, and removed from the due set with the chunk's counters in one script.
//    When nobody is due yet the planner ends "waiting" and a later tick resumes it; the run
//    completes when the due set is empty.
import { recipientZone, zonedInstant } from "#runtime";
import { decideProfile } from "./audience.ts";
import { decideChunk, pacingOf, publishAndCommit, stopReason } from "./planner.ts";
import type { Pacer, PlanEnd, PlannedRun, PlannerDeps } from "./planner.ts";
import type { LocalDelivery } from "./schedule.ts";
import { dueMember } from "./store.ts";

type LocalRun = PlannedRun & { local: LocalDelivery };

/** Plans a local-time run from where it stands until it completes, waits, is suspended or stopped. */
export async function planLocalRun(deps: PlannerDeps, run: LocalRun, signal: AbortSignal): Promise<PlanEnd> {
  if (run.scheduled !== true) {
    const end = await scheduleAudience(deps, run, signal);
    if (end !== undefined) return end;
  }
  return planDue(deps, run, signal);
}

/** Phase 1: the snapshot into the due set. Undefined once all of it is there. */
async function scheduleAudience(deps: PlannerDeps, run: LocalRun, signal: AbortSignal): Promise<PlanEnd | undefined> {
  const { day, time, fallbackZone } = run.local;
  // One instant per timezone value for the whole planner (checking a zone builds an Intl format):
  // a base holds a few hundred distinct values at most.
  const instants = new Map<string, number>();
  const instantFor = (timezone = ""): number => {
    let instant = instants.get(timezone);
    if (instant === undefined) {
      instant = zonedInstant(day, time, recipientZone(timezone, fallbackZone));
      instants.set(timezone, instant);
    }
    return instant;
  };
  let cursor = run.cursor;
  for (;;) {
    const campaign = deps.current();
    const stop = stopReason(campaign, signal);
    if (stop !== undefined || campaign === undefined) return stop ?? "stopped";
    const profiles = await deps.store.audienceChunk({ ...run, cursor, count: deps.chunkSize });
    if (profiles.length === 0) return (await deps.store.scheduled(run)) ? undefined : "lost";
    const now = new Date(deps.clock.now());
    const entries = profiles.flatMap((profile, index) =>
      decideProfile(campaign, profile, now).kind === "notTargeted"
        ? []
        : [
            {
              member: dueMember(cursor + index, profile.id),
              at: instantFor(profile.hash.timezone),
            },
          ],
    );
    const to = cursor + profiles.length;
    if (!(await deps.store.schedule({ ...run, from: cursor, to, entries }))) return "lost";
    cursor = to;
  }
}

/** Phase 2: the recipients whose instant has come, chunk by chunk. */
async function planDue(deps: PlannerDeps, run: LocalRun, signal: AbortSignal): Promise<PlanEnd> {
  const pacers: { pacer?: Pacer } = {};
  for (;;) {
    const campaign = deps.current();
    const stop = stopReason(campaign, signal);
    if (stop !== undefined || campaign === undefined) return stop ?? "stopped";
    const { size, pacing } = pacingOf(deps, campaign, pacers);
    const due = await deps.store.dueChunk({ ...run, nowMs: deps.clock.now(), count: size });
    if (due.length === 0) return (await deps.store.dueLeft(run)) === 0 ? "completed" : "waiting";
    const chunk = await decideChunk(deps, campaign, run, due);
    const members = due.map((profile) => profile.member);
    const end = await publishAndCommit(deps, {
      run,
      chunk,
      pacing,
      signal,
      commit: () => deps.store.commitDue({ ...run, members, counters: chunk.counters }),
    });
    if (end !== undefined) return end;
  }
}
