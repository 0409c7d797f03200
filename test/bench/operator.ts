// The real operator at scale: one `relais operator` process (node bin/relais.ts operator) against
// the harness' kube-apiserver + controller-manager, NATS and Redis, with N resources across M
// namespaces (1,000 across 50 by default). Each namespace holds the mix of a real tenant, in
// slots of 20: 2 Senders (SparkPost and SMTP + DKIM, their Secrets created), 8 Automations, 7
// Campaigns (suspended, so none runs) and 3 SendPolicies, shaped like examples/*.yaml.
//
// Figures:
// - baseline: the same process with 0 resources (leader, shared pools reconciled), settled RSS;
// - time from spawn to leading, and to every resource reconciled (status.observedGeneration ==
//   metadata.generation on all N, read by listing each kind across the cluster every 500 ms);
// - the process' RSS (VmRSS from /proc, sampled every 250 ms): peak, and settled (mean over the
//   last 10 s of a settle window that spans a resync), and per resource over the baseline;
// - reconcile duration p50/p99 per kind and overall, from the operator's own
//   relais_operator_reconcile_duration_seconds histogram, interpolated within buckets as
//   Prometheus' histogram_quantile does: for the initial sync (scraped when all were reconciled)
//   and for the whole run (resyncs and edits included);
// - change-to-reconcile latency: an Automation's spec patched (one at a time, 0.5-1.5 × the
//   spacing apart, so edits land at every phase of the resync) until its
//   status.observedGeneration catches up, polled every 10 ms (the figures' resolution);
// - after the sync (settle + edits): reconciles per second, the process' CPU cores (/proc), and
//   relais_operator_queue_depth (mean, max), which show how much of the time resync keeps it busy.
//
// Measured (2 cores shared with other work; load average 1-min 2.4 at the start, 5.7 at the end):
// spawn → leading 1.35 s, leading → all 1,000 reconciled 24.8 s (32-33 s in two other runs); RSS
// 248 MiB idle with 0 resources, peak 525 MiB, settled 462 MiB (~220 KiB per resource; 500-512
// MiB in the other runs). Initial-sync reconcile p50/p99: overall 47/767 ms; Sender 334/4356 ms
// (it applies a Deployment, Service, PDB and token Secret), Automation 54/239, Campaign 45/238,
// SendPolicy 14/48 ms. After the sync the then 10 s resync re-enqueued all 1,000 keys and 4 workers
// managed 65 reconciles/s (0.25 cores: they wait on the API server), so the queue held 630 keys on
// average and an edit waited behind it: change-to-reconcile p50 3.9 s, p99 14.0 s. With the
// operator's defaults since (60 s resync, 16 workers), load 0.8-2.6: all reconciled 18.6 s after
// leading, RSS 259 / 546 / 488 MiB (idle / peak / settled), change-to-reconcile p50 17.9 ms,
// p99 4.1 s.
//
// Run: npm run bench:operator   (or: node test/bench/operator.ts)
// Settings: BENCH_OPERATOR_RESOURCES (1000), BENCH_OPERATOR_NAMESPACES (50), BENCH_OPERATOR_EDITS
// (50), BENCH_OPERATOR_EDIT_SPACING_MS (500), BENCH_OPERATOR_SETTLE_MS (15000), BENCH_OPERATOR_STATUS_INTERVAL_MS (the operator's
// RELAIS_STATUS_INTERVAL_MS, i.e. its resync; 60000, its default). Figures go to stdout and
// bench-results/operator.json.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { resourcePath, resourceTypes } from "#operator";
import type { KubeClient, KubeObject, ResourceKind } from "#operator";
import { freePort, generateDkimKey, startStack, uniqueName, waitUntil } from "#harness";
import type { Stack } from "#harness";
import { installRelaisCrds, kubeClient } from "../integration/operator-fixtures.ts";
import { commandLine, cpuSeconds, numberSetting, packageVersion, stopChild } from "./support.ts";

