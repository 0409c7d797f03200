// The operator's Kubernetes side run as the operator runs in a cluster: under a ServiceAccount bound
// to exactly the rules of operator/rbac.ts (the ones the Helm chart renders). With them it watches
// and reads Relais resources, writes status, finalizers and Events, reads and watches Secrets, runs
// pools and holds its Lease; anything outside them is refused.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import {
  DeploymentRunner,
  KubeApiError,
  KubernetesSource,
  LeaderElector,
  REPORTING_CONTROLLER,
  clusterRules,
  createKubeClient,
  namespaceRules,
  operatorConfigSchema,
} from "#operator";
import type { KubeClient, KubeObject, ObjectKey } from "#operator";
import { defer, uniqueName, useStack, waitUntil } from "#harness";
import {
  applySender,
  installRelaisCrds,
  kubeClient,
  senderManifest,
  senderPath,
  testNamespace,
} from "./operator-fixtures.ts";

const stack = useStack(["kube"]);
let admin: KubeClient;

before(async () => {
  await stack.ready();
  admin = kubeClient(stack.kubeconfig);
  await installRelaisCrds(admin);
});

const rbac = "/apis/rbac.authorization.k8s.io/v1";

/** A ServiceAccount in `operatorNamespace` bound to exactly the operator's rules; a client using its token. */
async function operatorClient(t: Parameters<typeof defer>[0], operatorNamespace: string): Promise<KubeClient> {
  const name = uniqueName("relais-operator");
  await admin.request({
    method: "POST",
    path: `/api/v1/namespaces/${operatorNamespace}/serviceaccounts`,
    body: { metadata: { name: "relais-operator" } },
  });
  const subjects = [{ kind: "ServiceAccount", name: "relais-operator", namespace: operatorNamespace }];
  await admin.request({
    method: "POST",
    path: `${rbac}/clusterroles`,
    body: { metadata: { name }, rules: clusterRules },
  });
  defer(t, () => admin.delete(`${rbac}/clusterroles/${name}`));
  await admin.request({
    method: "POST",
    path: `${rbac}/clusterrolebindings`,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
      subjects,
    },
  });
  defer(t, () => admin.delete(`${rbac}/clusterrolebindings/${name}`));
  await admin.request({
    method: "POST",
    path: `${rbac}/namespaces/${operatorNamespace}/roles`,
    body: { metadata: { name: "relais-operator" }, rules: namespaceRules },
  });
  await admin.request({
    method: "POST",
    path: `${rbac}/namespaces/${operatorNamespace}/rolebindings`,
    body: {
      metadata: { name: "relais-operator" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "relais-operator" },
      subjects,
    },
  });
  const tokenRequest = await admin.request<{ status: { token: string } }>({
    method: "POST",
    path: `/api/v1/namespaces/${operatorNamespace}/serviceaccounts/relais-operator/token`,
    body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } },
  });
  const cluster = admin.config.getCurrentCluster();
  assert.ok(cluster);
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: "test", server: cluster.server, caData: cluster.caData }],
    users: [{ name: "operator", token: tokenRequest.status.token }],
    contexts: [{ name: "operator", cluster: "test", user: "operator" }],
    currentContext: "operator",
  });
  return createKubeClient(config);
}

async function refused(attempt: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(attempt, (error: unknown) => {
    assert.ok(error instanceof KubeApiError, `${what}: ${String(error)}`);
    assert.equal(error.status, 403, `${what} was not refused: ${error.message}`);
    assert.equal(error.code, "RELAIS_KUBE_REQUEST_FAILED");
    return true;
  });
}

