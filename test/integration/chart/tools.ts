// What the chart's tests share: running helm, kubectl, kubeconform and promtool, rendering the
// chart into objects, and the values that turn every option on.
import { execFile } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { provisionedBinDir, toolPath } from "#harness";
import type { Tool } from "#harness";

export const chartDir = fileURLToPath(new URL("../../../charts/relais/", import.meta.url));

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  kubeconfig?: string;
  cwd?: string;
  /** The whole environment; by default the test's own (plus KUBECONFIG). */
  env?: Record<string, string>;
}

/** Runs a program to completion; a non-zero exit is a result, not a rejection. */
export function exec(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        env: options.env ?? {
          ...process.env,
          ...(options.kubeconfig !== undefined && { KUBECONFIG: options.kubeconfig }),
        },
        maxBuffer: 64 * 1024 * 1024,
        cwd: options.cwd,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** Runs a provisioned tool (helm, kubectl, kubeconform, promtool) to completion. */
export function run(tool: Tool, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return exec(toolPath(tool), args, options);
}

/** Runs a tool and returns its stdout; rejects with its stderr when it fails. */
export async function runOk(tool: Tool, args: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(tool, args, options);
  if (result.code !== 0) throw new Error(`${tool} ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A Kubernetes object as the chart renders it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export function parseManifests(yaml: string): Manifest[] {
  return parseAllDocuments(yaml)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

/** Writes values to a temporary file for `-f`; the caller removes the folder. */
export async function valuesFile(values: object): Promise<{ path: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "relais-values-"));
  const path = join(dir, "values.json");
  await writeFile(path, JSON.stringify(values));
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** `helm template` of the chart with `values`; rejects with helm's message when it fails. */
export async function renderChart(values: object, namespace = "relais"): Promise<string> {
  const file = await valuesFile(values);
  try {
    return await runOk("helm", ["template", "relais", chartDir, "--namespace", namespace, "-f", file.path]);
  } finally {
    await file.remove();
  }
}

/** Every option of the chart on: what `helm template` and kubeconform must accept too. */
export function allOptionsOn(watchNamespaces: string[] = ["shop", "blog"]): object {
  return {
    operator: { watchNamespaces, extraEnv: [{ name: "RELAIS_EXTRA", value: "1" }] },
    nats: { credentialsSecret: { name: "nats-creds" } },
    redis: { passwordSecret: { name: "redis-auth" } },
    tokenSecret: { name: "relais-token", key: "token" },
    imagePullSecrets: [{ name: "ghcr" }],
    pools: { autoscaler: "keda", publicBaseUrl: "https://links.example.com" },
    profiles: { retentionDays: { shop: 365 } },
    monitoring: {
      serviceMonitor: { enabled: true, labels: { release: "kube-prometheus-stack" } },
      podMonitor: { enabled: true },
      prometheusRule: { enabled: true },
      dashboards: { enabled: true, annotations: { grafana_folder: "Relais" } },
    },
    networkPolicy: {
      enabled: true,
      metricsFrom: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
      egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8" } }] }],
    },
  };
}

/**
 * The Prometheus Operator's and KEDA's CRDs, provisioned by `scripts/provision-tools.sh crds`
 * (tests need their schemas, and install them into the test API server).
 */
export function thirdPartyCrdDir(): string {
  const dir = join(dirname(provisionedBinDir()), "crds");
  if (!existsSync(join(dir, "monitoring.coreos.com_servicemonitors.yaml")))
    throw new Error(`third-party CRDs missing in ${dir}: run scripts/provision-tools.sh crds`);
  // A link to the versioned folder; kubectl -f does not follow a linked folder.
  return realpathSync(dir);
}
