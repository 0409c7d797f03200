// The send-policy stage: every send a Sender's pool claims passes here before it is rendered, so
// the guard rails hold whichever Automation or Campaign planned it. Holds keep the job in
// JetStream (nak with a delay): a frozen, paused or quiet-hours send is never lost, and goes out
// when the hold ends. Caps are counted in Redis, shared by every pool of the namespace.
import type { Redis } from "ioredis";
import type { Counter } from "prom-client";
import type { SendPolicySpec } from "#crds";
import { inHoldout, PauseTargets, PolicyKeys, recipientZone } from "#runtime";
import type { SendJob } from "#runtime";
import { remainingInWindowMs } from "./clock.ts";
import { CAPS, DECIDED, OUTCOMES } from "./scripts.ts";
import { durationSeconds } from "../render.ts";

export interface NamedPolicy {
  name: string;
  spec: SendPolicySpec;
}

/** One claimed send, as the stage sees it. */
export interface PolicySubject {
  job: SendJob;
  channel: "email" | "webpush";
  /** The profile's timezone attribute, if any. */
  timezone: string | null;
  /** Labels of the Automation or Campaign that planned it: selectors match them. */
  sourceLabels: Readonly<Record<string, string>>;
  holdoutPercent?: number | undefined;
}

export const HoldReasons = { frozen: "frozen", quietHours: "quiet_hours_held", paused: "paused" } as const;
export type HoldReason = (typeof HoldReasons)[keyof typeof HoldReasons];
export const PolicySkipReasons = { capped: "capped", holdout: "holdout", quietHours: "quiet_hours_dropped" } as const;
export type PolicySkipReason = (typeof PolicySkipReasons)[keyof typeof PolicySkipReasons];

export type Verdict =
  | { kind: "pass" }
  | { kind: "hold"; delayMs: number; reason: HoldReason; policy: string }
  | { kind: "skip"; reason: PolicySkipReason; policy: string };

/** How often a frozen or paused send looks again: the delay between lifting a hold and sending. */
export const RECHECK_MS = 15_000;
/** The longest single hold: a quiet-hours send looks again at least hourly, so an edited policy applies. */
export const MAX_HOLD_MS = 3_600_000;
const BUCKET_MS = 10_000;
const MARKER_TTL_SECONDS = 7 * 24 * 3600;

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

export interface PolicyStageOptions {
  redis: Redis;
  namespace: string;
  sender: string;
  decisions: Counter<"namespace" | "policy" | "reason">;
  now: () => Date;
  /** Overrides RECHECK_MS and MAX_HOLD_MS (tests that move the clock look again quickly). */
  holdRecheckMs?: number;
}

export function selects(policy: NamedPolicy, labels: Readonly<Record<string, string>>): boolean {
  const wanted = policy.spec.selector?.matchLabels;
  if (wanted === undefined) return true;
  return Object.entries(wanted).every(([key, value]) => labels[key] === value);
}

const pass: Verdict = { kind: "pass" };

export class PolicyStage {
  readonly #options: PolicyStageOptions;
  readonly #caps: ScriptRunner;
  readonly #decided: ScriptRunner;
  readonly #outcomes: ScriptRunner;

  constructor(options: PolicyStageOptions) {
    this.#options = options;
    const define = (name: string, lua: string): ScriptRunner => {
      options.redis.defineCommand(name, { lua });
      return (options.redis as unknown as Record<string, ScriptRunner>)[name]?.bind(options.redis) as ScriptRunner;
    };
    this.#caps = define("relaisPolicyCaps", CAPS);
    this.#decided = define("relaisPolicyDecided", DECIDED);
    this.#outcomes = define("relaisPolicyOutcomes", OUTCOMES);
  }

  #recheck(): number {
    return jitter(this.#options.holdRecheckMs ?? RECHECK_MS);
  }

