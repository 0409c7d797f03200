// The domain functions behind the routes. Each resolves to a result value; only bugs throw.
// A failure of NATS or Redis is an expected outcome (`unavailable`): the client retries the same
// request, and retries are idempotent (event ids; identify is a merge).
import { randomUUID } from "node:crypto";
import type { EventMessage } from "#runtime";
import type { ProfilePatch, ProfileStore, ProfileView, EraseSummary } from "./profiles/store.ts";
import type { Publisher } from "./publisher.ts";
import { LIMITS } from "./schemas.ts";
import type { IdentifyBody, TrackBody } from "./schemas.ts";

export interface IngestService {
  identify(namespace: string, id: string, body: IdentifyBody): Promise<IdentifyOutcome>;
  track(namespace: string, body: TrackBody): Promise<TrackOutcome>;
  view(namespace: string, id: string): Promise<ViewOutcome>;
  erase(namespace: string, id: string): Promise<EraseOutcome>;
  unsubscribe(
    namespace: string,
    id: string,
    source: string,
  ): Promise<{ kind: "done" } | { kind: "notFound" } | Unavailable>;
}

export interface Unavailable {
  kind: "unavailable";
  /** What failed, for logs: "nats" or "redis". */
  dependency: "nats" | "redis";
}

export type IdentifyOutcome =
  Exclude<Awaited<ReturnType<ProfileStore["identify"]>>, { kind: "notFound" }> | Unavailable;
export type TrackOutcome =
  | { kind: "accepted"; ids: string[]; accepted: number; duplicates: number }
  /** An event too large to store; nothing of the batch was written. */
  | { kind: "eventTooLarge"; index: number; bytes: number }
  | Unavailable;
export type ViewOutcome = { kind: "found"; profile: ProfileView } | { kind: "notFound" } | Unavailable;
export type EraseOutcome = { kind: "erased"; removed: EraseSummary } | { kind: "notFound" } | Unavailable;

/** Lowercases the domain; keeps the local part as sent (RFC 5321: it may be case-sensitive). */
export function normaliseEmail(email: string): string {
  const at = email.lastIndexOf("@");
  return `${email.slice(0, at).trim()}@${email
    .slice(at + 1)
    .trim()
    .toLowerCase()}`;
}

function toPatch(body: IdentifyBody): ProfilePatch {
  return {
    ...(body.attributes !== undefined && { attributes: body.attributes }),
    ...(body.email !== undefined && { email: body.email === null ? null : normaliseEmail(body.email) }),
    ...(body.emailSubscription !== undefined && {
      emailSubscription: { status: body.emailSubscription, source: "api" },
    }),
    ...(body.language !== undefined && { language: body.language }),
    ...(body.timezone !== undefined && { timezone: body.timezone }),
    ...(body.webPush !== undefined && { webPush: body.webPush }),
  };
}

export interface ServiceDeps {
  store: ProfileStore;
  publisher: Publisher;
  now?: () => Date;
  /** Called with each dependency failure, for logs and metrics. */
  onUnavailable?: (dependency: "nats" | "redis", error: unknown) => void;
}

export function createIngestService(deps: ServiceDeps): IngestService {
  const now = deps.now ?? (() => new Date());
  const unavailable =
    (dependency: "nats" | "redis") =>
    (error: unknown): Unavailable => {
      deps.onUnavailable?.(dependency, error);
      return { kind: "unavailable", dependency };
    };
  const redisDown = unavailable("redis");
  const natsDown = unavailable("nats");

  return {
    async identify(namespace, id, body) {
      const result = await deps.store.identify(namespace, id, toPatch(body)).catch(redisDown);
      // Without mustExist the store creates the profile; notFound cannot happen here.
      return result.kind === "notFound" ? { kind: "created" } : result;
    },

    async track(namespace, body) {
      const receivedAt = now().toISOString();
      const events: EventMessage[] = body.events.map((event) => ({
        id: event.id ?? randomUUID(),
        namespace,
        profileId: event.profileId,
        name: event.name,
        timestamp: event.timestamp ?? receivedAt,
        receivedAt,
        attributes: event.attributes ?? {},
      }));
      const tooLarge = events.findIndex((event) => Buffer.byteLength(JSON.stringify(event)) > LIMITS.eventBytes);
      if (tooLarge >= 0) {
        return { kind: "eventTooLarge", index: tooLarge, bytes: Buffer.byteLength(JSON.stringify(events[tooLarge])) };
      }
      // JetStream first: it is the record engage consumes. A retry after a Redis failure finds
      // the events already stored (same msgID) and completes the profile history.
      try {
        await deps.publisher.events(events);
      } catch (error) {
        return natsDown(error);
      }
      let recorded: boolean[];
      try {
        recorded = await deps.store.recordEvents(namespace, events);
      } catch (error) {
        return redisDown(error);
      }
      const accepted = recorded.filter(Boolean).length;
      return { kind: "accepted", ids: events.map((event) => event.id), accepted, duplicates: events.length - accepted };
    },

    async view(namespace, id) {
      try {
        const profile = await deps.store.view(namespace, id);
        return profile === undefined ? { kind: "notFound" } : { kind: "found", profile };
      } catch (error) {
        return redisDown(error);
      }
    },

    async erase(namespace, id) {
      let removed: EraseSummary;
      try {
        removed = await deps.store.erase(namespace, id);
      } catch (error) {
        return redisDown(error);
      }
      // Announce even when nothing was stored: engage may hold instances for the id.
      try {
        await deps.publisher.erase({ namespace, profileId: id, erasedAt: now().toISOString() });
      } catch (error) {
        return natsDown(error);
      }
      return removed.existed ? { kind: "erased", removed } : { kind: "notFound" };
    },

    async unsubscribe(namespace, id, source) {
      // An erased profile stays erased: an old link must not bring it back.
      const result = await deps.store
        .identify(namespace, id, { emailSubscription: { status: "unsubscribed", source } }, { mustExist: true })
        .catch(redisDown);
      if (result.kind === "unavailable" || result.kind === "notFound") return result;
      return { kind: "done" };
    },
  };
}
