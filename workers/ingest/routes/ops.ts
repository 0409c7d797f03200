// /healthz (the process serves), /readyz (it can take work), /metrics (Prometheus).
import type { FastifyPluginAsync } from "fastify";
import type { IngestMetrics } from "../metrics.ts";

export function opsRoutes(deps: { metrics: IngestMetrics; isReady: () => boolean }): FastifyPluginAsync {
  return async (app) => {
    app.get("/healthz", { schema: { hide: true } }, async () => "ok");
    app.get("/readyz", { schema: { hide: true } }, async (_request, reply) =>
      deps.isReady() ? "ok" : reply.code(503).send("not ready"),
    );
    app.get("/metrics", { schema: { hide: true } }, async (_request, reply) =>
      reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
    );
  };
}
