// The Profiles & Data HTTP API, built (not listened) here so tests drive it with inject().
import fastifySwagger from "@fastify/swagger";
import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyError, FastifyInstance } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import type { ApiKeys, Caller } from "./auth.ts";
import { sendError, validationIssues } from "./http-errors.ts";
import type { IngestMetrics } from "./metrics.ts";
import type { Publisher } from "./publisher.ts";
import type { RateLimiter } from "./ratelimit.ts";
import { campaignRoutes } from "./routes/campaigns.ts";
import type { CampaignReports } from "./routes/campaigns.ts";
import { eventRoutes } from "./routes/events.ts";
import { opsRoutes } from "./routes/ops.ts";
import { profileRoutes } from "./routes/profiles.ts";
import { publicRoutes } from "./routes/public.ts";
import { LIMITS } from "./schemas.ts";
import type { IngestService } from "./service.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The authenticated API key; set on /v1 routes only. */
    caller: Caller;
  }
}

export interface AppDeps {
  service: IngestService;
  publisher: Publisher;
  keys: ApiKeys;
  limiter: RateLimiter;
  metrics: IngestMetrics;
  tokenSecret: string;
  /** False while dependencies are down or the process drains: /readyz answers 503. */
  isReady: () => boolean;
  /** Campaign run reports (GET /v1/campaigns/...); the routes exist only when given. */
  campaignReports?: CampaignReports;
  logger?: FastifyBaseLogger | boolean;
  now?: () => Date;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: typeof deps.logger === "object" ? deps.logger : undefined,
    logger: typeof deps.logger === "boolean" ? deps.logger : undefined,
    bodyLimit: LIMITS.bodyBytes,
    // Link tokens (with a signed click URL) are path parameters longer than fastify's default 100.
    routerOptions: { maxParamLength: 8192 },
    // secure-json-parse rejects __proto__ and constructor.prototype keys (prototype pollution).
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    requestIdHeader: "x-request-id",
    return503OnClosing: true,
    // Errors the router raises before any route (a malformed %-escape, an overlong parameter)
    // answer in the API's error shape too.
    frameworkErrors: (error, _request, reply) => {
      const code = error.statusCode === 414 ? "RELAIS_HTTP_PAYLOAD_TOO_LARGE" : "RELAIS_HTTP_INVALID_REQUEST";
      void sendError(reply, code, error.message);
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = validationIssues(error.validationContext ?? "body", error.validation);
      return sendError(
        reply,
        "RELAIS_HTTP_INVALID_REQUEST",
        issues.map((i) => `${i.path}: ${i.message}`).join("; "),
        issues,
      );
    }
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return sendError(reply, "RELAIS_HTTP_PAYLOAD_TOO_LARGE", `body: at most ${request.routeOptions.bodyLimit} bytes`);
    }
    if (error.statusCode !== undefined && error.statusCode < 500) {
      const code = error.statusCode === 404 ? "RELAIS_HTTP_NOT_FOUND" : "RELAIS_HTTP_INVALID_REQUEST";
      return sendError(reply.code(error.statusCode), code, error.message);
    }
    request.log.error({ err: error }, "request failed");
    return reply.code(500).send({ error: { code: "RELAIS_INTERNAL", message: "internal error" } });
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, "RELAIS_HTTP_NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0] ?? ""}`),
  );

  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    deps.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    deps.metrics.duration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });

  await app.register(fastifySwagger, {
    openapi: { info: { title: "Relais Profiles & Data API", version: "v1" } },
    transform: jsonSchemaTransform,
  });
  app.get("/docs/json", { schema: { hide: true } }, () => app.swagger());

  await app.register(opsRoutes({ metrics: deps.metrics, isReady: deps.isReady }));
  await app.register(publicRoutes({ ...deps }));
  await app.register(async (v1) => {
    v1.decorateRequest("caller", null as unknown as Caller);
    v1.addHook("onRequest", async (request, reply) => {
      const caller = deps.keys.authenticate(request.headers.authorization);
      if (caller === undefined) {
        return sendError(
          reply.header("www-authenticate", "Bearer"),
          "RELAIS_HTTP_UNAUTHORIZED",
          "a valid API key is required",
        );
      }
      const decision = deps.limiter.take(caller.keyId);
      if (decision.kind === "limited") {
        return sendError(
          reply.header("retry-after", String(decision.retryAfterSeconds)),
          "RELAIS_HTTP_RATE_LIMITED",
          "too many requests for this API key",
        );
      }
      request.caller = caller;
    });
    await v1.register(profileRoutes(deps.service));
    await v1.register(eventRoutes(deps.service, deps.metrics));
    if (deps.campaignReports !== undefined) await v1.register(campaignRoutes(deps.campaignReports));
  });
  return app;
}
