// The Redis side of campaigns: the planner's lease, the schedule state, runs (meta, counters,
// audience snapshot, address claims) and the attribution of outcomes. Keys: RedisKeys.campaign*.
import type { Redis } from "ioredis";
import type { CampaignPreview } from "#crds";
import { CampaignRunStatuses, RedisKeys } from "#runtime";
import type { CampaignRunStatus } from "#runtime";
import type { LocalDelivery, ScheduleState } from "./schedule.ts";

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** Renews the lease if `owner` holds it. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** Releases the lease if `owner` holds it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Commits one planned chunk: moves the cursor and adds the chunk's counters together, only if the
 * caller still holds the lease, the cursor is where it started, and the run is still running. A
 * chunk is therefore counted once even when a killed planner's successor plans it again.
 */
const COMMIT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[2], 'cursor') or '0') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], 'cursor', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1`;

/**
 * Claims addresses for profiles (pairs email, profileId): 1 where the profile holds the claim
 * (first come, or its own claim from a chunk planned before a crash), 0 where another does.
 */
const CLAIM = `
local out = {}
for i = 1, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  out[#out + 1] = (redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1]) and 1 or 0
end
return out`;

/**
 * Schedules one chunk of a local-time run's snapshot: adds its recipients (pairs score, member) to
 * the due set and moves the cursor, under the same conditions as COMMIT (ZADD is idempotent, so a
 * chunk scheduled again after a crash changes nothing).
 */
const SCHEDULE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[2], 'cursor') or '0') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
-- ZADD in groups of 500 pairs: unpack has a stack limit.
for i = 4, #ARGV, 1000 do redis.call('ZADD', KEYS[3], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
redis.call('HSET', KEYS[2], 'cursor', ARGV[3])
return 1`;

/** Ends the scheduling of a local-time run: the snapshot is walked, only the due set is left. */
const SCHEDULED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], 'scheduled', '1')
redis.call('DEL', KEYS[3])
return 1`;

/**
 * Commits one planned chunk of a local-time run: removes its members from the due set and adds its
 * counters, only if the caller holds the lease, the run is running and every member is still due
 * (ARGV: owner, member count, members, then counter pairs). Counted once, like COMMIT.
 */
const COMMIT_DUE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
local n = tonumber(ARGV[2])
for i = 3, n + 2 do
  if not redis.call('ZSCORE', KEYS[3], ARGV[i]) then return 0 end
end
for i = 3, n + 2 do redis.call('ZREM', KEYS[3], ARGV[i]) end
for i = n + 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1`;

/**
 * Adds ARGV[1] to each of a run's counters ARGV[3..] together (a reader never sees one without the
 * other), only while the run exists (an outcome of a trimmed run is dropped), and, with a marker
 * key (KEYS[2]), only if that marker was not set yet (set here for ARGV[2] ms).
 */
