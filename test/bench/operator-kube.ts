// The operator's Kubernetes side at scale: N Senders across M namespaces (1,000 across 50 by
// default) on the harness' real kube-apiserver. One process runs the KubernetesSource's informers
// (all namespaces) and a WorkQueue whose reconcile does what every reconciler does against the API:
// read the resource (from the informer's store) and write its status (merge patch on /status).
//
// Figures: RSS and heap before the informers start (the baseline of the same run) and once every
// resource is synced and reconciled; time to the first reconcile of all N; reconcile duration
// p50/p99 (read + status write); and change-to-reconcile latency (an edit's apply returning until
// its key's reconcile starts) p50/p99 over a sample of edits made one at a time.
//
// Run: npm run bench:operator   (or: node test/bench/operator-kube.ts)
// Settings: BENCH_OPERATOR_RESOURCES (1000), BENCH_OPERATOR_NAMESPACES (50), BENCH_OPERATOR_EDITS
// (100), BENCH_OPERATOR_CONCURRENCY (work queue workers, 8); RELAIS_TEST_KUBECONFIG to use a running
// control plane instead of starting one. Figures go to stdout and bench-results/operator-kube.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { KubernetesSource, WorkQueue, createKubeClient, keyString, resourcePath, resourceTypes } from "#operator";
import type { ObjectKey } from "#operator";
import { startStack, uniqueName } from "#harness";
import type { Stack } from "#harness";
import { installRelaisCrds, senderManifest } from "../integration/operator-fixtures.ts";
import { commandLine, numberSetting, packageVersion } from "./support.ts";

const resources = numberSetting("BENCH_OPERATOR_RESOURCES", 1000, { min: 1, max: 100_000 });
const namespaceCount = numberSetting("BENCH_OPERATOR_NAMESPACES", 50, { min: 1, max: 1000 });
const edits = numberSetting("BENCH_OPERATOR_EDITS", 100, { min: 1, max: 10_000 });
const concurrency = numberSetting("BENCH_OPERATOR_CONCURRENCY", 8, { min: 1, max: 256 });

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

function memory(): { rssMiB: number; heapUsedMiB: number } {
  global.gc?.();
  const usage = process.memoryUsage();
  return { rssMiB: mib(usage.rss), heapUsedMiB: mib(usage.heapUsed) };
}

async function inWindows<T>(items: T[], size: number, work: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

async function main(): Promise<void> {
  let stack: Stack | undefined;
  let kubeconfig = process.env.RELAIS_TEST_KUBECONFIG;
  if (kubeconfig === undefined) {
    stack = await startStack({ components: ["kube"] });
    kubeconfig = stack.kube?.kubeconfig ?? "";
  }
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const client = createKubeClient(config);
  await installRelaisCrds(client);

  const prefix = uniqueName("bench");
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `${prefix}-${i}`);
  const keys: ObjectKey[] = Array.from({ length: resources }, (_, i) => ({
    kind: "Sender",
    namespace: namespaces[i % namespaceCount] ?? "",
    name: `sender-${i}`,
  }));
  try {
    await inWindows(namespaces, 25, (name) =>
      client.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name } } }),
    );
    const createStarted = performance.now();
    await inWindows(keys, 50, (key) =>
      client.apply(
        resourcePath(resourceTypes.Sender, key),
        senderManifest(key.namespace, key.name, "v0@shop.example.com"),
        "bench",
      ),
    );
    const createSeconds = (performance.now() - createStarted) / 1000;

    const baseline = memory();
    const source = new KubernetesSource({ client, namespaces: [], identity: "bench" });
    const durations: number[] = [];
    const firstSeen = new Map<string, number>();
    /** Keys an edit waits on: told when their reconcile starts. */
    const waiting = new Map<string, (startedAt: number) => void>();
    const queue = new WorkQueue({
      concurrency,
      handler: async (key) => {
        const started = performance.now();
        const pending = waiting.get(key);
        if (pending !== undefined) {
          waiting.delete(key);
          pending(started);
        }
        const [, namespace = "", name = ""] = key.split("/");
        const objectKey: ObjectKey = { kind: "Sender", namespace, name };
        const resource = await source.get(objectKey);
        const generation = Number(resource?.metadata.generation ?? 0);
        // Converged already: a level-triggered reconciler writes nothing (else its own status
        // write would trigger it again, forever).
        const converged = resource?.status?.observedGeneration === generation;
        if (resource !== undefined && !converged) {
          await source.writeStatus(objectKey, {
            observedGeneration: generation,
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "Reconciled",
                message: "",
                lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
                observedGeneration: generation,
              },
            ],
          });
        }
        durations.push(performance.now() - started);
        if (!firstSeen.has(key)) firstSeen.set(key, performance.now());
        return undefined;
      },
    });
    const controller = new AbortController();
    const syncStarted = performance.now();
    const running = Promise.all([
      source.watch(
        "Sender",
        (key) => {
          queue.add(keyString(key));
        },
        controller.signal,
      ),
      queue.run(controller.signal),
    ]);
    while (firstSeen.size < resources) await new Promise((resolve) => setTimeout(resolve, 50));
    const syncSeconds = (performance.now() - syncStarted) / 1000;
    // Let status writes' own watch events drain before measuring.
    while (queue.depth > 0) await new Promise((resolve) => setTimeout(resolve, 50));
    const synced = memory();
    const initialDurations = [...durations];

    const latencies: number[] = [];
    for (let i = 0; i < edits; i++) {
      const key = keys[(i * 7) % resources];
      if (key === undefined) break;
      const seen = new Promise<number>((resolve) => waiting.set(keyString(key), resolve));
      await client.apply(
        resourcePath(resourceTypes.Sender, key),
        senderManifest(key.namespace, key.name, `v${i + 1}@shop.example.com`),
        "bench",
      );
      const applied = performance.now();
      // The watch event can beat the apply's own response: that counts as 0.
      latencies.push(Math.max(0, (await seen) - applied));
    }
    controller.abort();
    await running;

    const results = {
      command: commandLine(import.meta.filename),
      versions: { node: process.version, "@kubernetes/client-node": packageVersion("@kubernetes/client-node") },
      settings: { resources, namespaces: namespaceCount, edits, concurrency },
      createSeconds: Math.round(createSeconds * 100) / 100,
      memory: { baseline, synced, perResourceKiB: Math.round(((synced.rssMiB - baseline.rssMiB) * 1024) / resources) },
      firstReconcileOfAllSeconds: Math.round(syncSeconds * 100) / 100,
      reconcileMs: {
        count: initialDurations.length,
        p50: Math.round(percentile(initialDurations, 50) * 10) / 10,
        p99: Math.round(percentile(initialDurations, 99) * 10) / 10,
      },
      changeToReconcileMs: {
        count: latencies.length,
        p50: Math.round(percentile(latencies, 50) * 10) / 10,
        p99: Math.round(percentile(latencies, 99) * 10) / 10,
      },
    };
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    const dir = join(import.meta.dirname, "..", "..", "bench-results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "operator-kube.json"), JSON.stringify(results, null, 2));
  } finally {
    await inWindows(namespaces, 25, (name) => client.delete(`/api/v1/namespaces/${name}`));
    await stack?.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
