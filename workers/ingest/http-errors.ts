// The API's error bodies: {error: {code, message, issues?}}, with codes from the registry.
import type { FastifyReply } from "fastify";
import type { ErrorCode } from "#runtime";

export interface Issue {
  path: string;
  message: string;
}

export const statusOf: Partial<Record<ErrorCode, number>> = {
  RELAIS_HTTP_INVALID_REQUEST: 400,
  RELAIS_HTTP_UNAUTHORIZED: 401,
  RELAIS_HTTP_NOT_FOUND: 404,
  RELAIS_HTTP_PAYLOAD_TOO_LARGE: 413,
  RELAIS_PROFILE_TOO_MANY_FIELDS: 422,
  RELAIS_HTTP_RATE_LIMITED: 429,
  RELAIS_HTTP_UNAVAILABLE: 503,
};

export function sendError(reply: FastifyReply, code: ErrorCode, message: string, issues?: Issue[]): FastifyReply {
  return reply.code(statusOf[code] ?? 500).send({ error: { code, message, ...(issues !== undefined && { issues }) } });
}

/**
 * 503 for a dependency that could not take the request (NATS or Redis restarting): the client
 * retries the same request after Retry-After; every write is idempotent.
 */
export function sendUnavailable(
  reply: FastifyReply,
  dependency: "nats" | "redis",
  retryAfterSeconds = 1,
): FastifyReply {
  return sendError(
    reply.header("retry-after", String(retryAfterSeconds)),
    "RELAIS_HTTP_UNAVAILABLE",
    `${dependency} unavailable; retry`,
  );
}

/** "events.3.name" style paths from zod become "events[3].name". */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) =>
      typeof segment === "number" ? `[${segment}]` : `${index === 0 ? "" : "."}${String(segment)}`,
    )
    .join("");
}

interface ValidationEntry {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * The issues of a request validation error, each naming its field from the request part down:
 * "body.events[3].name". Unknown fields are reported one per field, as the API server does.
 */
export function validationIssues(part: string, entries: readonly ValidationEntry[]): Issue[] {
  return entries.flatMap((entry) => {
    const path = [
      part,
      ...entry.instancePath
        .split("/")
        .filter(Boolean)
        .map((s) => (/^\d+$/.test(s) ? Number(s) : s)),
    ];
    if (entry.keyword === "unrecognized_keys" && Array.isArray(entry.params.keys)) {
      return entry.params.keys.map((key) => ({
        path: formatIssuePath([...path, String(key)]),
        message: "field not allowed",
      }));
    }
    return [{ path: formatIssuePath(path), message: entry.message ?? entry.keyword }];
  });
}
