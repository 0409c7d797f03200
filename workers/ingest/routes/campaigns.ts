// Campaign run reports: the latest runs of a campaign, and one run's report as JSON or CSV
// (Accept: text/csv or ?format=csv). Engage keeps the counters in Redis; this only reads them.
// The preview of a suspended campaign (what resuming it would send), and a request to refresh it.
import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Redis } from "ioredis";
import { z } from "zod";
import { campaignPreviewSchema } from "#crds";
import type { CampaignPreview } from "#crds";
import {
  CampaignOutcomeCounters,
  CampaignPolicyReasons,
  CampaignSkipReasons,
  readCampaignPreview,
  readCampaignRun,
  readCampaignRuns,
  requestCampaignPreview,
} from "#runtime";
import type { CampaignRunReport } from "#runtime";
import { sendError, sendUnavailable } from "../http-errors.ts";
import { errorResponseSchema } from "../schemas.ts";

/** Where reports come from: Redis in the process, anything in tests. */
export interface CampaignReports {
  runs(namespace: string, campaign: string): Promise<CampaignRunReport[]>;
  run(namespace: string, campaign: string, runId: string): Promise<CampaignRunReport | undefined>;
  /** The preview of a suspended campaign; undefined when there is none. */
  preview(namespace: string, campaign: string): Promise<CampaignPreview | undefined>;
  /** Asks engage to compute the preview again. */
  refreshPreview(namespace: string, campaign: string): Promise<void>;
}

export function redisCampaignReports(redis: Redis): CampaignReports {
  return {
    runs: (namespace, campaign) => readCampaignRuns(redis, { namespace, campaign }),
    run: (namespace, campaign, runId) => readCampaignRun(redis, { namespace, campaign, runId }),
    preview: (namespace, campaign) => readCampaignPreview(redis, { namespace, campaign }),
    refreshPreview: (namespace, campaign) => requestCampaignPreview(redis, { namespace, campaign }),
  };
}

const name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { error: "must be a Campaign name (a DNS-1123 name)" });
const runId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-z0-9-]+$/, { error: "must be a run id" });

const count = z.int().min(0);
const reportSchema = z.object({
  campaign: z.string(),
  id: z.string(),
  status: z.string(),
  scheduledFor: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  targeted: count,
  enqueued: count,
  skipped: z.record(z.string(), count),
  skippedTotal: count,
  outcomes: z.record(z.string(), count),
  policy: z.record(z.string(), count),
  inFlight: count,
});

const CSV_COLUMNS = [
  "id",
  "status",
  "scheduledFor",
  "startedAt",
  "finishedAt",
  "targeted",
  "enqueued",
  "skipped",
  ...Object.values(CampaignSkipReasons).map((reason) => `skipped_${reason}`),
  ...CampaignOutcomeCounters,
  ...CampaignPolicyReasons.map((reason) => `policy_${reason}`),
  "inFlight",
] as const;

/** One header line and one line per report; values are numbers, ids and timestamps (no quoting needed). */
export function reportsCsv(reports: readonly CampaignRunReport[]): string {
  const row = (report: CampaignRunReport): string =>
    [
      report.id,
      report.status,
      report.scheduledFor ?? "",
      report.startedAt ?? "",
      report.finishedAt ?? "",
      report.targeted,
      report.enqueued,
      report.skippedTotal,
      ...Object.values(CampaignSkipReasons).map((reason) => report.skipped[reason] ?? 0),
      ...CampaignOutcomeCounters.map((counter) => report.outcomes[counter]),
      ...CampaignPolicyReasons.map((reason) => report.policy[reason] ?? 0),
      report.inFlight,
    ].join(",");
  return [CSV_COLUMNS.join(","), ...reports.map(row)].join("\n") + "\n";
}

const NO_PREVIEW =
  "it is not suspended, does not exist, has a run in progress, or engage has not computed its preview yet";

export function campaignRoutes(reports: CampaignReports): FastifyPluginAsync {
  return async (app) => {
    const routes = app.withTypeProvider<ZodTypeProvider>();
    routes.get(
      "/v1/campaigns/:name/preview",
      {
        schema: {
          summary: "What resuming a suspended campaign would send: audience, skips by reason, rendered samples",
          params: z.strictObject({ name }),
          response: {
            200: campaignPreviewSchema.extend({ campaign: z.string() }),
            404: errorResponseSchema,
            503: errorResponseSchema,
          },
        },
      },
      async (request, reply) => {
        const campaign = request.params.name;
        const preview = await reports.preview(request.caller.namespace, campaign).catch(() => null);
        if (preview === null) return sendUnavailable(reply, "redis");
        if (preview === undefined)
          return sendError(reply, "RELAIS_HTTP_NOT_FOUND", `no preview of campaign "${campaign}": ${NO_PREVIEW}`);
        return reply.send({ campaign, ...preview });
      },
    );
    routes.post(
      "/v1/campaigns/:name/preview/refresh",
      {
        schema: {
          summary: "Asks engage to compute a suspended campaign's preview again (on its next tick)",
          params: z.strictObject({ name }),
          response: { 202: z.object({ campaign: z.string(), requested: z.literal(true) }), 503: errorResponseSchema },
        },
      },
      async (request, reply) => {
        const campaign = request.params.name;
        const failed = await reports.refreshPreview(request.caller.namespace, campaign).then(
          () => false,
          () => true,
        );
        if (failed) return sendUnavailable(reply, "redis");
        return reply.code(202).send({ campaign, requested: true as const });
      },
    );
    routes.get(
      "/v1/campaigns/:name/runs",
      {
        schema: {
          summary: "The latest runs of a campaign, newest first",
          params: z.strictObject({ name }),
          response: {
            200: z.object({ campaign: z.string(), runs: z.array(reportSchema.omit({ campaign: true })) }),
            503: errorResponseSchema,
          },
        },
      },
      async (request, reply) => {
        const runs = await reports.runs(request.caller.namespace, request.params.name).catch(() => undefined);
        if (runs === undefined) return sendUnavailable(reply, "redis");
        return reply.send({ campaign: request.params.name, runs });
      },
    );
    routes.get(
      "/v1/campaigns/:name/runs/:id/report",
      {
        schema: {
          summary: "One run's report: JSON, or CSV with Accept: text/csv or ?format=csv",
          params: z.strictObject({ name, id: runId }),
          querystring: z.strictObject({ format: z.enum(["json", "csv"]).optional() }),
          // 200: the report as JSON, or as CSV text.
          response: { 200: z.union([reportSchema, z.string()]), 404: errorResponseSchema, 503: errorResponseSchema },
        },
      },
      async (request, reply) => {
        const { name: campaign, id } = request.params;
        const report = await reports.run(request.caller.namespace, campaign, id).catch(() => null);
        if (report === null) return sendUnavailable(reply, "redis");
        if (report === undefined)
          return sendError(reply, "RELAIS_HTTP_NOT_FOUND", `no run "${id}" of campaign "${campaign}"`);
        const csv =
          request.query.format === "csv" ||
          (request.query.format === undefined && (request.headers.accept ?? "").includes("text/csv"));
        if (csv) {
          return reply
            .type("text/csv; charset=utf-8")
            .header("content-disposition", `attachment; filename="${campaign}-${id}.csv"`)
            .send(reportsCsv([report]));
        }
        return reply.send({ campaign, ...report });
      },
    );
  };
}
