// The pool's Redis side: claim sends and read their profiles, take rate-limit tokens, record
// outcomes. One round trip each, per batch.
import type { Redis } from "ioredis";
import { RedisKeys } from "#runtime";
import { COMPLETE, EXTEND, PREPARE, TAKE } from "./scripts.ts";

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

export interface ClaimedProfile {
  state: "claimed";
  /** The profile hash; undefined when the profile does not exist (erased). */
  profile: Record<string, string> | undefined;
  /** The suppression record of the profile's address, if any. */
  suppressed: string | undefined;
}

/** `outcome`: what the send's record says, e.g. "sent" or "skipped:opt_out". */
export type Claim = ClaimedProfile | { state: "done"; outcome: string } | { state: "busy"; remainingMs: number };

export interface RateRequest {
  /** The message's recipient domain bucket, when the Sender throttles it. */
  domain?: { name: string; perSecond: number } | undefined;
}

export interface RateLimits {
  perSecond: number;
  burst: number;
}

/** How long a claimed send stays claimed if its worker dies before recording an outcome. */
export const CLAIM_TTL_MS = 60_000;
/** How long a completed send is remembered, so a redelivery is recognised. */
export const DONE_TTL_SECONDS = 7 * 24 * 3600;

function prefixOf(namespace: string): string {
  return RedisKeys.activity(namespace).slice(0, -"activity".length);
}

function pairs(flat: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) result[flat[i] ?? ""] = flat[i + 1] ?? "";
  return result;
}

export class DeliverStore {
  readonly #prepare: ScriptRunner;
  readonly #complete: ScriptRunner;
  readonly #take: ScriptRunner;
  readonly #extend: ScriptRunner;
  readonly #owner: string;

  constructor(redis: Redis, owner: string) {
    const define = (name: string, lua: string): ScriptRunner => {
      redis.defineCommand(name, { lua });
      return (redis as unknown as Record<string, ScriptRunner>)[name]?.bind(redis) as ScriptRunner;
    };
    this.#prepare = define("relaisDeliverPrepare", PREPARE);
    this.#complete = define("relaisDeliverComplete", COMPLETE);
    this.#take = define("relaisDeliverTake", TAKE);
    this.#extend = define("relaisDeliverExtend", EXTEND);
    this.#owner = owner;
  }

  async prepare(namespace: string, jobs: readonly { id: string; profileId: string }[]): Promise<Claim[]> {
    if (jobs.length === 0) return [];
    const args = [prefixOf(namespace), this.#owner, CLAIM_TTL_MS, ...jobs.flatMap((job) => [job.id, job.profileId])];
    const replies = (await this.#prepare(0, ...args)) as [
      string,
      string[],
      string | null,
      number | undefined,
      string | undefined,
    ][];
    return replies.map(([state, profile, suppressed, ttl, outcome]) => {
      if (state === "done") return { state: "done", outcome: outcome ?? "" };
      if (state === "busy") return { state: "busy", remainingMs: Math.max(0, ttl ?? CLAIM_TTL_MS) };
      return {
        state: "claimed",
        profile: profile.length === 0 ? undefined : pairs(profile),
        suppressed: suppressed ?? undefined,
      };
    });
  }

  /** Records outcomes; an outcome of undefined releases the claim for a retry. */
  async complete(namespace: string, outcomes: readonly { id: string; outcome: string | undefined }[]): Promise<void> {
    if (outcomes.length === 0) return;
    const args = [
      prefixOf(namespace),
      this.#owner,
      DONE_TTL_SECONDS,
      ...outcomes.flatMap((entry) => [entry.id, entry.outcome ?? ""]),
    ];
    await this.#complete(0, ...args);
  }

  /** Extends the claims of sends still in flight (a slow channel), if this replica still holds them. */
  async extend(namespace: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return (await this.#extend(0, prefixOf(namespace), this.#owner, CLAIM_TTL_MS, ...ids)) as number;
  }

  /**
   * Takes one token per request from the Sender's buckets (shared by all replicas). Resolves with
   * a grant per request and, when some were refused, how long until a token is due.
   */
  async take(
    namespace: string,
    sender: string,
    limits: RateLimits | undefined,
    requests: readonly RateRequest[],
  ): Promise<{ grants: boolean[]; waitMs: number }> {
    const args: (string | number)[] = [
      RedisKeys.rateBucket(namespace, sender),
      limits?.perSecond ?? 0,
      limits?.burst ?? 0,
      requests.length,
    ];
    for (const request of requests) {
      const domain = request.domain;
      if (domain === undefined) args.push("", 0, 0);
      else args.push(RedisKeys.domainRateBucket(namespace, sender, domain.name), domain.perSecond, domain.perSecond);
    }
    const [grants, waitMs] = (await this.#take(0, ...args)) as [number[], number];
    return { grants: grants.map((grant) => grant === 1), waitMs };
  }
}
