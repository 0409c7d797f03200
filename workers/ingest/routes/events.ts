// Track: a batch of events, durably appended to RELAIS_EVENTS before the 202.
import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { sendError, sendUnavailable } from "../http-errors.ts";
import type { IngestMetrics } from "../metrics.ts";
import { errorResponseSchema, LIMITS, trackBodySchema } from "../schemas.ts";
import type { IngestService } from "../service.ts";

export function eventRoutes(service: IngestService, metrics: IngestMetrics): FastifyPluginAsync {
  return async (app) => {
    const routes = app.withTypeProvider<ZodTypeProvider>();
    routes.post(
      "/v1/events",
      {
        schema: {
          summary: `Track: up to ${LIMITS.eventsPerBatch} events (1 MiB); ids make retries idempotent`,
          body: trackBodySchema,
          response: {
            202: z.object({ accepted: z.int(), duplicates: z.int(), ids: z.array(z.string()) }),
            413: errorResponseSchema,
            503: errorResponseSchema,
          },
        },
        // Validation errors reach the handler, which counts the rejected events before answering.
        attachValidation: true,
        // A batch over the count limit is "too large", like a body over the byte limit.
        preValidation: async (request, reply) => {
          const events = (request.body as { events?: unknown } | undefined)?.events;
          if (Array.isArray(events) && events.length > LIMITS.eventsPerBatch) {
            metrics.events.inc(
              { namespace: request.caller.namespace, outcome: "rejected", reason: "too_large" },
              events.length,
            );
            await sendError(
              reply,
              "RELAIS_HTTP_PAYLOAD_TOO_LARGE",
              `events: at most ${LIMITS.eventsPerBatch} per batch`,
            );
          }
        },
      },
      async (request, reply) => {
        const namespace = request.caller.namespace;
        if (request.validationError !== undefined) {
          const events = (request.body as { events?: unknown } | undefined)?.events;
          metrics.events.inc(
            { namespace, outcome: "rejected", reason: "invalid" },
            Array.isArray(events) ? events.length : 1,
          );
          throw request.validationError;
        }
        const result = await service.track(namespace, request.body);
        if (result.kind === "unavailable") {
          metrics.events.inc({ namespace, outcome: "rejected", reason: "unavailable" }, request.body.events.length);
          return sendUnavailable(reply, result.dependency);
        }
        if (result.kind === "eventTooLarge") {
          metrics.events.inc({ namespace, outcome: "rejected", reason: "too_large" }, request.body.events.length);
          return sendError(
            reply,
            "RELAIS_HTTP_PAYLOAD_TOO_LARGE",
            `body.events[${result.index}]: ${result.bytes} bytes, at most ${LIMITS.eventBytes} per event`,
          );
        }
        metrics.events.inc({ namespace, outcome: "accepted", reason: "" }, result.accepted);
        metrics.events.inc({ namespace, outcome: "duplicate", reason: "" }, result.duplicates);
        return reply.code(202).send({ accepted: result.accepted, duplicates: result.duplicates, ids: result.ids });
      },
    );
  };
}
