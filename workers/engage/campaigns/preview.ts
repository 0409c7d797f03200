// The preview of a suspended campaign: what resuming it would send. It walks an audience snapshot
// chunk by chunk like a run (never the whole base in memory) through the same decision
// (screen.ts) and the holdout assignment the deliver pools apply, counts the recipients and the
// skips by reason, and renders the message for the first few recipients with the templates the
// pools use. Personal data is redacted from the samples unless spec.preview.showPersonalData.
//
// It describes a run started now over the profiles as they are now: SendPolicies (caps, quiet
// hours, freeze, pauses) decide at delivery time and are not part of it, and profiles that change
// after computedAt are not reflected until it is recomputed (on a new generation or a refresh).
import { createHash } from "node:crypto";
import { PREVIEW_EXCERPT_CHARS } from "#crds";
import type { CampaignPreview, PreviewSample } from "#crds";
import { compileEmail, compilePush, inHoldout, profileFromHash, renderEmailContent, renderPushContent } from "#runtime";
import type { CompiledEmail, CompiledPush, RenderProfile } from "#runtime";
import type { CompiledCampaign } from "./audience.ts";
import { screenChunk } from "./screen.ts";
import { PREVIEW_RUN } from "./store.ts";
import type { CampaignStore } from "./store.ts";

export const REDACTED = "[redacted]";
/** The skip reason of a recipient in the campaign's holdout group (decided by the deliver pool). */
const HOLDOUT = "holdout";

export interface PreviewDeps {
  store: CampaignStore;
  now: () => number;
  chunkSize: number;
  /** The campaign as configured now; the walk stops when its generation changes or it resumes. */
  current: () => CompiledCampaign | undefined;
}

/**
 * Computes the campaign's preview and stores it; resolves to it, or to undefined when the walk
 * stopped (signal, campaign resumed, edited or deleted: nothing is stored). Rejects when Redis fails.
 */
export async function computePreview(
  deps: PreviewDeps,
  campaign: CompiledCampaign,
  signal: AbortSignal,
): Promise<CampaignPreview | undefined> {
  const { store } = deps;
  const { namespace, name } = campaign;
  // Read before the walk: a refresh asked for during it is answered by the next one.
  const { requested } = await store.previewState(namespace, name);
  await store.snapshotPreview(namespace, name);
  try {
    const tally = await walk(deps, campaign, signal);
    if (tally === undefined) {
      await store.endPreview(namespace, name);
      return undefined;
    }
    const preview: CampaignPreview = {
      generation: campaign.generation,
      computedAt: new Date(tally.startedAt).toISOString(),
      audience: tally.audience,
      targeted: tally.targeted,
      skipped: Object.fromEntries(tally.skipped),
      samples: await renderSamples(campaign, tally.samples),
      personalData: campaign.spec.preview.showPersonalData,
    };
    await store.endPreview(namespace, name, { preview, request: requested });
    return preview;
  } catch (error) {
    await store.endPreview(namespace, name).catch(() => undefined);
    throw error;
  }
}

interface Tally {
  startedAt: number;
  audience: number;
  targeted: number;
  skipped: Map<string, number>;
  samples: { id: string; hash: Record<string, string> }[];
}

async function walk(deps: PreviewDeps, campaign: CompiledCampaign, signal: AbortSignal): Promise<Tally | undefined> {
  const run = { namespace: campaign.namespace, campaign: campaign.name, runId: PREVIEW_RUN };
  const tally: Tally = { startedAt: deps.now(), audience: 0, targeted: 0, skipped: new Map(), samples: [] };
  const wanted = campaign.spec.preview.samples;
  for (let cursor = 0; ;) {
    const now = deps.current();
    if (signal.aborted || now?.generation !== campaign.generation || !now.spec.suspend) return undefined;
    const profiles = await deps.store.audienceChunk({ ...run, cursor, count: deps.chunkSize });
    if (profiles.length === 0) return tally;
    cursor += profiles.length;
    const chunk = await screenChunk(deps.store, { campaign, run, profiles, now: new Date(deps.now()) });
    tally.targeted += chunk.counters.get("targeted") ?? 0;
    for (const [reason, count] of chunk.skipped) tally.skipped.set(reason, (tally.skipped.get(reason) ?? 0) + count);
    const hashes = new Map(profiles.map((profile) => [profile.id, profile.hash]));
    for (const recipient of chunk.recipients) {
      const sends = recipient.destinations.length;
      // The deliver pool keeps the holdout group from every send of the campaign (pipeline policy stage).
      if (inHoldout(campaign.name, recipient.id, campaign.spec.audience.holdoutPercent)) {
        tally.skipped.set(HOLDOUT, (tally.skipped.get(HOLDOUT) ?? 0) + sends);
        continue;
      }
      tally.audience += sends;
      const hash = hashes.get(recipient.id);
      if (tally.samples.length < wanted && hash !== undefined) tally.samples.push({ id: recipient.id, hash });
    }
  }
}