const resources = numberSetting("BENCH_OPERATOR_RESOURCES", 1000, { min: 1, max: 100_000 });
const namespaceCount = numberSetting("BENCH_OPERATOR_NAMESPACES", 50, { min: 1, max: 1000 });
const edits = numberSetting("BENCH_OPERATOR_EDITS", 50, { min: 0, max: 10_000 });
const editSpacingMs = numberSetting("BENCH_OPERATOR_EDIT_SPACING_MS", 500, { min: 0, max: 60_000 });
const settleMs = numberSetting("BENCH_OPERATOR_SETTLE_MS", 15_000, { min: 1000, max: 600_000 });
const statusIntervalMs = numberSetting("BENCH_OPERATOR_STATUS_INTERVAL_MS", 60_000, { min: 100, max: 3_600_000 });

const KINDS: readonly ResourceKind[] = ["Sender", "Automation", "Campaign", "SendPolicy"];
/** One namespace's mix, by slot: 2 Senders, 8 Automations, 7 Campaigns, 3 SendPolicies. */
const MIX: readonly ResourceKind[] = [
  ...Array<ResourceKind>(2).fill("Sender"),
  ...Array<ResourceKind>(8).fill("Automation"),
  ...Array<ResourceKind>(7).fill("Campaign"),
  ...Array<ResourceKind>(3).fill("SendPolicy"),
];
const TOKEN = "a-link-signing-token-of-at-least-32-characters";
const FIELD_MANAGER = "relais-bench";

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function inWindows<T>(items: readonly T[], size: number, work: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

// ---- The resources ----

interface Planned {
  kind: ResourceKind;
  namespace: string;
  name: string;
  manifest: KubeObject;
}

const SENDERS = ["marketing-email", "transactional-email"] as const;

function senderSpec(slot: number): Record<string, unknown> {
  if (slot % 2 === 0)
    return {
      channel: "email",
      email: {
        from: { address: "news@shop.example.com", name: "Example Shop" },
        transport: {
          sparkpost: { endpoint: "https://api.eu.sparkpost.com", apiKeySecretRef: { name: "sparkpost-api" } },
        },
        tracking: { opens: true, clicks: true },
        domainThrottles: [{ domain: "gmail.com", perSecond: 100 }],
      },
      rateLimit: { perSecond: 500, burst: 1000 },
      pool: { minReplicas: 0, maxReplicas: 20, targetLagPerReplica: 5000, concurrency: 64 },
    };
  return {
    channel: "email",
    email: {
      from: { address: "orders@shop.example.com", name: "Example Shop" },
      transport: {
        smtp: {
          host: "smtp.shop.example.com",
          port: 587,
          tls: "starttls",
          authSecretRef: { name: "smtp-credentials" },
        },
      },
      dkim: { domain: "shop.example.com", selector: "relais", privateKeySecretRef: { name: "dkim-shop" } },
    },
    rateLimit: { perSecond: 50 },
    pool: { minReplicas: 1, maxReplicas: 4 },
  };
}

function automationSpec(slot: number): Record<string, unknown> {
  if (slot % 2 === 0)
    return {
      senderRef: { name: SENDERS[0] },
      trigger: { event: `cart_updated_${slot}`, filter: "event.attributes.itemCount > 0" },
      wait: { after: "48h" },
      cancelOn: [{ event: "purchase", filter: "event.attributes.cartId == trigger.attributes.cartId" }],
      gracePeriod: "72h",
      subscription: "optedIn",
      message: {
        email: {
          subject: "{{ profile.attributes.firstName | default: 'Hello' }}, your cart is waiting",
          mjml: `<mjml><mj-body><mj-section><mj-column>
  <mj-text>You left {{ trigger.attributes.itemCount }} items in your cart.</mj-text>
  <mj-button href="https://shop.example.com/cart/{{ trigger.attributes.cartId }}">Back to my cart</mj-button>
</mj-column></mj-section></mj-body></mjml>`,
        },
      },
    };
  return {
    senderRef: { name: SENDERS[1] },
    trigger: { event: `appointment_booked_${slot}` },
    wait: { until: { field: "attributes.appointmentAt", offset: "-24h", ifPast: "skip" } },
    cancelOn: [
      {
        event: "appointment_cancelled",
        filter: "event.attributes.appointmentId == trigger.attributes.appointmentId",
      },
    ],
    subscription: "all",
    message: {
      email: {
        subject: "Reminder: your appointment tomorrow at {{ trigger.attributes.appointmentAt | date: '%H:%M' }}",
        html: "<p>See you tomorrow at {{ trigger.attributes.location }}.</p>",
      },
    },
  };
}

function campaignSpec(slot: number): Record<string, unknown> {
  const common = { suspend: true, senderRef: { name: SENDERS[slot % 2] } };
  if (slot % 2 === 0)
    return {
      ...common,
      audience: {
        segment: 'profile.attributes.country == "FR" && profile.attributes.loyaltyPoints > 0',
        subscription: "optedIn",
        emailDomains: { exclude: ["gmail.com"] },
        dedupeByEmail: true,
      },
      schedule: { at: "2030-11-29T08:00:00+01:00" },
      throttle: { perSecond: 200 },
      message: {
        email: {
          subject: "{{ profile.attributes.firstName | default: 'Hello' }}, Black Friday starts now",
          html: "<h1>Black Friday</h1><p>You have {{ profile.attributes.loyaltyPoints }} points to spend.</p>",
        },
      },
    };
  return {
    ...common,
    audience: {
      segment:
        'has(profile.attributes.cardExpiresAt) && timestamp(profile.attributes.cardExpiresAt) < now + duration("720h")',
      subscription: "all",
    },
    schedule: { recurring: { cron: "0 9 * * 1", timeZone: "Europe/Paris" } },
    message: {
      email: {
        subject: "Your card expires soon",
        html: "<p>Your card ending in {{ profile.attributes.cardLast4 }} expires soon.</p>",
      },
    },
  };
}

function sendPolicySpec(slot: number): Record<string, unknown> {
  switch (slot % 3) {
    case 0:
      return { freeze: false };
    case 1:
      return {
        selector: { matchLabels: { "relais.dev/category": "promotional" } },
        frequencyCap: { max: 3, per: "168h", perChannel: false },
      };
    default:
      return { quietHours: { start: "21:00", end: "08:00", timeZone: "Europe/Paris", action: "hold" } };
  }
}

const specOf: Record<ResourceKind, (slot: number) => Record<string, unknown>> = {
  Sender: senderSpec,
  Automation: automationSpec,
  Campaign: campaignSpec,
  SendPolicy: sendPolicySpec,
};

/** Resource i goes to namespace i % M; its slot there picks its kind from MIX. */
function plan(namespaces: readonly string[]): Planned[] {
  const planned: Planned[] = [];
  const perKind = new Map<string, number>();
  for (let i = 0; i < resources; i++) {
    const namespace = namespaces[i % namespaces.length] ?? "";
    const index = Math.floor(i / namespaces.length);
    const kind = MIX[index % MIX.length] ?? "Sender";
    const counter = `${namespace}/${kind}`;
    const slot = perKind.get(counter) ?? 0;
    perKind.set(counter, slot + 1);
    const name = (kind === "Sender" ? SENDERS[slot] : undefined) ?? `${kind.toLowerCase()}-${slot}`;
    const manifest: KubeObject = {
      apiVersion: "relais.dev/v1alpha1",
      kind,
      metadata: { name, namespace },
      spec: specOf[kind](slot),
    };
    planned.push({ kind, namespace, name, manifest });
  }
  return planned;
}

async function createNamespaces(client: KubeClient, namespaces: readonly string[]): Promise<void> {
  const dkim = generateDkimKey().privateKeyPem;
  const secrets: Record<string, Record<string, string>> = {
    "sparkpost-api": { apiKey: "sparkpost-key-value" },
    "smtp-credentials": { username: "relais", password: "smtp-password-value" },
    "dkim-shop": { privateKey: dkim },
  };
  await inWindows(namespaces, 10, async (namespace) => {
    await client.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: namespace } } });
    for (const [name, stringData] of Object.entries(secrets)) {
      await client.request({
        method: "POST",
        path: `/api/v1/namespaces/${namespace}/secrets`,
        body: { metadata: { name }, stringData },
      });
    }
  });
}

