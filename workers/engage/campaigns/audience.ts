// Who receives a campaign, one profile at a time: the segment, the address or subscriptions, the
// domain filters and the subscription rule. Suppression and de-duplication need Redis and are
// decided per chunk by the planner, after these (so a skipped profile never claims an address).
import { compileExpression } from "#crds";
import type { CampaignSpec, CompiledExpression } from "#crds";
import { CampaignSkipReasons, profileFromHash } from "#runtime";
import type { CampaignSkipReason } from "#runtime";

export interface CompiledCampaign {
  namespace: string;
  name: string;
  generation: number;
  spec: CampaignSpec;
  channel: "email" | "webpush";
  segment: CompiledExpression;
  /** Compile errors; a campaign with any never runs. */
  problems: string[];
}

export function compileCampaign(options: {
  namespace: string;
  name: string;
  generation: number;
  spec: CampaignSpec;
}): CompiledCampaign {
  const segment = compileExpression(options.spec.audience.segment, "segment");
  const problems = segment.kind === "invalid" ? [`spec.audience.segment: ${segment.message}`] : ([] satisfies string[]);
  return {
    ...options,
    channel: options.spec.message.email !== undefined ? "email" : "webpush",
    segment,
    problems,
  };
}

/** One destination of a targeted profile: its email address, or one push subscription. */
export interface Destination {
  /** "email", or the push subscription's field (without "w:"): part of the job id. */
  key: string;
  email?: string;
  endpoint?: string;
}

export type AudienceDecision =
  | { kind: "notTargeted" }
  | { kind: "skip"; reason: CampaignSkipReason }
  | { kind: "candidate"; destinations: Destination[] };

/** The profile as segments see it: the same shape as automation filters. */
export function celProfile(id: string, hash: Record<string, string>): Record<string, unknown> {
  return { ...profileFromHash(id, hash) };
}

function pushDestinations(hash: Record<string, string>): Destination[] {
  const destinations: Destination[] = [];
  for (const [field, value] of Object.entries(hash)) {
    if (!field.startsWith("w:")) continue;
    const endpoint = (JSON.parse(value) as { endpoint?: unknown }).endpoint;
    if (typeof endpoint === "string") destinations.push({ key: field.slice(2), endpoint });
  }
  return destinations;
}

function domainExcluded(spec: CampaignSpec, email: string): boolean {
  const domains = spec.audience.emailDomains;
  if (domains === undefined) return false;
  const domain = email.slice(email.lastIndexOf("@") + 1).toLowerCase();
  if (domains.include !== undefined && !domains.include.includes(domain)) return true;
  return domains.exclude?.includes(domain) === true;
}

/**
 * Decides one profile of the audience snapshot. An erased profile (empty hash) or one the segment
 * does not match (or cannot be evaluated on, e.g. a missing attribute) is not targeted.
 */
export function decideProfile(
  campaign: CompiledCampaign,
  profile: { id: string; hash: Record<string, string> },
  now: Date,
): AudienceDecision {
  const { hash } = profile;
  if (Object.keys(hash).length === 0 || campaign.segment.kind !== "compiled") return { kind: "notTargeted" };
  const result = campaign.segment.evaluate({ profile: celProfile(profile.id, hash), now });
  if (result.kind !== "value" || !result.value) return { kind: "notTargeted" };
  if (campaign.channel === "webpush") {
    const destinations = pushDestinations(hash);
    return destinations.length === 0
      ? { kind: "skip", reason: CampaignSkipReasons.noSubscription }
      : { kind: "candidate", destinations };
  }
  const email = hash.email;
  if (email === undefined || email === "") return { kind: "skip", reason: CampaignSkipReasons.noAddress };
  if (domainExcluded(campaign.spec, email)) return { kind: "skip", reason: CampaignSkipReasons.domainExcluded };
  if (campaign.spec.audience.subscription === "optedIn" && hash.emailSubscription === "unsubscribed")
    return { kind: "skip", reason: CampaignSkipReasons.optOut };
  return { kind: "candidate", destinations: [{ key: "email", email }] };
}
