// The chart's dashboards and alerts against a real Prometheus scraping real pools: while an event
// flows from the ingest API through an Automation to an SMTP server, Prometheus scrapes the ingest,
// engage and deliver processes and loads the chart's rules; every panel and alert expression is
// evaluated through its HTTP API. All must parse; those that read what the pools export must
// return series, so no panel points at a metric the code does not export.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { stringify } from "yaml";
import { automationSpecSchema } from "#crds";
import { runEngage } from "#engage";
import { defer, freePort, ManagedProcess, startSmtpSink, useStack, waitUntil } from "#harness";
import { ConfigKeys, createLogger } from "#runtime";
import { dashboards, expressions } from "../../charts/dashboards.ts";
import { deliverFixture } from "../fixtures/deliver.ts";
import { ingestFixture } from "../fixtures/ingest.ts";
import { parseManifests, renderChart } from "./chart/tools.ts";

const stack = useStack(["nats", "redis"]);

/** Metrics only the operator exports (not running here): their expressions must parse only. */
const operatorMetric = /relais_(pool|operator|campaign)_/;

/**
 * Series that exist once a given thing happened, which this workload does not do: feedback
 * applied to a profile (a bounce or complaint), the inactive-profile purge, a send-policy decision.
 */
const needsAnotherEvent = /relais_ingest_(feedback|profiles_purged)_total|relais_policy_decisions_total/;

interface QueryResult {
  status: string;
  error?: string;
  data?: { result: unknown[] };
}

/** Scrape targets (host:port), served until the test ends. */
async function startWorkload(t: TestContext): Promise<string[]> {
  const sink = await startSmtpSink({ tls: "none" });
  defer(t, () => sink.stop());
  const ingest = await ingestFixture(t, stack);
  const ingestUrl = await ingest.app.listen({ host: "127.0.0.1", port: 0 });
  const pool = await deliverFixture(t, stack, {
    namespace: ingest.namespace,
    senderSpec: {
      channel: "email",
      email: {
        from: { address: "hello@shop.example" },
        transport: { smtp: { host: "127.0.0.1", port: sink.port, tls: "none" } },
      },
    },
  });
  const spec = automationSpecSchema.parse({
    senderRef: { name: pool.sender },
    trigger: { event: "signed_up" },
    message: { email: { subject: "Welcome", html: "<p>Welcome.</p>" } },
  });
  await pool.kv.put(ConfigKeys.of(ingest.namespace, "Automation", "welcome"), JSON.stringify({ generation: 1, spec }));
  const engage = new AbortController();
  let engageUrl = "";
  const running = runEngage(
    { RELAIS_NATS_URL: stack.natsUrl, RELAIS_REDIS_URL: stack.redisUrl, RELAIS_HOST: "127.0.0.1", RELAIS_PORT: "0" },
    engage.signal,
    {
      log: createLogger({ name: "engage-prometheus", level: "silent" }),
      onListening: (url) => {
        engageUrl = url;
      },
    },
  );
  defer(t, async () => {
    engage.abort();
    await running;
  });
  assert.equal(await waitUntil(async () => engageUrl !== "", { timeoutMs: 10_000 }), "");

  const headers = { authorization: ingest.auth, "content-type": "application/json" };
  const profile = await fetch(`${ingestUrl}/v1/profiles/zoe`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ email: "zoe@example.com", emailSubscription: "subscribed" }),
  });
  assert.equal(profile.status, 201);
  // The automation is picked up from the KV; send the event until it has been (a new id each time).
  let attempt = 0;
  const delivered = await waitUntil(
    async () => {
      attempt += 1;
      await fetch(`${ingestUrl}/v1/events`, {
        method: "POST",
        headers,
        body: JSON.stringify({ events: [{ profileId: "zoe", name: "signed_up", id: `e-${attempt}` }] }),
      });
      return sink.received.length > 0;
    },
    { timeoutMs: 20_000, intervalMs: 500 },
  );
  assert.equal(delivered, "");
  return [ingestUrl, engageUrl, pool.opsUrl].map((url) => new URL(url).host);
}

async function startPrometheus(t: TestContext, targets: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relais-prometheus-"));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  const rule = parseManifests(await renderChart({ monitoring: { prometheusRule: { enabled: true } } })).find(
    (manifest) => manifest.kind === "PrometheusRule",
  );
  await writeFile(join(dir, "rules.yaml"), stringify(rule?.spec));
  await writeFile(
    join(dir, "prometheus.yaml"),
    stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [join(dir, "rules.yaml")],
      scrape_configs: [{ job_name: "relais", static_configs: [{ targets }] }],
    }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = new ManagedProcess({
    name: "prometheus",
    tool: "prometheus",
    args: [
      `--config.file=${join(dir, "prometheus.yaml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    cwd: dir,
    logFile: join(dir, "prometheus.log"),
    ready: async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true,
  });
  await server.start();
  defer(t, () => server.stop());
  return url;
}

async function query(prometheus: string, expr: string): Promise<QueryResult> {
  const response = await fetch(`${prometheus}/api/v1/query?${new URLSearchParams({ query: expr }).toString()}`);
  return (await response.json()) as QueryResult;
}

/** A dashboard expression as Grafana sends it: variables replaced, windows that fit this run. */
function asPromql(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "20s")
    .replaceAll("$__range", "5m")
    .replace(/\$[a-z]+/g, ".*");
}

describe("the chart's dashboards and alerts on a real Prometheus", () => {
  it("evaluate every expression, and those over the pools' metrics return series", async (t) => {
    const targets = await startWorkload(t);
    const prometheus = await startPrometheus(t, targets);
    // Every target up, and enough scrapes for rate() over 20 s.
    const scraped = await waitUntil(
      async () => {
        const up = await query(
          prometheus,
          'min(count_over_time(up{job="relais"}[20s])) >= 8 and count(up{job="relais"} == 1) >= 3',
        );
        return (up.data?.result.length ?? 0) > 0;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    assert.equal(scraped, "", "Prometheus did not scrape the three pools");

    const rules = (parseManifests(await renderChart({ monitoring: { prometheusRule: { enabled: true } } })).find(
      (manifest) => manifest.kind === "PrometheusRule",
    )?.spec ?? { groups: [] }) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const cases = [
      ...Object.entries(dashboards()).flatMap(([name, board]) =>
        expressions(board).map((expr) => ({ source: name, expr: asPromql(expr) })),
      ),
      ...rules.groups.flatMap((group) => group.rules.map((rule) => ({ source: rule.alert, expr: rule.expr }))),
    ];
    const empty: string[] = [];
    const awaited: string[] = [];
    for (const { source, expr } of cases) {
      const result = await query(prometheus, expr);
      assert.equal(result.status, "success", `${source}: ${expr}: ${result.error ?? ""}`);
      if (operatorMetric.test(expr) || needsAnotherEvent.test(expr)) awaited.push(source);
      else if (!source.startsWith("Relais") && result.data?.result.length === 0) empty.push(`${source}: ${expr}`);
    }
    assert.deepEqual(empty, [], "panels without series");
    t.diagnostic(`${cases.length} expressions evaluated; ${awaited.length} read operator metrics or feedback/purge`);

    const rulesState = (await (await fetch(`${prometheus}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const unhealthy = rulesState.data.groups
      .flatMap((group) => group.rules)
      .filter((rule) => rule.health !== "ok" && rule.health !== "unknown");
    assert.deepEqual(unhealthy, [], "rules Prometheus could not evaluate");
  });
});