  /** A verdict per subject. Two round trips at most: pauses, then caps and counts together. */
  async evaluate(subjects: readonly PolicySubject[], policies: readonly NamedPolicy[]): Promise<Verdict[]> {
    if (subjects.length === 0) return [];
    const { redis, namespace } = this.#options;
    const paused = new Set(await redis.hkeys(PolicyKeys.pauses(namespace)));
    const now = this.#options.now();
    const verdicts = subjects.map((subject) => this.#local(subject, policies, paused, now));
    await this.#applyCaps(subjects, policies, verdicts, now);
    await this.#record(subjects, verdicts);
    return verdicts;
  }

  /** Everything decided without Redis: pauses (read already), holdout, freeze, quiet hours. */
  #local(subject: PolicySubject, policies: readonly NamedPolicy[], paused: Set<string>, now: Date): Verdict {
    const { job } = subject;
    const source = `${job.source.kind}/${job.source.name}`;
    if (paused.has(PauseTargets.sender(this.#options.sender)))
      return { kind: "hold", delayMs: this.#recheck(), reason: "paused", policy: `Sender/${this.#options.sender}` };
    if (job.source.kind === "Campaign" && paused.has(PauseTargets.campaign(job.source.name)))
      return { kind: "hold", delayMs: this.#recheck(), reason: "paused", policy: source };
    if (inHoldout(job.source.name, job.profileId, subject.holdoutPercent))
      return { kind: "skip", reason: "holdout", policy: source };
    let verdict: Verdict = pass;
    for (const policy of policies) {
      if (!selects(policy, subject.sourceLabels)) continue;
      const next = this.#localPolicy(subject, policy, now);
      if (next.kind === "skip") return next;
      // Of several holds, the longest wins: a send frozen and in quiet hours waits for both.
      if (next.kind === "hold" && (verdict.kind !== "hold" || next.delayMs > verdict.delayMs)) verdict = next;
    }
    return verdict;
  }

  #localPolicy(subject: PolicySubject, policy: NamedPolicy, now: Date): Verdict {
    const { spec, name } = policy;
    const transactional = subject.job.transactional;
    if (spec.freeze && !transactional)
      return { kind: "hold", delayMs: this.#recheck(), reason: "frozen", policy: name };
    const quiet = spec.quietHours;
    if (quiet !== undefined && (!transactional || quiet.includeTransactional)) {
      const zone = recipientZone(subject.timezone, quiet.timeZone);
      const remaining = remainingInWindowMs(now, zone, quiet);
      if (remaining > 0) {
        return quiet.action === "drop"
          ? { kind: "skip", reason: "quiet_hours_dropped", policy: name }
          : {
              kind: "hold",
              delayMs: Math.min(remaining, this.#options.holdRecheckMs ?? MAX_HOLD_MS),
              reason: "quiet_hours_held",
              policy: name,
            };
      }
    }
    return pass;
  }

  /** Counts the passing sends against every cap that applies, atomically; a full cap skips the send. */
  async #applyCaps(
    subjects: readonly PolicySubject[],
    policies: readonly NamedPolicy[],
    verdicts: Verdict[],
    now: Date,
  ): Promise<void> {
    const args: (string | number)[] = [now.getTime()];
    const asked: { index: number; caps: NamedPolicy[] }[] = [];
    subjects.forEach((subject, index) => {
      if (verdicts[index]?.kind !== "pass") return;
      const caps = policies.filter(
        (policy) =>
          policy.spec.frequencyCap !== undefined &&
          selects(policy, subject.sourceLabels) &&
          (!subject.job.transactional || policy.spec.frequencyCap.includeTransactional),
      );
      if (caps.length === 0) return;
      asked.push({ index, caps });
      args.push(subject.job.id, caps.length);
      for (const policy of caps) {
        const cap = policy.spec.frequencyCap;
        if (cap === undefined) continue;
        const scope = cap.perChannel ? subject.channel : "all";
        args.push(
          PolicyKeys.cap(this.#options.namespace, policy.name, scope, subject.job.profileId),
          cap.max,
          durationMs(cap.per),
        );
      }
    });
    if (asked.length === 0) return;
    const results = (await this.#caps(0, ...args)) as number[];
    asked.forEach(({ index, caps }, position) => {
      const full = results[position] ?? 0;
      const policy = caps[full - 1];
      if (full > 0 && policy !== undefined) verdicts[index] = { kind: "skip", reason: "capped", policy: policy.name };
    });
  }

  async #record(subjects: readonly PolicySubject[], verdicts: readonly Verdict[]): Promise<void> {
    const { namespace } = this.#options;
    const args: string[] = [
      PolicyKeys.decisions(namespace),
      PolicyKeys.heldMarker(namespace),
      String(MARKER_TTL_SECONDS),
    ];
    verdicts.forEach((verdict, index) => {
      if (verdict.kind === "pass") return;
      const id = subjects[index]?.job.id ?? "";
      args.push(id, `${verdict.policy}:${verdict.reason}`, verdict.kind === "hold" ? "1" : "0");
      this.#options.decisions.inc({ namespace, policy: verdict.policy, reason: verdict.reason });
    });
    if (args.length > 3) await this.#decided(0, ...args);
  }

  /**
   * Adds a batch's outcomes to the Sender's (and each Campaign's) sliding window and pauses what
   * crossed a threshold. Returns the targets this call paused.
   */
  async observe(
    outcomes: readonly { job: SendJob; outcome: "sent" | "bounced" | "failed" }[],
    policies: readonly NamedPolicy[],
    senderLabels: Readonly<Record<string, string>>,
  ): Promise<string[]> {
    const watching = policies.filter((policy) => policy.spec.autoPause !== undefined);
    if (watching.length === 0 || outcomes.length === 0) return [];
    const groups = new Map<string, { labels: Readonly<Record<string, string>>; counts: Counts }>();
    const add = (target: string, labels: Readonly<Record<string, string>>, outcome: string): void => {
      const group = groups.get(target) ?? { labels, counts: { sends: 0, bounced: 0, failed: 0 } };
      group.counts.sends += 1;
      if (outcome === "bounced") group.counts.bounced += 1;
      if (outcome === "failed") group.counts.failed += 1;
      groups.set(target, group);
    };
    for (const { job, outcome } of outcomes) {
      add(PauseTargets.sender(this.#options.sender), senderLabels, outcome);
      if (job.source.kind === "Campaign") add(PauseTargets.campaign(job.source.name), {}, outcome);
    }
    const paused: string[] = [];
    for (const [target, { labels, counts }] of groups) {
      const applicable = watching.filter((policy) => target.startsWith("Campaign/") || selects(policy, labels));
      const created = await this.#observeTarget(target, counts, applicable);
      if (created) paused.push(target);
    }
    return paused;
  }

  async #observeTarget(target: string, counts: Counts, policies: readonly NamedPolicy[]): Promise<boolean> {
    if (policies.length === 0) return false;
    const { namespace } = this.#options;
    const now = this.#options.now();
    const window = Math.max(...policies.map((policy) => durationMs(policy.spec.autoPause?.window ?? "10m")));
    const args: (string | number)[] = [
      PolicyKeys.outcomes(namespace, target),
      PolicyKeys.pauses(namespace),
      target,
      now.getTime(),
      BUCKET_MS,
      window,
      counts.sends,
      counts.bounced,
      counts.failed,
      now.toISOString(),
    ];
    for (const policy of policies) {
      const pause = policy.spec.autoPause;
      if (pause === undefined) continue;
      args.push(policy.name, pause.minSends, pause.bounceRate ?? -1, pause.failureRate ?? -1);
    }
    const created = (await this.#outcomes(0, ...args)) as string | null;
    return created !== null;
  }
}

interface Counts {
  sends: number;
  bounced: number;
  failed: number;
}

function durationMs(duration: string): number {
  return durationSeconds(duration) * 1000;
}

function jitter(ms: number): number {
  return Math.round(ms * (0.9 + Math.random() * 0.2));
}
