// Identify (PUT), Profile View (GET) and Erase (DELETE) of one profile.
import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { sendError, sendUnavailable } from "../http-errors.ts";
import { errorResponseSchema, identifyBodySchema, profileIdSchema } from "../schemas.ts";
import type { IngestService } from "../service.ts";

const params = z.strictObject({ id: profileIdSchema });

export function profileRoutes(service: IngestService): FastifyPluginAsync {
  return async (app) => {
    const routes = app.withTypeProvider<ZodTypeProvider>();

    routes.put(
      "/v1/profiles/:id",
      {
        schema: {
          summary: "Identify: create or merge a profile",
          params,
          body: identifyBodySchema,
          response: {
            200: z.object({ id: z.string(), created: z.literal(false) }),
            201: z.object({ id: z.string(), created: z.literal(true) }),
            422: errorResponseSchema,
            503: errorResponseSchema,
          },
        },
      },
      async (request, reply) => {
        const result = await service.identify(request.caller.namespace, request.params.id, request.body);
        switch (result.kind) {
          case "created":
            return reply.code(201).send({ id: request.params.id, created: true });
          case "updated":
            return reply.code(200).send({ id: request.params.id, created: false });
          case "tooManyFields":
            return sendError(reply, "RELAIS_PROFILE_TOO_MANY_FIELDS", `a profile holds at most ${result.max} fields`);
          case "unavailable":
            return sendUnavailable(reply, result.dependency);
        }
      },
    );

    routes.get(
      "/v1/profiles/:id",
      { schema: { summary: "Profile View: everything known about a profile", params } },
      async (request, reply) => {
        const result = await service.view(request.caller.namespace, request.params.id);
        switch (result.kind) {
          case "found":
            return reply.send(result.profile);
          case "notFound":
            return sendError(reply, "RELAIS_HTTP_NOT_FOUND", `no profile "${request.params.id}"`);
          case "unavailable":
            return sendUnavailable(reply, result.dependency);
        }
      },
    );

    routes.delete(
      "/v1/profiles/:id",
      { schema: { summary: "Erase (GDPR): delete a profile, its history and its pending automations", params } },
      async (request, reply) => {
        const result = await service.erase(request.caller.namespace, request.params.id);
        switch (result.kind) {
          case "erased":
            return reply.send({ id: request.params.id, erased: true, removed: result.removed });
          case "notFound":
            return sendError(reply, "RELAIS_HTTP_NOT_FOUND", `no profile "${request.params.id}"`);
          case "unavailable":
            return sendUnavailable(reply, result.dependency);
        }
      },
    );
  };
}