describe("the operator under exactly its RBAC rules", () => {
  it("does its work through the Kubernetes source, the pool runner and the Lease, and is refused anything else", async (t) => {
    const namespace = await testNamespace(t, admin, "rbac");
    const operatorNamespace = await testNamespace(t, admin, "rbac-op");
    const operator = await operatorClient(t, operatorNamespace);
    await applySender(admin, senderManifest(namespace, "mail"));
    await admin.request({
      method: "POST",
      path: `/api/v1/namespaces/${namespace}/secrets`,
      body: { metadata: { name: "smtp-credentials" }, stringData: { username: "relais", password: "s3cret-value" } },
    });

    const source = new KubernetesSource({ client: operator, namespaces: [namespace], identity: "operator-0" });
    const changed: string[] = [];
    const secretsChanged: string[] = [];
    const controller = new AbortController();
    const watching = Promise.all([
      source.watch("Sender", (key) => changed.push(key.name), controller.signal),
      source.watchSecrets((_ns, name) => secretsChanged.push(name), controller.signal),
    ]);
    defer(t, async () => {
      controller.abort();
      await watching;
    });
    await source.synced("Sender");
    const key: ObjectKey = { kind: "Sender", namespace, name: "mail" };

    // Read: list, get (with the schema's defaults), changes.
    assert.deepEqual(
      (await source.list("Sender")).map((r) => r.metadata.name),
      ["mail"],
    );
    const sender = await source.get(key);
    assert.equal(sender?.kind, "Sender");
    assert.equal(await source.get({ ...key, name: "absent" }), undefined);
    assert.ok(changed.includes("mail"));

    // Status, finalizers, Events.
    const condition = {
      type: "Ready" as const,
      status: "False" as const,
      reason: "SecretMissing" as const,
      message: "Secret smtp-credentials lacks key password",
      lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      observedGeneration: 1,
    };
    await source.writeStatus(key, { observedGeneration: 1, conditions: [condition] });
    await source.addFinalizer(key, "relais.dev/cleanup");
    await source.addFinalizer(key, "relais.dev/cleanup");
    let stored = await admin.get<KubeObject & { status?: { conditions?: unknown[] } }>(senderPath(namespace, "mail"));
    assert.deepEqual(stored?.status?.conditions, [condition]);
    assert.deepEqual(stored.metadata?.finalizers, ["relais.dev/cleanup"]);
    await source.removeFinalizer(key, "relais.dev/cleanup");
    stored = await admin.get(senderPath(namespace, "mail"));
    assert.equal(stored?.metadata?.finalizers, undefined);
    await source.recordEvent(key, { type: "Warning", reason: "SecretMissing", message: condition.message });
    await source.recordEvent(key, { type: "Warning", reason: "SecretMissing", message: condition.message });
    const events = await admin.list<
      KubeObject & {
        reason: string;
        note: string;
        reportingController: string;
        regarding: { name: string; uid?: string };
        series?: { count: number };
      }
    >(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`);
    const aboutMail = events.items.filter((e) => e.regarding.name === "mail");
    assert.equal(aboutMail.length, 1, "a repeated Event counts on the first");
    const [event] = aboutMail;
    assert.ok(event, "no Event recorded");
    assert.equal(event.series?.count, 2);
    assert.equal(event.reason, "SecretMissing");
    assert.equal(event.note, condition.message);
    assert.equal(event.reportingController, REPORTING_CONTROLLER);
    assert.equal(event.regarding.uid, stored?.metadata?.uid);

    // Secrets: read decoded; a change is seen.
    assert.deepEqual(await source.readSecret(namespace, "smtp-credentials"), {
      username: "relais",
      password: "s3cret-value",
    });
    assert.equal(await source.readSecret(namespace, "absent"), undefined);
    const secretNames = await operator.list(`/api/v1/namespaces/${namespace}/secrets`, {}, { metadataOnly: true });
    assert.ok(secretNames.items.some((item) => item.metadata?.name === "smtp-credentials"));
    assert.ok(
      secretNames.items.every((item) => !("data" in item)),
      "a metadata-only list carries no Secret values",
    );
    await admin.mergePatch(`/api/v1/namespaces/${namespace}/secrets/smtp-credentials`, {
      stringData: { password: "rotated" },
    });
    assert.equal(
      await waitUntil(async () => secretsChanged.filter((n) => n === "smtp-credentials").length >= 2, {
        timeoutMs: 5000,
        intervalMs: 20,
      }),
      "",
    );

    // Pools: apply, scale, state, delete.
    const runner = new DeploymentRunner({
      client: operator,
      config: operatorConfigSchema.parse({ tokenSecret: "a-link-signing-token-of-at-least-32-characters" }),
    });
    const pool = {
      kind: "deliver" as const,
      namespace,
      name: "deliver-mail",
      env: {},
      secretRefs: ["smtp-credentials"],
      owner: { kind: "Sender" as const, namespace, name: "mail" },
      minReplicas: 1,
      maxReplicas: 3,
      configHash: "h",
    };
    await runner.apply(pool);
    await runner.scale(pool, 2);
    assert.deepEqual(await runner.state(pool), { desiredReplicas: 2, readyReplicas: 0 });
    await runner.delete(pool);
    assert.equal(await runner.state(pool), undefined);

    // The Lease in the operator's namespace.
    const elector = new LeaderElector({
      client: operator,
      namespace: operatorNamespace,
      name: "relais-operator",
      identity: "operator-0",
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 200,
      lead: (signal) =>
        new Promise((resolve) => {
          signal.addEventListener("abort", () => {
            resolve();
          });
        }),
    });
    const electing = new AbortController();
    const electorRun = elector.run(electing.signal);
    assert.equal(await waitUntil(async () => elector.isLeader, { timeoutMs: 5000, intervalMs: 20 }), "");
    electing.abort();
    await electorRun;

    // Outside the rules: refused.
    await refused(operator.list(`/api/v1/namespaces/${namespace}/pods`), "listing pods");
    await refused(
      operator.request({
        method: "POST",
        path: `${rbac}/clusterroles`,
        body: { metadata: { name: uniqueName("x") }, rules: [] },
      }),
      "creating a ClusterRole",
    );
    await refused(operator.delete(`/api/v1/namespaces/${namespace}`), "deleting a namespace");
    await refused(
      operator.request({
        method: "POST",
        path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
        body: { metadata: { name: "elsewhere" }, spec: {} },
      }),
      "a Lease outside the operator's namespace",
    );
    await refused(operator.delete(senderPath(namespace, "mail")), "deleting a Sender");
  });
});
