// What to do with a claimed send before rendering: whom to send to, or why not.
import type { RenderProfile, SendJob } from "#runtime";
import { ProfileFields, profileFromHash } from "#runtime";
import type { SkipReason } from "./metrics.ts";
import type { ClaimedProfile } from "./store.ts";

export type Recipient =
  | { kind: "email"; profile: RenderProfile; address: string }
  | {
      kind: "webpush";
      profile: RenderProfile;
      subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
    };

export type Decision = { kind: "send"; recipient: Recipient } | { kind: "skip"; reason: SkipReason };

/** Decides a send from the profile as claimed. Suppression wins over everything, even transactional. */
export function decide(job: SendJob, channel: "email" | "webpush", claim: ClaimedProfile): Decision {
  const hash = claim.profile;
  if (hash === undefined) return { kind: "skip", reason: "no_profile" };
  const profile: RenderProfile = profileFromHash(job.profileId, hash);
  if (channel === "webpush") {
    const stored = job.endpoint === undefined ? undefined : hash[ProfileFields.push(job.endpoint)];
    if (stored === undefined) return { kind: "skip", reason: "no_subscription" };
    const subscription = JSON.parse(stored) as { endpoint: string; keys: { p256dh: string; auth: string } };
    return { kind: "send", recipient: { kind: "webpush", profile, subscription } };
  }
  if (profile.email === null) return { kind: "skip", reason: "no_address" };
  if (claim.suppressed !== undefined) return { kind: "skip", reason: "suppressed" };
  if (!job.transactional && hash.emailSubscription === "unsubscribed") return { kind: "skip", reason: "opt_out" };
  return { kind: "send", recipient: { kind: "email", profile, address: profile.email } };
}
