// `helm install` into the real kube-apiserver of the harness: every object is accepted, the CRDs
// are established, `helm upgrade` upgrades them, `helm uninstall` keeps them, a wrong value
// installs nothing, and the operator's ServiceAccount can do exactly what the operator needs
// (`kubectl auth can-i`). There is no kubelet: pods never run, which these tests do not need.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { uniqueName, useStack } from "#harness";
import { clusterRules, namespaceRules } from "#operator";
import type { PolicyRule } from "#operator";
import { allOptionsOn, chartDir, parseManifests, run, runOk, thirdPartyCrdDir, valuesFile } from "./chart/tools.ts";

const stack = useStack(["kube"]);

/** One permission: `verb resource[.group] [--subresource]`, as `kubectl auth can-i` takes it. */
interface Permission {
  verb: string;
  resource: string;
  subresource?: string;
}

function permissions(verbs: string[], resources: string[], subresource?: string): Permission[] {
  return resources.flatMap((resource) =>
    verbs.map((verb) => ({ verb, resource, ...(subresource !== undefined && { subresource }) })),
  );
}

/** Every Relais CRD the chart installs (another test may have applied them by hand). */
const kinds = ["senders.relais.dev", "campaigns.relais.dev", "automations.relais.dev", "sendpolicies.relais.dev"];

/** The operator's own rules (operator/rbac.ts) as `kubectl auth can-i` questions. */
function needsOf(rules: readonly PolicyRule[]): Permission[] {
  return rules.flatMap((rule) =>
    rule.apiGroups.flatMap((group) =>
      rule.resources.flatMap((path) => {
        const [resource = "", subresource] = path.split("/");
        return permissions(rule.verbs, [group === "" ? resource : `${resource}.${group}`], subresource);
      }),
    ),
  );
}

/** What the operator does in a namespace it watches (and in its own). */
const namespacedNeeds: Permission[] = needsOf(clusterRules);
const leaderNeeds = needsOf(namespaceRules);
const clusterNeeds = permissions(["get", "list", "watch"], ["customresourcedefinitions.apiextensions.k8s.io"]);

/** What it must never be able to do. */
const forbidden: Permission[] = [
  ...permissions(["create", "delete"], kinds),
  ...permissions(["update"], ["secrets"]),
  ...permissions(
    ["create", "delete"],
    ["pods", "configmaps", "serviceaccounts", "rolebindings.rbac.authorization.k8s.io"],
  ),
  ...permissions(["delete", "list"], ["leases.coordination.k8s.io"]),
  ...permissions(["create", "update", "delete"], ["customresourcedefinitions.apiextensions.k8s.io"]),
  ...permissions(["create"], ["namespaces", "clusterroles.rbac.authorization.k8s.io"]),
  ...permissions(["get"], ["nodes"]),
  ...permissions(["delete"], ["events"]),
];

async function kubectl(args: string[], input?: string): Promise<string> {
  return runOk("kubectl", args, { kubeconfig: stack.kubeconfig, ...(input !== undefined && { input }) });
}

async function helm(args: string[]): Promise<{ code: number; output: string }> {
  const result = await run("helm", args, { kubeconfig: stack.kubeconfig });
  return { code: result.code, output: result.stdout + result.stderr };
}

async function helmOk(args: string[]): Promise<string> {
  const result = await helm(args);
  assert.equal(result.code, 0, `helm ${args.join(" ")}: ${result.output}`);
  return result.output;
}

/** Installs or upgrades `release` from `chart` with `values`. */
/**
 * Set when another test had applied Relais' CRDs server-side: Helm's own server-side apply must
 * then take over their fields from that field manager (README, "adopting CRDs").
 */
let adoptedCrds = false;

async function helmUpgradeInstall(options: { release: string; namespace: string; chart: string; values: object }) {
  const file = await valuesFile(options.values);
  try {
    return await helmOk([
      "upgrade",
      "--install",
      options.release,
      options.chart,
      "-n",
      options.namespace,
      "-f",
      file.path,
      ...(adoptedCrds ? ["--force-conflicts"] : []),
    ]);
  } finally {
    await file.remove();
  }
}