const ATTRIBUTE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if KEYS[2] and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 0 end
for i = 3, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[1]) end
return 1`;

/**
 * How long a counted feedback message is remembered: longer than its redelivery takes (the
 * feedback consumer's ack_wait, 30 s, or a 1 s nak) plus a Redis restart.
 */
const COUNTED_MARKER_TTL_MS = 5 * 60 * 1000;

export interface RunMeta {
  id: string;
  status: CampaignRunStatus;
  sender: string;
  cursor: number;
  slot: number;
  /** A local-time run: its day, time and fallback zone (fixed when it started). */
  local?: LocalDelivery;
  /** A local-time run whose snapshot is all in the due set. */
  scheduled: boolean;
}

/** A profile of a run's audience, read with its hash. */
export interface AudienceProfile {
  id: string;
  hash: Record<string, string>;
}

/** The member of a due set: the snapshot rank first (ties in time keep snapshot order), then the id. */
export function dueMember(rank: number, profileId: string): string {
  return `${String(rank).padStart(10, "0")}|${profileId}`;
}

function dueProfileId(member: string): string {
  return member.slice(member.indexOf("|") + 1);
}

/** A chunk's counters as HINCRBY pairs (zeros left out). */
function increments(counters: ReadonlyMap<string, number>): (string | number)[] {
  return [...counters].filter(([, value]) => value > 0).flat();
}

/**
 * The "run" a preview walks: its audience snapshot and address claims use the run keys under this
 * id, which no real run id (runIdFor: a timestamp and a suffix) can take.
 */
export const PREVIEW_RUN = "preview";

/** How long a run's report stays after its campaign is deleted. */
const DELETED_RUN_TTL_S = 30 * 24 * 3600;

export class CampaignStore {
  readonly #redis: Redis;
  readonly #run: Record<string, ScriptRunner> = {};

  constructor(redis: Redis) {
    this.#redis = redis;
    for (const [name, lua] of Object.entries({
      RENEW,
      RELEASE,
      COMMIT,
      CLAIM,
      ATTRIBUTE,
      SCHEDULE,
      SCHEDULED,
      COMMIT_DUE,
    })) {
      const command = `relaisCampaign${name}`;
      redis.defineCommand(command, { lua });
      this.#run[name] = ((redis as unknown as Record<string, ScriptRunner>)[command] as ScriptRunner).bind(redis);
    }
  }

  #script(name: string, numKeys: number, ...args: (string | number)[]): Promise<unknown> {
    const run = this.#run[name];
    if (run === undefined) throw new Error(`no script ${name}`);
    return run(numKeys, ...args);
  }

  /** Takes the campaign's lease for `owner` if nobody holds it; true when taken. */
  async acquire(namespace: string, campaign: string, owner: string, ttlMs: number): Promise<boolean> {
    const result = await this.#redis.set(RedisKeys.campaignLease(namespace, campaign), owner, "PX", ttlMs, "NX");
    return result === "OK";
  }

  async renew(namespace: string, campaign: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#script("RENEW", 1, RedisKeys.campaignLease(namespace, campaign), owner, ttlMs)) === 1;
  }

  async release(namespace: string, campaign: string, owner: string): Promise<void> {
    await this.#script("RELEASE", 1, RedisKeys.campaignLease(namespace, campaign), owner);
  }

  /** The schedule state and the run in progress, if any; `since` is set on first sight. */
  async state(
    namespace: string,
    campaign: string,
    nowMs: number,
  ): Promise<{ schedule: ScheduleState; current?: string }> {
    const key = RedisKeys.campaignState(namespace, campaign);
    await this.#redis.hsetnx(key, "since", nowMs);
    const hash = await this.#redis.hgetall(key);
    const number = (value: string | undefined) => (value === undefined || value === "" ? undefined : Number(value));
    return {
      schedule: {
        since: number(hash.since) ?? nowMs,
        onceDone: hash.onceDone === "1",
        atDone: number(hash.atDone),
        lastSlot: number(hash.lastSlot),
      },
      ...(hash.current !== undefined && hash.current !== "" && { current: hash.current }),
    };
  }

  /** Records (or clears) when the campaign's next run is due. */
  async setNextRun(namespace: string, campaign: string, nextAt: number | undefined): Promise<void> {
    const key = RedisKeys.campaignState(namespace, campaign);
    if (nextAt === undefined) await this.#redis.hdel(key, "nextRunAt");
    else await this.#redis.hset(key, "nextRunAt", nextAt);
  }

  /**
   * Starts a run: remembers the slot, snapshots the audience (the activity ZSET, copied inside
   * Redis, so the run walks a stable list while profiles keep changing) and makes it current.
   */
  async startRun(options: {
    namespace: string;
    campaign: string;
    runId: string;
    sender: string;
    slot: number;
    nowMs: number;
    remember: Record<string, string>;
    keep: number;
    local?: LocalDelivery;
  }): Promise<void> {
    const { namespace, campaign, runId } = options;
    const runs = RedisKeys.campaignRuns(namespace, campaign);
    await this.#redis
      .multi()
      .hset(RedisKeys.campaignState(namespace, campaign), { ...options.remember, current: runId })
      .hset(RedisKeys.campaignRun(namespace, campaign, runId), {
        status: CampaignRunStatuses.running,
        sender: options.sender,
        slot: options.slot,
        startedAt: options.nowMs,
        cursor: 0,
        ...(options.local !== undefined && {
          localDay: options.local.day,
          localTime: options.local.time,
          fallbackZone: options.local.fallbackZone,
        }),
      })
      .zadd(runs, options.nowMs, runId)
      // A campaign deleted and created again: its old reports expire, the new ones must not.
      .persist(runs)
      .zrangestore(RedisKeys.campaignAudience(namespace, campaign, runId), RedisKeys.activity(namespace), 0, -1)
      .exec();
    await this.#trim(namespace, campaign, options.keep);
  }

  /** Deletes the reports of runs beyond the latest `keep` (never the current one: it is the newest). */
  async #trim(namespace: string, campaign: string, keep: number): Promise<void> {
    const runs = RedisKeys.campaignRuns(namespace, campaign);
    const old = await this.#redis.zrange(runs, "0", String(-keep - 1));
    if (old.length === 0) return;
    const pipeline = this.#redis.pipeline();
    for (const id of old) {
      pipeline.del(
        RedisKeys.campaignRun(namespace, campaign, id),
        RedisKeys.campaignAudience(namespace, campaign, id),
        RedisKeys.campaignClaims(namespace, campaign, id),
        RedisKeys.campaignDue(namespace, campaign, id),
      );
      pipeline.zrem(runs, id);
    }
    await pipeline.exec();
  }

  async runMeta(namespace: string, campaign: string, runId: string): Promise<RunMeta | undefined> {
    const [status, sender, cursor, slot, localDay, localTime, fallbackZone, scheduled] = await this.#redis.hmget(
      RedisKeys.campaignRun(namespace, campaign, runId),
      "status",
      "sender",
      "cursor",
      "slot",
      "localDay",
      "localTime",
      "fallbackZone",
      "scheduled",
    );
    if (status === null) return undefined;
    return {
      id: runId,
      status: status as CampaignRunStatus,
      sender: sender ?? "",
      cursor: Number(cursor ?? 0),
      slot: Number(slot ?? 0),
      ...(typeof localDay === "string" &&
        typeof localTime === "string" && {
          local: { day: localDay, time: localTime, fallbackZone: fallbackZone ?? "UTC" },
        }),
      scheduled: scheduled === "1",
    };
  }

  async setStatus(namespace: string, campaign: string, runId: string, status: CampaignRunStatus): Promise<void> {
    await this.#redis.hset(RedisKeys.campaignRun(namespace, campaign, runId), "status", status);
  }

  /** The next `count` profile ids of the run's audience from `cursor`, most recent activity first. */
  async audienceChunk(options: {
    namespace: string;
    campaign: string;
    runId: string;
    cursor: number;
    count: number;
  }): Promise<AudienceProfile[]> {
    const { namespace, campaign, runId, cursor, count } = options;
    const key = RedisKeys.campaignAudience(namespace, campaign, runId);
    const ids = await this.#redis.zrange(key, String(cursor), String(cursor + count - 1), "REV");
    return this.#profiles(namespace, ids);
  }

  async #profiles(namespace: string, ids: readonly string[]): Promise<AudienceProfile[]> {
    if (ids.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hgetall(RedisKeys.profile(namespace, id));
    const hashes = (await pipeline.exec()) ?? [];
    return ids.map((id, index) => ({ id, hash: (hashes[index]?.[1] ?? {}) as Record<string, string> }));
  }

  /** Adds a chunk of a local-time run's snapshot to its due set (see SCHEDULE); false when this planner lost the run. */
  async schedule(options: {
    namespace: string;
    campaign: string;
    runId: string;
    owner: string;
    from: number;
    to: number;
    entries: readonly { member: string; at: number }[];
  }): Promise<boolean> {
    const { namespace, campaign, runId } = options;
    const result = await this.#script(
      "SCHEDULE",
      3,
      RedisKeys.campaignLease(namespace, campaign),
      RedisKeys.campaignRun(namespace, campaign, runId),
      RedisKeys.campaignDue(namespace, campaign, runId),
      options.owner,
      options.from,
      options.to,
      ...options.entries.flatMap(({ member, at }) => [at, member]),
    );
    return result === 1;
  }

  /** Marks a local-time run's snapshot as walked and drops it (see SCHEDULED). */
  async scheduled(run: { namespace: string; campaign: string; runId: string; owner: string }): Promise<boolean> {
    const { namespace, campaign, runId } = run;
    const result = await this.#script(
      "SCHEDULED",
      3,
      RedisKeys.campaignLease(namespace, campaign),
      RedisKeys.campaignRun(namespace, campaign, runId),
      RedisKeys.campaignAudience(namespace, campaign, runId),
      run.owner,
    );
    return result === 1;
  }

  /** Up to `count` recipients of a local-time run whose instant is at or before `nowMs`, earliest first. */
  async dueChunk(options: {
    namespace: string;
    campaign: string;
    runId: string;
    nowMs: number;
    count: number;
  }): Promise<(AudienceProfile & { member: string })[]> {
    const { namespace, campaign, runId } = options;
    const key = RedisKeys.campaignDue(namespace, campaign, runId);
    const members = await this.#redis.zrange(key, "-inf", String(options.nowMs), "BYSCORE", "LIMIT", 0, options.count);
    const profiles = await this.#profiles(namespace, members.map(dueProfileId));
    return profiles.map((profile, index) => ({ ...profile, member: members[index] ?? "" }));
  }

  /** How many recipients of a local-time run are not planned yet. */
  async dueLeft(run: { namespace: string; campaign: string; runId: string }): Promise<number> {
    return this.#redis.zcard(RedisKeys.campaignDue(run.namespace, run.campaign, run.runId));
  }

  /** Commits a planned chunk of a local-time run (see COMMIT_DUE); false when this planner lost the run. */
  async commitDue(options: {
    namespace: string;
    campaign: string;
    runId: string;
    owner: string;
    members: readonly string[];
    counters: ReadonlyMap<string, number>;
  }): Promise<boolean> {
    const { namespace, campaign, runId } = options;
    const result = await this.#script(
      "COMMIT_DUE",
      3,
      RedisKeys.campaignLease(namespace, campaign),
      RedisKeys.campaignRun(namespace, campaign, runId),
      RedisKeys.campaignDue(namespace, campaign, runId),
      options.owner,
      options.members.length,
      ...options.members,
      ...increments(options.counters),
    );
    return result === 1;
  }

  /** Which of `emails` are suppressed. */
  async suppressed(namespace: string, emails: readonly string[]): Promise<Set<string>> {
    if (emails.length === 0) return new Set();
    const values = await this.#redis.hmget(RedisKeys.suppressed(namespace), ...emails);
    return new Set(emails.filter((_email, index) => values[index] !== null));
  }

  /** Claims each (email, profileId); true where the profile holds the address for this run. */
  async claim(
    namespace: string,
    campaign: string,
    runId: string,
    claims: readonly { email: string; profileId: string }[],
  ): Promise<boolean[]> {
    if (claims.length === 0) return [];
    const args = claims.flatMap(({ email, profileId }) => [email.toLowerCase(), profileId]);
    const result = (await this.#script(
      "CLAIM",
      1,
      RedisKeys.campaignClaims(namespace, campaign, runId),
      ...args,
    )) as number[];
    return result.map((value) => value === 1);
  }

  /** Commits a chunk (see COMMIT); false when this planner lost the run. */
  async commit(options: {
    namespace: string;
    campaign: string;
    runId: string;
    owner: string;
    from: number;
    to: number;
    counters: ReadonlyMap<string, number>;
  }): Promise<boolean> {
    const { namespace, campaign, runId } = options;
    const result = await this.#script(
      "COMMIT",
      2,
      RedisKeys.campaignLease(namespace, campaign),
      RedisKeys.campaignRun(namespace, campaign, runId),
      options.owner,
      options.from,
      options.to,
      ...increments(options.counters),
    );
    return result === 1;
  }

  /** Ends the current run with `status`, dropping its snapshot and claims. */
  async finishRun(options: {
    namespace: string;
    campaign: string;
    runId: string;
    status: CampaignRunStatus;
    nowMs: number;
  }): Promise<void> {
    const { namespace, campaign, runId } = options;
    await this.#redis
      .multi()
      .hset(RedisKeys.campaignRun(namespace, campaign, runId), { status: options.status, finishedAt: options.nowMs })
      .del(
        RedisKeys.campaignAudience(namespace, campaign, runId),
        RedisKeys.campaignClaims(namespace, campaign, runId),
        RedisKeys.campaignDue(namespace, campaign, runId),
      )
      .hdel(RedisKeys.campaignState(namespace, campaign), "current")
      .exec();
  }

  /**
   * Adds `count` to a run's counters, all in one script (an outcome and its policy reason, or jobs
   * dropped by a purge). With `once` (the feedback message's stream sequence), a second call with
   * the same `once` within minutes adds nothing: a count applied whose reply was lost (a Redis
   * restart; ioredis resends unanswered commands) and the message's redelivery are counted once.
   */
  async attribute(
    run: { namespace: string; campaign: string; runId: string },
    fields: string | readonly string[],
    options: { count?: number; once?: string } = {},
  ): Promise<void> {
    const report = RedisKeys.campaignRun(run.namespace, run.campaign, run.runId);
    const names = typeof fields === "string" ? [fields] : fields;
    const count = options.count ?? 1;
    if (options.once === undefined) await this.#script("ATTRIBUTE", 1, report, count, 0, ...names);
    else
      await this.#script(
        "ATTRIBUTE",
        2,
        report,
        `${report}:counted:${options.once}`,
        count,
        COUNTED_MARKER_TTL_MS,
        ...names,
      );
  }

  /**
   * The generation of the stored preview, the refresh request it answers, and the latest request
   * (the preview is fresh when both match).
   */
  async previewState(
    namespace: string,
    campaign: string,
  ): Promise<{ generation: number | undefined; answered: number; requested: number }> {
    // Looked at every tick of a suspended campaign: two small reads, no JSON.
    const [[generation, answered], requested] = await Promise.all([
      this.#redis.hmget(RedisKeys.campaignPreview(namespace, campaign), "generation", "request"),
      this.#redis.get(RedisKeys.campaignPreviewRequest(namespace, campaign)),
    ]);
    return {
      generation: generation === null || generation === undefined ? undefined : Number(generation),
      answered: Number(answered ?? 0),
      requested: Number(requested ?? 0),
    };
  }

  /** Snapshots the audience for a preview (as startRun does for a run), with no claims yet. */
  async snapshotPreview(namespace: string, campaign: string): Promise<void> {
    await this.#redis
      .multi()
      .del(RedisKeys.campaignClaims(namespace, campaign, PREVIEW_RUN))
      .zrangestore(RedisKeys.campaignAudience(namespace, campaign, PREVIEW_RUN), RedisKeys.activity(namespace), 0, -1)
      .exec();
  }

  /** Drops a preview's snapshot and claims; `result` stores the preview (and the request it answers) in the same step. */
  async endPreview(
    namespace: string,
    campaign: string,
    result?: { preview: CampaignPreview; request: number },
  ): Promise<void> {
    const multi = this.#redis
      .multi()
      .del(
        RedisKeys.campaignAudience(namespace, campaign, PREVIEW_RUN),
        RedisKeys.campaignClaims(namespace, campaign, PREVIEW_RUN),
      );
    if (result !== undefined) {
      multi.hset(RedisKeys.campaignPreview(namespace, campaign), {
        json: JSON.stringify(result.preview),
        generation: result.preview.generation,
        request: result.request,
      });
    }
    await multi.exec();
  }

  /** Deletes the campaign's preview and any refresh request (it resumed, or was deleted). */
  async deletePreview(namespace: string, campaign: string): Promise<void> {
    await this.#redis.del(
      RedisKeys.campaignPreview(namespace, campaign),
      RedisKeys.campaignPreviewRequest(namespace, campaign),
    );
  }

  /** Every run still kept for the campaign, oldest first. */
  async runIds(namespace: string, campaign: string): Promise<string[]> {
    return this.#redis.zrange(RedisKeys.campaignRuns(namespace, campaign), "0", "-1");
  }

  /**
   * Forgets a deleted campaign: its schedule state and lease go (a campaign created again with
   * the same name starts afresh); its run reports stay for DELETED_RUN_TTL_S.
   */
  async forget(namespace: string, campaign: string, runIds: readonly string[]): Promise<void> {
    const multi = this.#redis
      .multi()
      .del(
        RedisKeys.campaignState(namespace, campaign),
        RedisKeys.campaignLease(namespace, campaign),
        RedisKeys.campaignPreview(namespace, campaign),
        RedisKeys.campaignPreviewRequest(namespace, campaign),
      )
      .expire(RedisKeys.campaignRuns(namespace, campaign), DELETED_RUN_TTL_S);
    for (const id of runIds) {
      multi
        .del(
          RedisKeys.campaignAudience(namespace, campaign, id),
          RedisKeys.campaignClaims(namespace, campaign, id),
          RedisKeys.campaignDue(namespace, campaign, id),
        )
        .expire(RedisKeys.campaignRun(namespace, campaign, id), DELETED_RUN_TTL_S);
    }
    await multi.exec();
  }
}
