// What the operator's integration tests share: a KubeClient on the harness' control plane, the
// generated CRDs installed, a namespace per test, and a Sender manifest.
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { parse } from "yaml";
import { createKubeClient, resourcePath, resourceTypes } from "#operator";
import type { KubeClient, KubeObject } from "#operator";
import { defer, toolPath, uniqueName, waitUntil } from "#harness";

const exec = promisify(execFile);
const generatedDir = new URL("../../crds/generated/", import.meta.url);

export function kubeClient(kubeconfig: string): KubeClient {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  return createKubeClient(config);
}

const crdPath = (name: string): string => `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`;

/** Applies CRDs and resolves once the API server serves them. */
export async function installCrds(client: KubeClient, crds: KubeObject[]): Promise<void> {
  for (const crd of crds) await client.apply(crdPath(crd.metadata?.name ?? ""), crd, "relais-test");
  const reason = await waitUntil(
    async () => {
      for (const crd of crds) {
        const read = await client.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
          crdPath(crd.metadata?.name ?? ""),
        );
        if (read?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") !== true)
          return false;
      }
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  if (reason !== "") throw new Error(`CRDs not established: ${reason}`);
}

/** Minimal stand-ins for the Prometheus Operator's and KEDA's CRDs: the runner only needs the APIs served. */
export function openCrd(group: string, kind: string, plural: string, version: string): KubeObject {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: "Namespaced",
      names: { kind, plural, singular: kind.toLowerCase() },
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        },
      ],
    },
  };
}

/** Installs the Relais CRDs from crds/generated. */
export async function installRelaisCrds(client: KubeClient): Promise<void> {
  const files = (await readdir(generatedDir)).filter((file) => file.endsWith(".yaml"));
  const crds = await Promise.all(
    files.map(async (file) => parse(await readFile(new URL(file, generatedDir), "utf8")) as KubeObject),
  );
  await installCrds(client, crds);
}

/** A namespace for this test, deleted after it. */
export async function testNamespace(t: TestContext, client: KubeClient, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await client.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name } } });
  defer(t, () => client.delete(`/api/v1/namespaces/${name}`));
  return name;
}

export function senderManifest(namespace: string, name: string, fromAddress = "news@shop.example.com"): KubeObject {
  return {
    apiVersion: "relais.dev/v1alpha1",
    kind: "Sender",
    metadata: { name, namespace },
    spec: {
      channel: "email",
      email: {
        from: { address: fromAddress },
        transport: { smtp: { host: "smtp.example.com", authSecretRef: { name: "smtp-credentials" } } },
      },
      pool: { minReplicas: 1, maxReplicas: 5 },
    },
  };
}

/** Creates or updates a Sender by server-side apply as a user would (kubectl apply --server-side). */
export async function applySender(client: KubeClient, sender: KubeObject): Promise<KubeObject> {
  return client.apply(
    resourcePath(resourceTypes.Sender, {
      namespace: sender.metadata?.namespace ?? "",
      name: sender.metadata?.name ?? "",
    }),
    sender,
    "relais-test",
  );
}

export function senderPath(namespace: string, name: string): string {
  return resourcePath(resourceTypes.Sender, { namespace, name });
}

export interface Kubectl {
  /** Runs kubectl; rejects with its stderr when it fails. `input` goes to stdin. */
  (args: string[], input?: string): Promise<string>;
}

/** kubectl against `kubeconfig`, as a user runs it. */
export function kubectlFor(kubeconfig: string): Kubectl {
  return async (args, input) => {
    const child = exec(toolPath("kubectl"), args, { env: { ...process.env, KUBECONFIG: kubeconfig } });
    if (input !== undefined) child.child.stdin?.end(input);
    try {
      return (await child).stdout;
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? "";
      throw new Error(`kubectl ${args.join(" ")} failed: ${stderr}`, { cause: error });
    }
  };
}
