// The Grafana dashboards of the chart, as code (Grafana's foundation SDK). charts/generate.ts
// writes them to charts/relais/files/dashboards/; a drift test keeps the JSON equal to this code.
//
// The datasource is a template variable, never `__inputs`: the Grafana sidecar of
// kube-prometheus-stack loads ConfigMaps as they are and cannot fill inputs in.
//
// The classic dashboard model, which the SDK marks deprecated in favour of dashboardv2: the sidecar's
// file provisioning loads classic JSON, and v2 resources only through Grafana 12's app platform.
/* eslint-disable @typescript-eslint/no-deprecated */
import * as bargauge from "@grafana/grafana-foundation-sdk/bargauge";
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";

const datasource = { type: "prometheus", uid: "${datasource}" };

/** One query of a panel: a PromQL expression and the legend of its series. */
export interface Query {
  expr: string;
  legend: string;
}

interface PanelOptions {
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  /** Grid width out of 24. */
  span?: number;
}

function target(query: Query, index: number): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder()
    .expr(query.expr)
    .legendFormat(query.legend)
    .refId(String.fromCharCode(65 + index))
    .datasource(datasource);
}

function timeSeries(options: PanelOptions): timeseries.PanelBuilder {
  const panel = new timeseries.PanelBuilder()
    .title(options.title)
    .description(options.description)
    .datasource(datasource)
    .unit(options.unit)
    .min(0)
    .span(options.span ?? 12)
    .height(8)
    .fillOpacity(10)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .calcs(["mean", "max", "lastNotNull"]),
    );
  options.queries.forEach((query, index) => panel.withTarget(target(query, index)));
  return panel;
}

function stacked(options: PanelOptions): timeseries.PanelBuilder {
  return timeSeries(options).stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal));
}

function statPanel(options: PanelOptions): stat.PanelBuilder {
  const panel = new stat.PanelBuilder()
    .title(options.title)
    .description(options.description)
    .datasource(datasource)
    .unit(options.unit)
    .span(options.span ?? 6)
    .height(4)
    .graphMode(common.BigValueGraphMode.Area)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).values(false));
  options.queries.forEach((query, index) => panel.withTarget(target(query, index)));
  return panel;
}

function barGauge(options: PanelOptions): bargauge.PanelBuilder {
  const panel = new bargauge.PanelBuilder()
    .title(options.title)
    .description(options.description)
    .datasource(datasource)
    .unit(options.unit)
    .span(options.span ?? 12)
    .height(8)
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).values(false));
  options.queries.forEach((query, index) => {
    panel.withTarget(target(query, index).instant());
  });
  return panel;
}

/** A backlog (left axis) against the replicas working on it (right axis). */
function lagVersusReplicas(options: PanelOptions): timeseries.PanelBuilder {
  return timeSeries(options).overrideByQuery("B", [
    { id: "custom.axisPlacement", value: common.AxisPlacement.Right },
    { id: "unit", value: "short" },
    { id: "custom.lineStyle", value: { fill: "dash", dash: [10, 10] } },
  ]);
}

function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder("datasource").label("Data source").type("prometheus");
}

/** A multi-value label filter read from a metric's series, "All" by default. */
function labelVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(datasource)
    .query({ qryType: 1, query, refId: "PrometheusVariableQueryEditor-VariableQuery" })
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue(".*")
    .current({ text: "All", value: "$__all" });
}

function base(uid: string, title: string): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .tags(["relais"])
    .editable()
    .refresh("30s")
    .time({ from: "now-6h", to: "now" })
    .timezone("browser")
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .withVariable(datasourceVariable());
}

const rate = "$__rate_interval";
const deliverScope = 'namespace=~"$namespace", sender=~"$sender"';
const attempted = `sum by (namespace, sender) (rate(relais_deliver_messages_total{${deliverScope}, outcome=~"sent|failed|bounced|expired"}[${rate}]))`;

function deliveryRatio(outcomes: string): string {
  return `sum by (namespace, sender) (rate(relais_deliver_messages_total{${deliverScope}, outcome=~"${outcomes}"}[${rate}])) / ${attempted}`;
}

function latency(quantile: number): Query {
  return {
    expr: `histogram_quantile(${quantile}, sum by (le, namespace, sender) (rate(relais_deliver_send_duration_seconds_bucket{${deliverScope}}[${rate}])))`,
    legend: `p${Math.round(quantile * 100)} {{namespace}}/{{sender}}`,
  };
}

