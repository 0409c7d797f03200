// Campaign metrics, on the engage registry. The names are the Helm chart dashboards' contract.
// Counted by the process that plans: summed across replicas they give the campaign's figures.
import { Counter, Gauge } from "prom-client";
import type { Registry } from "prom-client";
import { CampaignRunStatuses, CampaignSkipReasons } from "#runtime";

export interface CampaignMetrics {
  /** outcome enqueued (reason "") or skipped (reason = the skip reason). */
  recipients: Counter<"namespace" | "campaign" | "outcome" | "reason">;
  /** Runs that ended here, by result: completed, suspended, deleted. */
  runs: Counter<"namespace" | "campaign" | "result">;
  /** 1 while this process plans a run of the campaign. */
  inProgress: Gauge<"namespace" | "campaign">;
  /** Sets every known label set of a campaign to 0, so dashboards see it before its first run. */
  initialise(namespace: string, campaign: string): void;
}

export function createCampaignMetrics(registry: Registry): CampaignMetrics {
  const recipients = new Counter({
    name: "relais_campaign_recipients_total",
    help: "Campaign recipients planned, by outcome (enqueued, skipped) and skip reason.",
    labelNames: ["namespace", "campaign", "outcome", "reason"],
    registers: [registry],
  });
  const runs = new Counter({
    name: "relais_campaign_runs_total",
    help: "Campaign runs that ended, by result (completed, suspended, deleted).",
    labelNames: ["namespace", "campaign", "result"],
    registers: [registry],
  });
  const inProgress = new Gauge({
    name: "relais_campaign_run_in_progress",
    help: "1 while this process plans a run of the campaign.",
    labelNames: ["namespace", "campaign"],
    registers: [registry],
  });
  return {
    recipients,
    runs,
    inProgress,
    initialise(namespace, campaign) {
      recipients.inc({ namespace, campaign, outcome: "enqueued", reason: "" }, 0);
      for (const reason of Object.values(CampaignSkipReasons))
        recipients.inc({ namespace, campaign, outcome: "skipped", reason }, 0);
      for (const result of Object.values(CampaignRunStatuses)) {
        if (result !== CampaignRunStatuses.running) runs.inc({ namespace, campaign, result }, 0);
      }
      inProgress.set({ namespace, campaign }, 0);
    },
  };
}