const pathOf = (resource: { kind: ResourceKind; namespace: string; name: string }): string =>
  resourcePath(resourceTypes[resource.kind], { namespace: resource.namespace, name: resource.name });

// ---- The operator process ----

interface Operator {
  child: ChildProcess;
  pid: number;
  baseUrl: string;
  output: () => string;
}

async function spawnOperator(env: Record<string, string>): Promise<Operator> {
  const port = await freePort();
  const cli = join(import.meta.dirname, "..", "..", "bin", "relais.ts");
  const child = spawn(process.execPath, [cli, "operator"], {
    env: { PATH: process.env.PATH ?? "", ...env, RELAIS_HOST: "127.0.0.1", RELAIS_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  if (child.pid === undefined) throw new Error(`relais operator did not spawn: ${output}`);
  return { child, pid: child.pid, baseUrl: `http://127.0.0.1:${port}`, output: () => output };
}

/** VmRSS of `pid` in MiB, or undefined once it is gone. */
function rssMiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? undefined : Number(match[1]) / 1024;
  } catch {
    return undefined;
  }
}

/** Samples a process' RSS every 250 ms until stopped. */
class RssSampler {
  readonly samples: { at: number; mib: number }[] = [];
  readonly #timer: NodeJS.Timeout;
  constructor(pid: number) {
    this.#timer = setInterval(() => {
      const mib = rssMiB(pid);
      if (mib !== undefined) this.samples.push({ at: performance.now(), mib });
    }, 250);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
  peak(): number {
    return round(Math.max(0, ...this.samples.map((sample) => sample.mib)));
  }
  /** Mean RSS over the last `ms`. */
  recentMean(ms: number): number {
    const since = performance.now() - ms;
    const recent = this.samples.filter((sample) => sample.at >= since);
    return round(recent.reduce((sum, sample) => sum + sample.mib, 0) / Math.max(1, recent.length));
  }
}

