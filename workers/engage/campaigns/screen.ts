// The eligibility decision for one chunk of a campaign's audience: each profile (audience.ts), then
// suppression and de-duplication, which need Redis. One piece of code for the planner (which turns
// the recipients into send jobs) and the preview (which counts them and renders a few), so a
// preview shows exactly what un-suspending the campaign would send.
import { CampaignSkipReasons } from "#runtime";
import { decideProfile } from "./audience.ts";
import type { CompiledCampaign, Destination } from "./audience.ts";
import type { CampaignStore } from "./store.ts";

/** A profile that receives the campaign, on each of its destinations. */
export interface Recipient {
  id: string;
  destinations: Destination[];
}

export interface ScreenedChunk {
  /** Run counters: targeted, skipped:<reason> (enqueued is added by the planner). */
  counters: Map<string, number>;
  /** Profiles skipped, by reason. */
  skipped: Map<string, number>;
  recipients: Recipient[];
}

/**
 * Decides a chunk of profiles. De-duplication claims addresses in `run`'s claims hash, so a run
 * (or a preview) decides each address once across its chunks.
 */
export async function screenChunk(
  store: CampaignStore,
  options: {
    campaign: CompiledCampaign;
    run: { namespace: string; campaign: string; runId: string };
    profiles: readonly { id: string; hash: Record<string, string> }[];
    now: Date;
  },
): Promise<ScreenedChunk> {
  const { campaign, run } = options;
  const counters = new Map<string, number>();
  const skipped = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, value = 1) => map.set(key, (map.get(key) ?? 0) + value);
  const skip = (reason: string) => {
    add(counters, `skipped:${reason}`);
    add(skipped, reason);
  };
  let recipients: Recipient[] = [];
  for (const profile of options.profiles) {
    const decision = decideProfile(campaign, profile, options.now);
    if (decision.kind === "notTargeted") continue;
    if (decision.kind === "skip") {
      add(counters, "targeted");
      skip(decision.reason);
      continue;
    }
    // Web Push: every subscription is a recipient (targeted = enqueued + skipped holds).
    add(counters, "targeted", decision.destinations.length);
    recipients.push({ id: profile.id, destinations: decision.destinations });
  }
  if (campaign.channel === "email") recipients = await screenEmails(store, { campaign, run, recipients, skip });
  return { counters, skipped, recipients };
}

/** Drops suppressed addresses, then (dedupeByEmail) every profile but the first to claim an address. */
async function screenEmails(
  store: CampaignStore,
  options: {
    campaign: CompiledCampaign;
    run: { namespace: string; campaign: string; runId: string };
    recipients: Recipient[];
    skip: (reason: string) => void;
  },
): Promise<Recipient[]> {
  const { campaign, run, skip } = options;
  const emailOf = (recipient: Recipient): string => recipient.destinations[0]?.email ?? "";
  const suppressed = await store.suppressed(run.namespace, options.recipients.map(emailOf));
  const open = options.recipients.filter((recipient) => {
    if (!suppressed.has(emailOf(recipient))) return true;
    skip(CampaignSkipReasons.suppressed);
    return false;
  });
  if (!campaign.spec.audience.dedupeByEmail) return open;
  const held = await store.claim(
    run.namespace,
    run.campaign,
    run.runId,
    open.map((recipient) => ({ email: emailOf(recipient), profileId: recipient.id })),
  );
  return open.filter((_recipient, index) => {
    if (held[index] === true) return true;
    skip(CampaignSkipReasons.duplicateEmail);
    return false;
  });
}
