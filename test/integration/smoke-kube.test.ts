// The real control plane behaves as a cluster does: kubectl, CRDs with server-side apply, and
// garbage collection by kube-controller-manager.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { toolPath, uniqueName, useStack, waitUntil } from "#harness";

const exec = promisify(execFile);

const stack = useStack(["kube"]);

describe("the Kubernetes control plane of the harness", () => {
  const namespace = uniqueName("smoke");
  let config: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let namespaceCreated = false;
  let objects: k8s.KubernetesObjectApi;

  const kubectl = (...args: string[]) =>
    exec(toolPath("kubectl"), ["--namespace", namespace, ...args], {
      env: { ...process.env, KUBECONFIG: stack.kubeconfig },
    });

  before(async () => {
    config = new k8s.KubeConfig();
    config.loadFromFile(stack.kubeconfig);
    core = config.makeApiClient(k8s.CoreV1Api);
    objects = k8s.KubernetesObjectApi.makeApiClient(config);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    namespaceCreated = true;
  });
  after(async () => {
    if (namespaceCreated) await core.deleteNamespace({ name: namespace });
  });

  it("lets kubectl create a ConfigMap and read it back", async () => {
    await kubectl("create", "configmap", "greeting", "--from-literal=hello=world");
    const { stdout } = await kubectl("get", "configmap", "greeting", "-o", "jsonpath={.data.hello}");
    assert.equal(stdout, "world");
  });

  it("reports its version as the Kubernetes release it was built from", async () => {
    const { stdout } = await kubectl("version", "-o", "json");
    const version = JSON.parse(stdout) as { serverVersion: { gitVersion: string; major: string; minor: string } };
    assert.match(version.serverVersion.gitVersion, /^v1\.\d+\.\d+$/);
    assert.equal(
      `v${version.serverVersion.major}.${version.serverVersion.minor}`,
      version.serverVersion.gitVersion.replace(/\.\d+$/, ""),
    );
  });

  it("registers a CRD and accepts a custom resource by server-side apply", async (t) => {
    const group = `${namespace}.relais.dev`;
    const extensions = config.makeApiClient(k8s.ApiextensionsV1Api);
    const crdName = `widgets.${group}`;
    await extensions.createCustomResourceDefinition({
      body: {
        metadata: { name: crdName },
        spec: {
          group,
          scope: "Namespaced",
          names: { plural: "widgets", singular: "widget", kind: "Widget" },
          versions: [
            {
              name: "v1",
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: {
                  type: "object",
                  properties: {
                    spec: {
                      type: "object",
                      required: ["size"],
                      properties: {
                        size: { type: "integer", minimum: 1 },
                        color: { type: "string", _default: "blue" },
                      },
                    },
                  },
                },
              },
            },
          ],
        },
      },
    });
    t.after(() => extensions.deleteCustomResourceDefinition({ name: crdName }));
    const established = await waitUntil(
      async () => {
        const crd = await extensions.readCustomResourceDefinition({ name: crdName });
        return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") === true;
      },
      { timeoutMs: 20_000 },
    );
    assert.equal(established, "", `CRD not established: ${established}`);

    const widget = {
      apiVersion: `${group}/v1`,
      kind: "Widget",
      metadata: { name: "w1", namespace },
      spec: { size: 3 },
    };
    await objects.patch(widget, undefined, undefined, "relais-test", true, k8s.PatchStrategy.ServerSideApply);
    const read = await objects.read<k8s.KubernetesObject & { spec: { size: number; color: string } }>({
      apiVersion: widget.apiVersion,
      kind: widget.kind,
      metadata: { name: "w1", namespace },
    });
    assert.deepEqual(read.spec, { size: 3, color: "blue" });
    assert.ok(read.metadata?.managedFields?.some((f) => f.manager === "relais-test" && f.operation === "Apply"));

    await assert.rejects(
      objects.patch(
        { ...widget, spec: { size: 0 } },
        undefined,
        undefined,
        "relais-test",
        true,
        k8s.PatchStrategy.ServerSideApply,
      ),
      (error: unknown) =>
        error instanceof k8s.ApiException && error.code === 422 && String(error.body).includes("spec.size"),
    );
  });

  it("turns a Deployment into a ReplicaSet, as a cluster's controller-manager does", async () => {
    const apps = config.makeApiClient(k8s.AppsV1Api);
    const labels = { app: "web" };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 2,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: "web", image: "registry.invalid/web:1" }] } },
        },
      },
    });
    const reason = await waitUntil(
      async () => {
        const sets = await apps.listNamespacedReplicaSet({ namespace, labelSelector: "app=web" });
        return sets.items.some((set) => set.metadata?.ownerReferences?.[0]?.name === "web" && set.spec?.replicas === 2);
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.equal(reason, "", `no ReplicaSet for the Deployment: ${reason}`);
  });

  it("garbage-collects a dependent when its owner is deleted", async () => {
    const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "owner" } } });
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: "dependent",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata?.uid ?? "" }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace, name: "owner", propagationPolicy: "Background" });
    const gone = await waitUntil(
      async () => {
        try {
          await core.readNamespacedConfigMap({ namespace, name: "dependent" });
          return false;
        } catch (error) {
          return error instanceof k8s.ApiException && error.code === 404;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.equal(gone, "", `dependent still present: ${gone}`);
  });
});