async function metricsText(operator: Operator): Promise<string | undefined> {
  try {
    const response = await fetch(`${operator.baseUrl}/metrics`);
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const reason = await waitUntil(check, { timeoutMs, intervalMs: 100 });
  if (reason !== "") throw new Error(`${what}: ${reason}`);
}

/** Resolves once the operator leads; with `sharedPools`, once it also reconciled the shared pools. */
async function waitForLeader(operator: Operator, options: { sharedPools: boolean }): Promise<void> {
  await waitFor(
    "the operator leads",
    async () => {
      const text = (await metricsText(operator)) ?? "";
      const shared = /relais_operator_reconcile_total\{kind="SharedPools",result="success"\} [1-9]/;
      return /^relais_operator_leader 1$/m.test(text) && (!options.sharedPools || shared.test(text));
    },
    60_000,
  );
}

/** Samples relais_operator_queue_depth every 500 ms until `signal` aborts. */
async function sampleQueueDepth(operator: Operator, signal: AbortSignal): Promise<{ mean: number; max: number }> {
  const depths: number[] = [];
  while (!signal.aborted) {
    const match = /^relais_operator_queue_depth (\S+)$/m.exec((await metricsText(operator)) ?? "");
    if (match !== null) depths.push(Number(match[1]));
    await sleep(500);
  }
  return { mean: round(depths.reduce((a, b) => a + b, 0) / Math.max(1, depths.length)), max: Math.max(0, ...depths) };
}

// ---- Histograms from /metrics ----

type Buckets = Map<number, number>;

/** relais_operator_reconcile_duration_seconds cumulative buckets, by kind. */
function reconcileBuckets(text: string): Map<string, Buckets> {
  const byKind = new Map<string, Buckets>();
  const line = /^relais_operator_reconcile_duration_seconds_bucket\{(.*)\} (\S+)$/gm;
  for (const [, labels = "", value = "0"] of text.matchAll(line)) {
    const kind = /kind="([^"]*)"/.exec(labels)?.[1] ?? "";
    const le = /le="([^"]*)"/.exec(labels)?.[1] ?? "";
    const buckets = byKind.get(kind) ?? new Map<number, number>();
    buckets.set(le === "+Inf" ? Infinity : Number(le), Number(value));
    byKind.set(kind, buckets);
  }
  return byKind;
}