export function deliveryDashboard(): dashboard.Dashboard {
  return base("relais-delivery", "Relais / Delivery")
    .description("Each Sender's deliver pool: throughput, outcomes, bounce rate, latency and backlog.")
    .withVariable(labelVariable("namespace", "Namespace", "label_values(relais_deliver_messages_total, namespace)"))
    .withVariable(
      labelVariable("sender", "Sender", 'label_values(relais_deliver_messages_total{namespace=~"$namespace"}, sender)'),
    )
    .withRow(new dashboard.RowBuilder("Throughput and outcomes"))
    .withPanel(
      stacked({
        title: "Sent per second by Sender and channel",
        description: "Messages the channel accepted.",
        unit: "ops",
        queries: [
          {
            expr: `sum by (namespace, sender, channel) (rate(relais_deliver_messages_total{${deliverScope}, outcome="sent"}[${rate}]))`,
            legend: "{{namespace}}/{{sender}} ({{channel}})",
          },
        ],
      }),
    )
    .withPanel(
      stacked({
        title: "Outcomes per second",
        description: "Every send job's final outcome, and retries.",
        unit: "ops",
        queries: [
          {
            expr: `sum by (outcome) (rate(relais_deliver_messages_total{${deliverScope}}[${rate}]))`,
            legend: "{{outcome}}",
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Bounce and failure ratio",
        description: "Share of attempted sends that bounced, or failed or expired after every retry.",
        unit: "percentunit",
        queries: [
          { expr: deliveryRatio("bounced"), legend: "bounced {{namespace}}/{{sender}}" },
          { expr: deliveryRatio("failed|expired"), legend: "failed {{namespace}}/{{sender}}" },
        ],
      }),
    )
    .withPanel(
      stacked({
        title: "Skipped by reason",
        description: "Send jobs not sent: opted out, suppressed, no address or subscription.",
        unit: "ops",
        queries: [
          {
            expr: `sum by (reason) (rate(relais_deliver_skipped_total{${deliverScope}}[${rate}]))`,
            legend: "{{reason}}",
          },
        ],
      }),
    )
    .withPanel(
      stacked({
        title: "Send policies by reason",
        description:
          "Sends a SendPolicy held (frozen, quiet hours, paused) or kept (capped, holdout, quiet hours with drop), by policy and reason.",
        unit: "ops",
        queries: [
          {
            expr: `sum by (policy, reason) (rate(relais_policy_decisions_total{namespace=~"$namespace"}[${rate}]))`,
            legend: "{{policy}} {{reason}}",
          },
        ],
      }),
    )
    .withRow(new dashboard.RowBuilder("Latency and backlog"))
    .withPanel(
      timeSeries({
        title: "Send latency",
        description: "Time the channel took to accept or refuse one message.",
        unit: "s",
        queries: [latency(0.5), latency(0.95), latency(0.99)],
      }),
    )
    .withPanel(
      lagVersusReplicas({
        title: "Backlog vs replicas per deliver pool",
        description: "Send jobs waiting in JetStream (left) and the pool's replicas (right, dashed).",
        unit: "short",
        queries: [
          {
            expr: 'sum by (namespace, pool) (relais_pool_lag_messages{namespace=~"$namespace", pool=~"deliver-($sender)"})',
            legend: "backlog {{namespace}}/{{pool}}",
          },
          {
            expr: 'sum by (namespace, pool) (relais_pool_replicas{namespace=~"$namespace", pool=~"deliver-($sender)"})',
            legend: "replicas {{namespace}}/{{pool}}",
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "In flight and rate-limit wait",
        description: "Messages being rendered or sent, and the share of time batches wait for rate-limit tokens.",
        unit: "short",
        queries: [
          {
            expr: `sum by (namespace, sender) (relais_deliver_inflight_messages{${deliverScope}})`,
            legend: "in flight {{namespace}}/{{sender}}",
          },
          {
            expr: `sum by (namespace, sender) (rate(relais_deliver_rate_limit_wait_seconds_total{${deliverScope}}[${rate}]))`,
            legend: "waiting {{namespace}}/{{sender}}",
          },
        ],
      }),
    )
    .build();
}

const campaignScope = 'namespace=~"$namespace", campaign=~"$campaign"';
const automationScope = 'namespace=~"$namespace", automation=~"$automation"';

function automationOutcome(outcome: string, legend: string): Query {
  return {
    // A step nothing reached yet has no series: the funnel shows it as 0.
    expr: `sum(increase(relais_engage_automation_instances_total{${automationScope}, outcome=~"${outcome}"}[$__range])) or vector(0)`,
    legend,
  };
}

export function engagementDashboard(): dashboard.Dashboard {
  return base("relais-engagement", "Relais / Campaigns and Automations")
    .description("Campaign runs and progress; the automation funnel from trigger to send.")
    .withVariable(
      labelVariable("namespace", "Namespace", "label_values(relais_engage_automation_instances_total, namespace)"),
    )
    .withVariable(
      labelVariable(
        "campaign",
        "Campaign",
        'label_values(relais_campaign_runs_total{namespace=~"$namespace"}, campaign)',
      ),
    )
    .withVariable(
      labelVariable(
        "automation",
        "Automation",
        'label_values(relais_engage_automation_instances_total{namespace=~"$namespace"}, automation)',
      ),
    )
    .withRow(new dashboard.RowBuilder("Campaigns"))
    .withPanel(
      statPanel({
        title: "Runs in progress",
        description: "Campaign runs streaming their segment now.",
        unit: "short",
        queries: [{ expr: `sum(relais_campaign_run_in_progress{${campaignScope}})`, legend: "in progress" }],
      }),
    )
    .withPanel(
      statPanel({
        title: "Recipients in range",
        description: "Recipients the selected campaigns processed over the dashboard's time range.",
        unit: "short",
        queries: [
          { expr: `sum(increase(relais_campaign_recipients_total{${campaignScope}}[$__range]))`, legend: "recipients" },
        ],
      }),
    )
    .withPanel(
      barGauge({
        title: "Runs by result",
        description: "Campaign runs that ended over the dashboard's time range.",
        unit: "short",
        span: 12,
        queries: [
          {
            expr: `sum by (campaign, result) (increase(relais_campaign_runs_total{${campaignScope}}[$__range]))`,
            legend: "{{campaign}} {{result}}",
          },
        ],
      }),
    )
    .withPanel(
      stacked({
        title: "Campaign progress: recipients per second by outcome",
        description: "How fast each run goes through its segment, and what happens to each recipient.",
        unit: "ops",
        span: 24,
        queries: [
          {
            expr: `sum by (campaign, outcome) (rate(relais_campaign_recipients_total{${campaignScope}}[${rate}]))`,
            legend: "{{campaign}} {{outcome}}",
          },
        ],
      }),
    )
    .withRow(new dashboard.RowBuilder("Automations"))
    .withPanel(
      barGauge({
        title: "Automation funnel",
        description: "Instances over the time range: triggered, then waiting, sent, cancelled or skipped.",
        unit: "short",
        queries: [
          automationOutcome("triggered", "triggered"),
          {
            expr: `sum(relais_engage_automation_waiting_instances{${automationScope}})`,
            legend: "waiting now",
          },
          automationOutcome("sent", "sent"),
          automationOutcome("cancelled", "cancelled"),
          automationOutcome("skipped_.+", "skipped"),
          automationOutcome("filtered_out", "filtered out"),
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Waiting instances by automation",
        description: "Instances waiting for their timer.",
        unit: "short",
        queries: [
          {
            expr: `sum by (namespace, automation) (relais_engage_automation_waiting_instances{${automationScope}})`,
            legend: "{{namespace}}/{{automation}}",
          },
        ],
      }),
    )
    .withPanel(
      stacked({
        title: "Automation instances per second by outcome",
        description: "Every instance transition, skipped ones by reason.",
        unit: "ops",
        queries: [
          {
            expr: `sum by (outcome) (rate(relais_engage_automation_instances_total{${automationScope}}[${rate}]))`,
            legend: "{{outcome}}",
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Events consumed and timers fired",
        description:
          "The engage pool's input: events from RELAIS_EVENTS by outcome, and instances fired by their timer.",
        unit: "ops",
        queries: [
          { expr: `sum by (outcome) (rate(relais_engage_events_total[${rate}]))`, legend: "events {{outcome}}" },
          { expr: `sum(rate(relais_engage_timers_fired_total[${rate}]))`, legend: "timers fired" },
        ],
      }),
    )
    .build();
}

function processMetric(suffix: string, legend: string): Query {
  return {
    expr: `max by (__name__, namespace, pod) ({__name__=~"relais_.+_process_${suffix}"})`,
    legend,
  };
}

export function platformDashboard(): dashboard.Dashboard {
  return base("relais-platform", "Relais / Ingestion, pools and operator")
    .description("The ingest API, the pools' backlog and replicas, and the operator's health.")
    .withVariable(labelVariable("namespace", "Namespace", "label_values(relais_pool_replicas, namespace)"))
    .withRow(new dashboard.RowBuilder("Ingestion"))
    .withPanel(
      stacked({
        title: "Requests per second by route and status",
        description: "The Profiles & Data API.",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (route, status) (rate(relais_ingest_http_requests_total[${rate}]))`,
            legend: "{{route}} {{status}}",
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Server errors and latency",
        description: "Share of requests answered 5xx (left) and the 99th percentile of request time (right).",
        unit: "percentunit",
        queries: [
          {
            // 0 rather than no data while nothing fails.
            expr: `(sum(rate(relais_ingest_http_requests_total{status=~"5.."}[${rate}])) or vector(0)) / sum(rate(relais_ingest_http_requests_total[${rate}]))`,
            legend: "5xx ratio",
          },
          {
            expr: `histogram_quantile(0.99, sum by (le) (rate(relais_ingest_http_request_duration_seconds_bucket[${rate}])))`,
            legend: "p99 latency",
          },
        ],
      }).overrideByQuery("B", [
        { id: "custom.axisPlacement", value: common.AxisPlacement.Right },
        { id: "unit", value: "s" },
      ]),
    )
    .withPanel(
      stacked({
        title: "Events per second by outcome",
        description: "Tracked events accepted, de-duplicated or rejected (by reason).",
        unit: "ops",
        span: 24,
        queries: [
          {
            expr: `sum by (namespace, outcome, reason) (rate(relais_ingest_events_total{namespace=~"$namespace"}[${rate}]))`,
            legend: "{{namespace}} {{outcome}} {{reason}}",
          },
        ],
      }),
    )
    .withPanel(
      stacked({
        title: "Profiles: feedback applied and purged",
        description:
          "Delivery and recipient feedback applied to profiles (bounces, complaints, expired push subscriptions), and profiles erased by the retention purge.",
        unit: "ops",
        span: 24,
        queries: [
          {
            expr: `sum by (namespace, outcome) (rate(relais_ingest_feedback_total{namespace=~"$namespace"}[${rate}]))`,
            legend: "{{namespace}} {{outcome}}",
          },
          {
            expr: `sum by (namespace) (rate(relais_ingest_profiles_purged_total{namespace=~"$namespace"}[${rate}]))`,
            legend: "{{namespace}} purged",
          },
        ],
      }),
    )
    .withRow(new dashboard.RowBuilder("Pools"))
    .withPanel(
      lagVersusReplicas({
        title: "Backlog vs replicas per pool",
        description: "JetStream consumer lag (left) and replicas (right, dashed) of every pool.",
        unit: "short",
        span: 24,
        queries: [
          {
            expr: 'sum by (namespace, pool) (relais_pool_lag_messages{namespace=~"$namespace"})',
            legend: "backlog {{namespace}}/{{pool}}",
          },
          {
            expr: 'sum by (namespace, pool) (relais_pool_replicas{namespace=~"$namespace"})',
            legend: "replicas {{namespace}}/{{pool}}",
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Event-loop delay p99 by pod",
        description: "A Node process that cannot keep up shows here first.",
        unit: "s",
        queries: [processMetric("event_loop_delay_p99_seconds", "{{namespace}}/{{pod}}")],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Resident memory by pod",
        description: "Resident set size of every Relais process.",
        unit: "bytes",
        queries: [processMetric("resident_memory_bytes", "{{namespace}}/{{pod}}")],
      }),
    )
    .withRow(new dashboard.RowBuilder("Operator"))
    .withPanel(
      statPanel({
        title: "Leader",
        description: "Operator replicas holding the leader Lease: exactly 1 when healthy.",
        unit: "short",
        queries: [{ expr: "sum(relais_operator_leader)", legend: "leaders" }],
      }),
    )
    .withPanel(
      statPanel({
        title: "Work queue depth",
        description: "Resources waiting to be reconciled.",
        unit: "short",
        queries: [{ expr: "max(relais_operator_queue_depth)", legend: "queued" }],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Reconciles per second by kind and result",
        description: "Reconciles of Senders, Campaigns and Automations.",
        unit: "ops",
        queries: [
          {
            expr: `sum by (kind, result) (rate(relais_operator_reconcile_total[${rate}]))`,
            legend: "{{kind}} {{result}}",
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: "Reconcile latency p99 by kind",
        description: "Time one reconcile takes.",
        unit: "s",
        span: 24,
        queries: [
          {
            expr: `histogram_quantile(0.99, sum by (le, kind) (rate(relais_operator_reconcile_duration_seconds_bucket[${rate}])))`,
            legend: "{{kind}}",
          },
        ],
      }),
    )
    .build();
}

/** Every dashboard the chart ships, by file name. */
export function dashboards(): Record<string, dashboard.Dashboard> {
  return {
    "relais-delivery": deliveryDashboard(),
    "relais-engagement": engagementDashboard(),
    "relais-platform": platformDashboard(),
  };
}

/** Every PromQL expression of a dashboard (panels and variables), for the tests that check them. */
export function expressions(board: dashboard.Dashboard): string[] {
  const panels = (board.panels ?? []).flatMap((panel) => ("targets" in panel ? (panel.targets ?? []) : []));
  return panels.flatMap((query) => {
    const expr = (query as { expr?: unknown }).expr;
    return typeof expr === "string" ? [expr] : [];
  });
}