/** `kubectl auth can-i` as the ServiceAccount, for each permission; returns those answered `yes`. */
async function allowed(serviceAccount: string, namespace: string, asked: Permission[]): Promise<Set<string>> {
  const answers = new Set<string>();
  const queue = [...asked];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const args = ["auth", "can-i", next.verb, next.resource, "-n", namespace, `--as=${serviceAccount}`];
      if (next.subresource !== undefined) args.push(`--subresource=${next.subresource}`);
      const result = await run("kubectl", args, { kubeconfig: stack.kubeconfig });
      if (result.stdout.trim() === "yes") answers.add(describePermission(next));
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return answers;
}

function describePermission(permission: Permission): string {
  return `${permission.verb} ${permission.resource}${permission.subresource ? `/${permission.subresource}` : ""}`;
}

async function assertAllowed(serviceAccount: string, namespace: string, expected: Permission[]): Promise<void> {
  const yes = await allowed(serviceAccount, namespace, expected);
  assert.deepEqual(
    expected.map(describePermission).filter((permission) => !yes.has(permission)),
    [],
    `${serviceAccount} lacks these in ${namespace}`,
  );
}

async function assertDenied(serviceAccount: string, namespace: string, asked: Permission[]): Promise<void> {
  assert.deepEqual(
    [...(await allowed(serviceAccount, namespace, asked))],
    [],
    `${serviceAccount} may do these in ${namespace}`,
  );
}

/**
 * A copy of the chart as an older release would have it: its Sender CRD has a printer column and
 * a field the current one dropped, so an upgrade that really upgrades CRDs removes both.
 */
async function olderChart(dir: string): Promise<string> {
  const chart = join(dir, "relais");
  await cp(chartDir, chart, { recursive: true });
  const path = join(chart, "files/crds/senders.relais.dev.yaml");
  const crd = parse(await readFile(path, "utf8")) as {
    spec: {
      versions: {
        additionalPrinterColumns: object[];
        schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, object> } } } };
      }[];
    };
  };
  for (const version of crd.spec.versions) {
    version.additionalPrinterColumns.push({ name: "Legacy", type: "string", jsonPath: ".spec.legacy" });
    version.schema.openAPIV3Schema.properties.spec.properties.legacy = {
      type: "string",
      description: "A field of an older release.",
    };
  }
  await writeFile(path, stringify(crd, { lineWidth: 0 }));
  const chartYaml = join(chart, "Chart.yaml");
  await writeFile(chartYaml, (await readFile(chartYaml, "utf8")).replace(/^version: .*$/m, "version: 0.0.1"));
  return chart;
}

async function senderCrd(): Promise<{ columns: string[]; fields: string[]; chartLabel: string }> {
  const crd = JSON.parse(await kubectl(["get", "crd", "senders.relais.dev", "-o", "json"])) as {
    metadata: { labels: Record<string, string> };
    spec: {
      versions: {
        additionalPrinterColumns?: { name: string }[];
        schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } };
      }[];
    };
  };
  const version = crd.spec.versions[0];
  return {
    columns: (version?.additionalPrinterColumns ?? []).map((column) => column.name),
    fields: Object.keys(version?.schema.openAPIV3Schema.properties.spec.properties ?? {}),
    chartLabel: crd.metadata.labels["helm.sh/chart"] ?? "",
  };
}