function sumBuckets(all: Iterable<Buckets>): Buckets {
  const total: Buckets = new Map();
  for (const buckets of all) for (const [le, count] of buckets) total.set(le, (total.get(le) ?? 0) + count);
  return total;
}

/** As Prometheus' histogram_quantile: linear within the bucket holding rank q·count. */
function quantile(q: number, buckets: Buckets): number | undefined {
  const sorted = [...buckets].sort(([a], [b]) => a - b);
  const count = sorted.at(-1)?.[1] ?? 0;
  if (count === 0) return undefined;
  const rank = q * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, cumulative] of sorted) {
    if (cumulative >= rank) {
      if (le === Infinity) return lowerBound;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / Math.max(1, cumulative - lowerCount);
    }
    lowerBound = le;
    lowerCount = cumulative;
  }
  return lowerBound;
}

interface Quantiles {
  count: number;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
}

function summarise(buckets: Buckets): Quantiles {
  const ms = (q: number): number | undefined => {
    const seconds = quantile(q, buckets);
    return seconds === undefined ? undefined : round(seconds * 1000);
  };
  return { count: Math.max(0, ...buckets.values()), p50Ms: ms(0.5), p99Ms: ms(0.99) };
}

function reconcileFigures(text: string): Record<string, Quantiles> {
  const byKind = reconcileBuckets(text);
  const figures: Record<string, Quantiles> = {};
  for (const [kind, buckets] of byKind) figures[kind] = summarise(buckets);
  figures.overall = summarise(sumBuckets(byKind.values()));
  return figures;
}

// ---- Convergence ----

type Listed = KubeObject & { status?: { observedGeneration?: number } };

/** How many resources of the run have status.observedGeneration == metadata.generation. */
async function reconciledCount(client: KubeClient, namespaces: ReadonlySet<string>): Promise<number> {
  const lists = await Promise.all(KINDS.map((kind) => client.list<Listed>(resourcePath(resourceTypes[kind]))));
  let reconciled = 0;
  for (const list of lists) {
    for (const item of list.items) {
      if (!namespaces.has(item.metadata?.namespace ?? "")) continue;
      if (item.status?.observedGeneration !== undefined && item.status.observedGeneration === item.metadata?.generation)
        reconciled++;
    }
  }
  return reconciled;
}