type Compiled = { kind: "email"; template: CompiledEmail } | { kind: "webpush"; template: CompiledPush };

async function compile(campaign: CompiledCampaign): Promise<Compiled | { kind: "error"; reason: string }> {
  const { email, webpush } = campaign.spec.message;
  try {
    if (email !== undefined) return { kind: "email", template: await compileEmail(email) };
    if (webpush !== undefined) return { kind: "webpush", template: compilePush(webpush) };
    return { kind: "error", reason: "spec.message: neither email nor webpush" };
  } catch (error) {
    return { kind: "error", reason: `template: ${error instanceof Error ? error.message : String(error)}` };
  }
}

async function renderSamples(
  campaign: CompiledCampaign,
  profiles: readonly { id: string; hash: Record<string, string> }[],
): Promise<PreviewSample[]> {
  if (profiles.length === 0) return [];
  const compiled = await compile(campaign);
  const show = campaign.spec.preview.showPersonalData;
  const samples: PreviewSample[] = [];
  for (const { id, hash } of profiles) {
    const profile = profileFromHash(id, hash);
    const redact = show ? (text: string) => text : redactor(profile);
    const sample: PreviewSample = { profile: show ? id : hashedId(campaign.namespace, id) };
    samples.push({ ...sample, ...(await renderSample(compiled, profile, redact)) });
  }
  return samples;
}

async function renderSample(
  compiled: Compiled | { kind: "error"; reason: string },
  profile: RenderProfile,
  redact: (text: string) => string,
): Promise<Omit<PreviewSample, "profile">> {
  const excerpt = (text: string | undefined) => (text === undefined ? undefined : cut(redact(text)));
  try {
    if (compiled.kind === "error") return { error: compiled.reason };
    const scope = { profile, event: undefined };
    if (compiled.kind === "email") {
      const content = await renderEmailContent(compiled.template, scope);
      return defined({
        subject: redact(content.subject).slice(0, 1024),
        preheader: excerpt(content.preheader),
        text: excerpt(content.text),
        html: excerpt(content.html),
      });
    }
    const { fields } = await renderPushContent(compiled.template, scope);
    return defined({ title: excerpt(fields.title), body: excerpt(fields.body), url: excerpt(fields.url) });
  } catch (error) {
    return { error: redact(`template: ${error instanceof Error ? error.message : String(error)}`).slice(0, 1024) };
  }
}

function defined<T extends Record<string, string | undefined>>(fields: T): Partial<Record<keyof T, string>> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<
    Record<keyof T, string>
  >;
}

function cut(text: string): string {
  return text.length <= PREVIEW_EXCERPT_CHARS ? text : `${text.slice(0, PREVIEW_EXCERPT_CHARS)}…`;
}

/** A stable pseudonym of a profile id: samples can be told apart, never traced back without the id. */
export function hashedId(namespace: string, id: string): string {
  return `sha256:${createHash("sha256").update(`${namespace}\u0000${id}`).digest("hex").slice(0, 16)}`;
}

/**
 * Replaces the profile's personal values (id, address, every string attribute, nested too) in a
 * rendered text, longest first, in their HTML-escaped form as well. The message renders against
 * the real profile (so its conditions take the branches the real send would); only the output is
 * redacted. A value also written in the template itself is redacted there too: it errs on hiding.
 */
export function redactor(profile: RenderProfile): (text: string) => string {
  const values = new Set<string>();
  const collect = (value: unknown): void => {
    if (typeof value === "string") values.add(value);
    else if (Array.isArray(value)) value.forEach(collect);
    else if (typeof value === "object" && value !== null) Object.values(value).forEach(collect);
  };
  collect([profile.id, profile.email, profile.attributes]);
  const needles = [...values]
    .flatMap((value) => [value, escapeHtml(value)])
    // A single character identifies nobody, and replacing it would shred the whole text.
    .filter((value) => value.trim().length >= 2);
  if (needles.length === 0) return (text) => text;
  // One pass, longest first: a replacement is never searched again (a short value inside
  // "[redacted]" stays as it is) and a value containing another goes whole.
  const ordered = [...new Set(needles)].sort((a, b) => b.length - a.length);
  const pattern = new RegExp(ordered.map((needle) => needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  return (text) => text.replace(pattern, REDACTED);
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&#34;")
    .replace(/'/g, "&#39;");
}