describe("the chart installed into a real API server", () => {
  const release = uniqueName("relais");
  const namespace = release;
  const watched = uniqueName("shop");
  const elsewhere = uniqueName("blog");
  const scoped = uniqueName("scoped");
  const serviceAccount = `system:serviceaccount:${namespace}:${release}`;
  let dir = "";

  before(async () => {
    await stack.ready();
    dir = await mkdtemp(join(tmpdir(), "relais-helm-"));
    for (const name of [namespace, watched, elsewhere, scoped]) await kubectl(["create", "namespace", name]);
    // The Prometheus Operator's and KEDA's CRDs, as on a cluster that runs them.
    await kubectl(["apply", "--server-side", "--field-manager=relais-test", "-f", thirdPartyCrdDir()]);
    await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "-f", thirdPartyCrdDir()]);
    // Another test may have applied Relais' CRDs by hand: hand them to this release, as README's
    // "adopting CRDs" says.
    for (const crd of kinds) {
      const exists = await run("kubectl", ["get", "crd", crd], { kubeconfig: stack.kubeconfig });
      if (exists.code !== 0) continue;
      await kubectl([
        "annotate",
        "--overwrite",
        "crd",
        crd,
        `meta.helm.sh/release-name=${release}`,
        `meta.helm.sh/release-namespace=${namespace}`,
      ]);
      await kubectl(["label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm"]);
      adoptedCrds = true;
    }
  });
  after(async () => {
    await helm(["uninstall", `${release}-scoped`, "-n", scoped]);
    await helm(["uninstall", release, "-n", namespace]);
    for (const name of [namespace, watched, elsewhere, scoped])
      await run("kubectl", ["delete", "namespace", name, "--wait=false"], { kubeconfig: stack.kubeconfig });
    await rm(dir, { recursive: true, force: true });
  });

  it("installs an older release with every option on: every object accepted, the CRDs established", async () => {
    await helmUpgradeInstall({ release, namespace, chart: await olderChart(dir), values: allOptionsOn([]) });
    const manifest = parseManifests(await helmOk(["get", "manifest", release, "-n", namespace]));
    assert.ok(manifest.length >= 20, `only ${manifest.length} objects`);
    // Every object the release holds exists in the API server.
    const listed = await kubectl(
      ["get", "-f", "-", "-o", "name"],
      manifest.map((object) => stringify(object)).join("---\n"),
    );
    assert.equal(listed.trim().split("\n").length, manifest.length);
    await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...kinds.map((crd) => `crd/${crd}`)]);
    const sender = await senderCrd();
    assert.ok(sender.columns.includes("Legacy"));
    assert.equal(sender.chartLabel, "relais-0.0.1");
  });

  it("upgrades the CRDs with helm upgrade", async () => {
    await helmUpgradeInstall({ release, namespace, chart: chartDir, values: allOptionsOn([]) });
    const sender = await senderCrd();
    assert.equal(sender.chartLabel, "relais-0.1.0");
    assert.ok(!sender.columns.includes("Legacy"), `columns: ${sender.columns.join(", ")}`);
    assert.ok(!sender.fields.includes("legacy"), `fields: ${sender.fields.join(", ")}`);
    assert.ok(sender.columns.includes("Ready"));
  });

  it("gives the operator's ServiceAccount what the operator needs, in every namespace, and nothing more", async () => {
    await assertAllowed(serviceAccount, watched, [...namespacedNeeds, ...clusterNeeds]);
    await assertAllowed(serviceAccount, namespace, [...namespacedNeeds, ...leaderNeeds]);
    await assertDenied(serviceAccount, watched, [...forbidden, ...leaderNeeds]);
    await assertDenied(serviceAccount, namespace, forbidden);
  });

  it("when it watches selected namespaces, grants nothing outside them and its own", async () => {
    const scopedAccount = `system:serviceaccount:${scoped}:${release}-scoped`;
    await helmUpgradeInstall({
      release: `${release}-scoped`,
      namespace: scoped,
      chart: chartDir,
      values: { crds: { install: false }, operator: { watchNamespaces: [watched] } },
    });
    await assertAllowed(scopedAccount, watched, [...namespacedNeeds, ...clusterNeeds]);
    await assertAllowed(scopedAccount, scoped, [...namespacedNeeds, ...leaderNeeds]);
    await assertDenied(scopedAccount, elsewhere, [...namespacedNeeds, ...leaderNeeds]);
    await assertDenied(scopedAccount, watched, leaderNeeds);
  });

  it("refuses a wrong value at helm install with the schema's message, installing nothing", async () => {
    const bad = `${release}-bad`;
    const result = await helm(["install", bad, chartDir, "-n", namespace, "--set", "operator.replicas=two"]);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /at '\/operator\/replicas': got string, want integer/);
    const status = await helm(["status", bad, "-n", namespace]);
    assert.match(status.output, /release: not found/);
  });

  it("keeps the CRDs when uninstalled with crds.keep", async () => {
    await helmOk(["uninstall", release, "-n", namespace]);
    for (const crd of kinds) await kubectl(["get", "crd", crd]);
    const deployments = await kubectl(["get", "deployments", "-n", namespace, "-o", "name"]);
    assert.equal(deployments.trim(), "");
  });
});