async function waitAllReconciled(
  client: KubeClient,
  namespaces: ReadonlySet<string>,
  operator: Operator,
): Promise<number> {
  const started = performance.now();
  let last = -1;
  for (;;) {
    const count = await reconciledCount(client, namespaces);
    if (count >= resources) return performance.now();
    if (count !== last) process.stderr.write(`reconciled ${count}/${resources}\n`);
    last = count;
    if (operator.child.exitCode !== null) throw new Error(`relais operator exited: ${operator.output()}`);
    if (performance.now() - started > 30 * 60_000) throw new Error(`only ${count}/${resources} reconciled in 30 min`);
    await sleep(500);
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/**
 * Patches Automations' subjects one at a time, a jittered spacing apart; ms from each patch's
 * answer until status follows.
 */
async function changeToReconcile(client: KubeClient, planned: readonly Planned[]): Promise<number[]> {
  const automations = planned.filter((resource) => resource.kind === "Automation");
  const latencies: number[] = [];
  for (let i = 0; i < edits && automations.length > 0; i++) {
    const target = automations[(i * 7) % automations.length];
    if (target === undefined) break;
    const path = pathOf(target);
    const patched = await client.mergePatch(
      path,
      { spec: { message: { email: { subject: `Edit ${i}: your cart is waiting` } } } },
      FIELD_MANAGER,
    );
    const applied = performance.now();
    const generation = patched.metadata?.generation ?? 0;
    for (;;) {
      const read = await client.get<Listed>(path);
      if ((read?.status?.observedGeneration ?? 0) >= generation) break;
      if (performance.now() - applied > 120_000) throw new Error(`${path} not reconciled 120 s after an edit`);
      await sleep(10);
    }
    latencies.push(performance.now() - applied);
    // Spread over several resync periods, at no fixed phase of them, as a user's edits land.
    await sleep(editSpacingMs * (0.5 + Math.random()));
  }
  return latencies;
}

// ---- The run ----

function operatorEnv(stack: Stack, kubeconfig: string, options: { namespace: string; lease: string }) {
  return {
    RELAIS_KUBECONFIG: kubeconfig,
    RELAIS_NATS_URL: stack.nats?.url ?? "",
    RELAIS_REDIS_URL: stack.redis?.url ?? "",
    RELAIS_NAMESPACE: options.namespace,
    RELAIS_IDENTITY: options.lease,
    RELAIS_LEASE_NAME: options.lease,
    RELAIS_TOKEN_SECRET: TOKEN,
    RELAIS_IMAGE: "registry.example.com/relais:bench",
    RELAIS_PUBLIC_BASE_URL: "https://engage.shop.example.com",
    RELAIS_INGEST_MIN_REPLICAS: "1",
    RELAIS_INGEST_MAX_REPLICAS: "1",
    RELAIS_STATUS_INTERVAL_MS: String(statusIntervalMs),
    RELAIS_LOG_LEVEL: "warn",
  };
}

/** The same process with no resources at all: leading, shared pools reconciled, then idle. */
async function idleBaseline(env: Record<string, string>): Promise<{ settledRssMiB: number; peakRssMiB: number }> {
  const operator = await spawnOperator(env);
  const sampler = new RssSampler(operator.pid);
  try {
    await waitForLeader(operator, { sharedPools: true });
    await sleep(settleMs);
    return { settledRssMiB: sampler.recentMean(Math.min(10_000, settleMs)), peakRssMiB: sampler.peak() };
  } finally {
    sampler.stop();
    await stopChild(operator.child);
  }
}

async function measure(stack: Stack, client: KubeClient, kubeconfig: string) {
  const prefix = uniqueName("bench");
  const operatorNamespace = `${prefix}-system`;
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `${prefix}-${i}`);
  await client.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: operatorNamespace } } });
  try {
    const baseline = await idleBaseline(
      operatorEnv(stack, kubeconfig, { namespace: operatorNamespace, lease: `${prefix}-idle` }),
    );
    process.stderr.write(`baseline RSS ${baseline.settledRssMiB} MiB; creating ${resources} resources\n`);

    await createNamespaces(client, namespaces);
    const planned = plan(namespaces);
    const createStarted = performance.now();
    await inWindows(planned, 25, (resource) => client.apply(pathOf(resource), resource.manifest, FIELD_MANAGER));
    const createSeconds = (performance.now() - createStarted) / 1000;

    const operator = await spawnOperator(
      operatorEnv(stack, kubeconfig, { namespace: operatorNamespace, lease: `${prefix}-measured` }),
    );
    const spawned = performance.now();
    const sampler = new RssSampler(operator.pid);
    try {
      await waitForLeader(operator, { sharedPools: false });
      const leading = performance.now();
      const allReconciled = await waitAllReconciled(client, new Set(namespaces), operator);
      const initialMetrics = (await metricsText(operator)) ?? "";
      const peakDuringSync = sampler.peak();
      const steady = { at: performance.now(), cpu: cpuSeconds(operator.pid) ?? 0, stop: new AbortController() };
      const queueDepth = sampleQueueDepth(operator, steady.stop.signal);
      await sleep(settleMs);
      const settled = sampler.recentMean(Math.min(10_000, settleMs));
      const latencies = await changeToReconcile(client, planned);
      const finalMetrics = (await metricsText(operator)) ?? "";
      const steadySeconds = (performance.now() - steady.at) / 1000;
      const steadyCpu = ((cpuSeconds(operator.pid) ?? 0) - steady.cpu) / steadySeconds;
      steady.stop.abort();
      const initialFigures = reconcileFigures(initialMetrics);
      const finalFigures = reconcileFigures(finalMetrics);
      const steadyReconciles = (finalFigures.overall?.count ?? 0) - (initialFigures.overall?.count ?? 0);
      return {
        createSeconds: round(createSeconds, 2),
        spawnToLeaderSeconds: round((leading - spawned) / 1000, 2),
        leaderToAllReconciledSeconds: round((allReconciled - leading) / 1000, 2),
        spawnToAllReconciledSeconds: round((allReconciled - spawned) / 1000, 2),
        rssMiB: {
          idleBaseline: baseline.settledRssMiB,
          peakDuringSync,
          peak: sampler.peak(),
          settled,
          perResourceKiB: round(((settled - baseline.settledRssMiB) * 1024) / resources),
        },
        reconcileInitialSync: initialFigures,
        reconcileWholeRun: finalFigures,
        afterSync: {
          seconds: round(steadySeconds),
          reconcilesPerSecond: round(steadyReconciles / steadySeconds),
          cpuCores: round(steadyCpu, 2),
          queueDepth: await queueDepth,
        },
        changeToReconcileMs: {
          count: latencies.length,
          p50: round(percentile(latencies, 50)),
          p99: round(percentile(latencies, 99)),
          max: round(Math.max(0, ...latencies)),
        },
      };
    } finally {
      sampler.stop();
      await stopChild(operator.child);
    }
  } finally {
    await inWindows([operatorNamespace, ...namespaces], 25, (name) => client.delete(`/api/v1/namespaces/${name}`));
  }
}

