// The Redis side of campaigns: the planner's lease, the schedule state, runs (meta, counters,
// audience snapshot, address claims) and the attribution of outcomes. Keys: RedisKeys.campaign*.
import type { Redis } from "ioredis";
import { CampaignRunStatuses, RedisKeys } from "#runtime";
import type { CampaignRunStatus } from "#runtime";
import type { ScheduleState } from "./schedule.ts";

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
 * Adds to a run's counter only while the run exists (an outcome of a trimmed run is dropped), and,
 * with a marker key (KEYS[2]), only if that marker was not set yet (set here for ARGV[3] ms).
 */
const ATTRIBUTE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if KEYS[2] and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
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
}

/** How long a run's report stays after its campaign is deleted. */
const DELETED_RUN_TTL_S = 30 * 24 * 3600;

export class CampaignStore {
  readonly #redis: Redis;
  readonly #run: Record<string, ScriptRunner> = {};

  constructor(redis: Redis) {
    this.#redis = redis;
    for (const [name, lua] of Object.entries({ RENEW, RELEASE, COMMIT, CLAIM, ATTRIBUTE })) {
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
      );
      pipeline.zrem(runs, id);
    }
    await pipeline.exec();
  }

  async runMeta(namespace: string, campaign: string, runId: string): Promise<RunMeta | undefined> {
    const [status, sender, cursor, slot] = await this.#redis.hmget(
      RedisKeys.campaignRun(namespace, campaign, runId),
      "status",
      "sender",
      "cursor",
      "slot",
    );
    if (status === null) return undefined;
    return {
      id: runId,
      status: status as CampaignRunStatus,
      sender: sender ?? "",
      cursor: Number(cursor ?? 0),
      slot: Number(slot ?? 0),
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
  }): Promise<{ id: string; hash: Record<string, string> }[]> {
    const { namespace, campaign, runId, cursor, count } = options;
    const key = RedisKeys.campaignAudience(namespace, campaign, runId);
    const ids = await this.#redis.zrange(key, String(cursor), String(cursor + count - 1), "REV");
    if (ids.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hgetall(RedisKeys.profile(namespace, id));
    const hashes = (await pipeline.exec()) ?? [];
    return ids.map((id, index) => ({ id, hash: (hashes[index]?.[1] ?? {}) as Record<string, string> }));
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
    const increments = [...options.counters].filter(([, value]) => value > 0).flat();
    const result = await this.#script(
      "COMMIT",
      2,
      RedisKeys.campaignLease(namespace, campaign),
      RedisKeys.campaignRun(namespace, campaign, runId),
      options.owner,
      options.from,
      options.to,
      ...increments,
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
      .del(RedisKeys.campaignAudience(namespace, campaign, runId), RedisKeys.campaignClaims(namespace, campaign, runId))
      .hdel(RedisKeys.campaignState(namespace, campaign), "current")
      .exec();
  }

  /**
   * Adds `count` to a run's counter (an outcome, or jobs dropped by a purge). With `once` (the
   * feedback message's stream sequence), a second call with the same `once` and field within
   * minutes adds nothing: a count applied whose reply was lost (a Redis restart; ioredis resends
   * unanswered commands) and the message's redelivery are counted once.
   */
  async attribute(
    run: { namespace: string; campaign: string; runId: string },
    field: string,
    options: { count?: number; once?: string } = {},
  ): Promise<void> {
    const report = RedisKeys.campaignRun(run.namespace, run.campaign, run.runId);
    const count = options.count ?? 1;
    if (options.once === undefined) await this.#script("ATTRIBUTE", 1, report, field, count);
    else
      await this.#script(
        "ATTRIBUTE",
        2,
        report,
        `${report}:counted:${options.once}:${field}`,
        field,
        count,
        COUNTED_MARKER_TTL_MS,
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
      .del(RedisKeys.campaignState(namespace, campaign), RedisKeys.campaignLease(namespace, campaign))
      .expire(RedisKeys.campaignRuns(namespace, campaign), DELETED_RUN_TTL_S);
    for (const id of runIds) {
      multi
        .del(RedisKeys.campaignAudience(namespace, campaign, id), RedisKeys.campaignClaims(namespace, campaign, id))
        .expire(RedisKeys.campaignRun(namespace, campaign, id), DELETED_RUN_TTL_S);
    }
    await multi.exec();
  }
}
