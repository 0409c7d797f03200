// The Helm chart as an SRE meets it: it lints, renders objects the API's schemas accept (default
// values and every option on), refuses a wrong value with a message naming it, and installs the
// image the Dockerfile builds.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { renderCrds } from "#crds";
import { useStack } from "#harness";
import { kubeconformSchemas } from "./chart/schemas.ts";
import {
  allOptionsOn,
  chartDir,
  exec,
  parseManifests,
  renderChart,
  run,
  thirdPartyCrdDir,
  valuesFile,
} from "./chart/tools.ts";
import type { Manifest } from "./chart/tools.ts";

const stack = useStack(["kube"]);
const root = fileURLToPath(new URL("../../", import.meta.url));

async function helmWith(values: object, command: string[]): Promise<{ code: number; output: string }> {
  const file = await valuesFile(values);
  try {
    const result = await run("helm", [...command, "-f", file.path]);
    return { code: result.code, output: result.stdout + result.stderr };
  } finally {
    await file.remove();
  }
}

function ofKind(manifests: Manifest[], kind: string): Manifest[] {
  return manifests.filter((manifest) => manifest.kind === kind);
}

describe("the Helm chart", () => {
  it("passes helm lint --strict with the default values and with every option on", async () => {
    for (const values of [{}, allOptionsOn()]) {
      const result = await helmWith(values, ["lint", "--strict", chartDir]);
      assert.equal(result.code, 0, result.output);
      assert.match(result.output, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  describe("rendered objects", () => {
    let schemaArgs: string[] = [];
    let schemaDir = "";

    before(async () => {
      await stack.ready();
      schemaDir = await mkdtemp(join(tmpdir(), "relais-schemas-"));
      const thirdParty = await Promise.all(
        [
          "monitoring.coreos.com_servicemonitors.yaml",
          "monitoring.coreos.com_podmonitors.yaml",
          "monitoring.coreos.com_prometheusrules.yaml",
          "keda.sh_scaledobjects.yaml",
        ].map(async (file) => parseManifests(await readFile(join(thirdPartyCrdDir(), file), "utf8"))),
      );
      const ours = renderCrds().flatMap(({ content }) => parseManifests(content));
      schemaArgs = await kubeconformSchemas({
        dir: schemaDir,
        kubeconfig: stack.kubeconfig,
        crds: [...ours, ...thirdParty.flat()],
      });
    });

    const cases = [
      { name: "the default values", values: {} },
      { name: "every option on, watching two namespaces", values: allOptionsOn() },
      { name: "every option on, watching all namespaces", values: allOptionsOn([]) },
    ];
    for (const { name, values } of cases) {
      it(`are accepted by kubeconform -strict with ${name}`, async () => {
        const rendered = await renderChart(values);
        const result = await run(
          "kubeconform",
          ["-strict", "-summary", "-output", "json", "-kubernetes-version", "1.36.0", ...schemaArgs, "-"],
          { input: rendered },
        );
        const report = JSON.parse(result.stdout) as {
          resources: { kind: string; name: string; status: string; msg: string }[];
          summary: { valid: number; invalid: number; errors: number; skipped: number };
        };
        assert.equal(result.code, 0, JSON.stringify(report.resources, null, 2));
        assert.deepEqual(
          { ...report.summary, valid: 0 },
          { valid: 0, invalid: 0, errors: 0, skipped: 0 },
          JSON.stringify(report.resources),
        );
        assert.equal(report.summary.valid, parseManifests(rendered).length);
      });
    }

    it("reject a misspelt field: the schemas are strict", async () => {
      const rendered = (await renderChart({})).replace("serviceAccountName:", "serviceAccount_Name:");
      const result = await run("kubeconform", ["-strict", ...schemaArgs, "-"], { input: rendered });
      assert.notEqual(result.code, 0);
      assert.match(result.stdout, /serviceAccount_Name/);
    });

    it("cleans up its schemas", async () => {
      await rm(schemaDir, { recursive: true, force: true });
    });
  });

  describe("values.schema.json", () => {
    const wrong = [
      { values: { operator: { replicas: "two" } }, message: /at '\/operator\/replicas': got string, want integer/ },
      {
        values: { pools: { autoscaler: "hpa" } },
        message: /at '\/pools\/autoscaler': value must be one of 'builtin', 'keda'/,
      },
      { values: { operator: { replica: 2 } }, message: /at '\/operator': additional properties 'replica' not allowed/ },
      {
        values: { nats: { url: "http://nats:4222" } },
        message: /at '\/nats\/url': 'http:\/\/nats:4222' does not match pattern/,
      },
      { values: { operator: { watchNamespaces: ["Shop"] } }, message: /at '\/operator\/watchNamespaces\/0'/ },
      {
        values: { monitoring: { prometheusRule: { bounceRatio: 5 } } },
        message: /at '\/monitoring\/prometheusRule\/bounceRatio': maximum: got 5, want 1/,
      },
    ];
    for (const { values, message } of wrong) {
      it(`refuses ${JSON.stringify(values)} at helm template, naming the field`, async () => {
        const result = await helmWith(values, ["template", "relais", chartDir]);
        assert.notEqual(result.code, 0);
        assert.match(result.output, /values don't meet the specifications of the schema/);
        assert.match(result.output, message);
      });
    }

    it("refuses a pool whose maxReplicas is below its minReplicas, naming both", async () => {
      const result = await helmWith({ pools: { ingest: { minReplicas: 3, maxReplicas: 1 } } }, [
        "template",
        "relais",
        chartDir,
      ]);
      assert.notEqual(result.code, 0);
      assert.match(result.output, /pools\.ingest\.maxReplicas \(1\) must be at least pools\.ingest\.minReplicas \(3\)/);
    });

    it("refuses a leader renew deadline that is not shorter than the lease", async () => {
      const result = await helmWith(
        { operator: { leaderElection: { leaseDurationMs: 10000, renewDeadlineMs: 10000 } } },
        ["template", "relais", chartDir],
      );
      assert.notEqual(result.code, 0);
      assert.match(
        result.output,
        /operator\.leaderElection\.renewDeadlineMs must be less than operator\.leaderElection\.leaseDurationMs/,
      );
    });
  });

  describe("what it installs", () => {
    it("renders the CRDs crds/ defines, kept on uninstall unless crds.keep is false", async () => {
      const expected = renderCrds().map(({ content }) => parse(content) as Manifest);
      const rendered = ofKind(parseManifests(await renderChart({})), "CustomResourceDefinition");
      assert.deepEqual(
        rendered.map((crd) => crd.metadata.name).sort(),
        expected.map((crd) => crd.metadata.name).sort(),
      );
      for (const crd of rendered) {
        const source = expected.find((candidate) => candidate.metadata.name === crd.metadata.name);
        assert.deepEqual(crd.spec, source?.spec, `${crd.metadata.name} differs from crds/`);
        assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], "keep");
      }
      const notKept = ofKind(parseManifests(await renderChart({ crds: { keep: false } })), "CustomResourceDefinition");
      assert.equal(notKept.length, expected.length);
      for (const crd of notKept) assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], undefined);
      const none = ofKind(parseManifests(await renderChart({ crds: { install: false } })), "CustomResourceDefinition");
      assert.equal(none.length, 0);
    });

    it("grants namespaced Roles only, when it watches selected namespaces", async () => {
      const manifests = parseManifests(await renderChart(allOptionsOn(["shop", "blog"]), "relais"));
      assert.deepEqual(
        ofKind(manifests, "Role")
          .map((role) => `${role.metadata.namespace ?? ""}/${role.metadata.name}`)
          .sort(),
        ["blog/relais", "relais/relais", "relais/relais-leader", "shop/relais"],
      );
      const clusterRoles = ofKind(manifests, "ClusterRole");
      assert.deepEqual(
        clusterRoles.map((role) => role.metadata.name),
        ["relais-cluster"],
      );
      assert.deepEqual(
        (clusterRoles[0]?.rules as { resources: string[] }[]).flatMap((rule) => rule.resources),
        ["customresourcedefinitions"],
      );
    });

    it("ships its dashboards as ConfigMaps the Grafana sidecar finds, with the datasource as a variable", async () => {
      const maps = ofKind(parseManifests(await renderChart({})), "ConfigMap").filter(
        (map) => map.metadata.labels?.grafana_dashboard === "1",
      );
      assert.equal(maps.length, 3);
      for (const map of maps) {
        for (const json of Object.values(map.data as Record<string, string>)) {
          const board = JSON.parse(json) as {
            __inputs?: unknown;
            templating: { list: { type: string; name: string }[] };
            panels: { datasource?: { uid: string } }[];
          };
          assert.equal(board.__inputs, undefined);
          assert.ok(board.templating.list.some((variable) => variable.type === "datasource"));
          for (const panel of board.panels) if (panel.datasource) assert.equal(panel.datasource.uid, "${datasource}");
        }
      }
    });
  });

  describe("the image", () => {
    it("is the one the Dockerfile builds: name, version, user and entrypoint agree", async () => {
      const dockerfile = await readFile(join(root, "Dockerfile"), "utf8");
      const chart = parse(await readFile(join(chartDir, "Chart.yaml"), "utf8")) as {
        appVersion: string;
        version: string;
      };
      const values = parse(await readFile(join(chartDir, "values.yaml"), "utf8")) as {
        image: { repository: string; tag: string };
        podSecurityContext: { runAsUser: number; runAsGroup: number };
      };
      const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string };

      const source = /org\.opencontainers\.image\.source="https:\/\/github\.com\/([^"]+)"/.exec(dockerfile)?.[1];
      assert.equal(values.image.repository, `ghcr.io/${source ?? "(no source label)"}`);
      assert.equal(/^ARG VERSION=(.+)$/m.exec(dockerfile)?.[1], pkg.version);
      assert.equal(chart.appVersion, pkg.version);
      assert.equal(values.image.tag, "", "the tag defaults to appVersion");
      assert.match(dockerfile, /^FROM node:\$\{NODE_MAJOR\}-/m);
      assert.match(dockerfile, /^ARG NODE_MAJOR=24$/m);
      assert.match(dockerfile, /npm ci --omit=dev/);
      assert.equal(
        /^USER (.+)$/m.exec(dockerfile)?.[1],
        `${values.podSecurityContext.runAsUser}:${values.podSecurityContext.runAsGroup}`,
      );
      assert.match(dockerfile, /^ENTRYPOINT \["\/nodejs\/bin\/node", "bin\/relais\.ts"\]$/m);

      const deployment = ofKind(parseManifests(await renderChart({})), "Deployment")[0] as unknown as {
        spec: { template: { spec: { containers: { image: string; args: string[] }[] } } };
      };
      const container = deployment.spec.template.spec.containers[0];
      assert.equal(container?.image, `ghcr.io/${source ?? ""}:${pkg.version}`);
      assert.deepEqual(container.args, ["operator"]);
      const usage = await exec(process.execPath, [join(root, "bin/relais.ts"), "--help"]);
      assert.match(usage.stdout, /^ {2}operator /m, "bin/relais.ts knows the operator command");
    });

    it("starts every pool with only the files it copies and the production dependencies", async () => {
      const npm = await exec("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: root });
      const production = npm.stdout.split("\n").filter((path) => path.includes("/node_modules/"));
      const copied = ["bin/relais.ts", "crds", "runtime", "operator", "workers", "package.json"].map((path) =>
        join(root, path),
      );
      for (const command of ["ingest", "engage", "deliver"]) {
        const hook = join(root, "test/integration/chart/image-hook.ts");
        // No RELAIS_* of the test run; a port that is not a number stops every command once its
        // modules have loaded, before it connects anywhere.
        const result = await exec(process.execPath, ["--import", hook, "bin/relais.ts", command], {
          cwd: root,
          env: {
            PATH: process.env.PATH ?? "",
            RELAIS_PORT: "not-a-port",
            RELAIS_IMAGE_FILES: JSON.stringify([...copied, ...production]),
          },
        });
        assert.doesNotMatch(result.stderr, /RELAIS_IMAGE_MISSING_MODULE/, `${command}: ${result.stderr}`);
        assert.match(result.stderr, /RELAIS_CONFIG_INVALID: .*RELAIS_PORT/, `${command}: ${result.stderr}`);
      }
    });
  });
});