function printTable(results: Awaited<ReturnType<typeof measure>>): void {
  const rows: [string, string][] = [
    ["resources / namespaces", `${resources} / ${namespaceCount}`],
    ["spawn → leader", `${results.spawnToLeaderSeconds} s`],
    ["leader → all reconciled", `${results.leaderToAllReconciledSeconds} s`],
    ["RSS idle (0 resources)", `${results.rssMiB.idleBaseline} MiB`],
    ["RSS peak / settled", `${results.rssMiB.peak} / ${results.rssMiB.settled} MiB`],
    ["RSS per resource", `${results.rssMiB.perResourceKiB} KiB`],
  ];
  for (const [kind, figures] of Object.entries(results.reconcileInitialSync))
    rows.push([
      `reconcile ${kind} (initial sync)`,
      `n=${figures.count} p50 ${String(figures.p50Ms)} ms, p99 ${String(figures.p99Ms)} ms`,
    ]);
  const overall = results.reconcileWholeRun.overall;
  if (overall !== undefined)
    rows.push([
      "reconcile overall (whole run)",
      `n=${overall.count} p50 ${String(overall.p50Ms)} ms, p99 ${String(overall.p99Ms)} ms`,
    ]);
  const after = results.afterSync;
  rows.push([
    "after sync (settle + edits)",
    `${after.reconcilesPerSecond} reconciles/s, ${after.cpuCores} cores, queue depth mean ${after.queueDepth.mean} max ${after.queueDepth.max}`,
  ]);
  const change = results.changeToReconcileMs;
  rows.push(["change → reconciled", `n=${change.count} p50 ${change.p50} ms, p99 ${change.p99} ms`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  for (const [label, value] of rows) process.stdout.write(`${label.padEnd(width)}  ${value}\n`);
}

async function main(): Promise<void> {
  const stack = await startStack({ components: ["kube", "nats", "redis"] });
  try {
    const kubeconfig = stack.kube?.kubeconfig ?? "";
    const client = kubeClient(kubeconfig);
    await installRelaisCrds(client);
    const figures = await measure(stack, client, kubeconfig);
    const results = {
      command: commandLine(import.meta.filename),
      versions: { node: process.version, "@kubernetes/client-node": packageVersion("@kubernetes/client-node") },
      settings: { resources, namespaces: namespaceCount, edits, editSpacingMs, settleMs, statusIntervalMs },
      loadAverage: loadavg().map((load) => round(load, 2)),
      ...figures,
    };
    printTable(results);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    const dir = join(import.meta.dirname, "..", "..", "bench-results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "operator.json"), JSON.stringify(results, null, 2));
  } finally {
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
