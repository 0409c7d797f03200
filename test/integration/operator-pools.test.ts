// The Deployment pool runner against the real API server and controller-manager: a Sender's pool
// appears with owner references and a locked-down pod spec, drift is corrected, a Sender edit rolls
// the pool, objects labelled unmanaged are left alone, the scale subresource sets replicas, and
// deleting the Sender lets the garbage collector remove the pool.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  CONFIG_HASH_ANNOTATION,
  DeploymentRunner,
  Labels,
  SECRETS_DIR,
  deploymentType,
  operatorConfigSchema,
  pdbType,
  podMonitorType,
  resourcePath,
  scaledObjectType,
  serviceType,
  tokenSecretName,
} from "#operator";
import type { KubeClient, KubeObject, PoolSpec } from "#operator";
import { useStack, waitUntil } from "#harness";
import {
  applySender,
  installCrds,
  installRelaisCrds,
  kubeClient,
  openCrd,
  senderManifest,
  senderPath,
  testNamespace,
} from "./operator-fixtures.ts";

const stack = useStack(["kube"]);
let client: KubeClient;

before(async () => {
  await stack.ready();
  client = kubeClient(stack.kubeconfig);
  await installRelaisCrds(client);
  await installCrds(client, [
    openCrd("monitoring.coreos.com", "PodMonitor", "podmonitors", "v1"),
    openCrd("keda.sh", "ScaledObject", "scaledobjects", "v1alpha1"),
  ]);
});

const TOKEN = "a-link-signing-token-of-at-least-32-characters";
const config = operatorConfigSchema.parse({ image: "registry.example.com/relais:1.2.3", tokenSecret: TOKEN });

function runner(overrides: Partial<typeof config> = {}): DeploymentRunner {
  return new DeploymentRunner({ client, config: { ...config, ...overrides }, discoveryTtlMs: 0 });
}

function senderPool(namespace: string, sender: string, configHash = "h1"): PoolSpec {
  return {
    kind: "deliver",
    namespace,
    name: `deliver-${sender}`,
    env: { RELAIS_NAMESPACE: namespace, RELAIS_SENDER: sender, RELAIS_NATS_URL: "nats://nats.relais-system:4222" },
    secretRefs: ["smtp-credentials"],
    owner: { kind: "Sender", namespace, name: sender },
    minReplicas: 1,
    maxReplicas: 5,
    configHash,
    targetLagPerReplica: 250,
  };
}

interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
}

interface Deployment extends KubeObject {
  spec: {
    replicas: number;
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        securityContext: Record<string, unknown>;
        terminationGracePeriodSeconds: number;
        containers: Container[];
        volumes: { name: string; secret?: { secretName: string } }[];
      };
    };
  };
}

const path = (type: typeof deploymentType, namespace: string, name: string): string =>
  resourcePath(type, { namespace, name });

async function readDeployment(namespace: string, name: string): Promise<Deployment> {
  const deployment = await client.get<Deployment>(path(deploymentType, namespace, name));
  assert.ok(deployment, `no Deployment ${name}`);
  return deployment;
}

async function createSender(namespace: string, name: string): Promise<string> {
  const created = await applySender(client, senderManifest(namespace, name));
  return created.metadata?.uid ?? "";
}

describe("the Deployment pool runner", () => {
  it("creates a Sender's Deployment, Service, PodDisruptionBudget and PodMonitor, owned by the Sender", async (t) => {
    const namespace = await testNamespace(t, client, "pool");
    const uid = await createSender(namespace, "mail");
    await runner().apply(senderPool(namespace, "mail"));

    const deployment = await readDeployment(namespace, "deliver-mail");
    for (const [type, name] of [
      [deploymentType, "deliver-mail"],
      [serviceType, "deliver-mail"],
      [pdbType, "deliver-mail"],
      [podMonitorType, "deliver-mail"],
      [
        { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
        tokenSecretName("deliver-mail"),
      ],
    ] as const) {
      const object = await client.get(path(type, namespace, name));
      assert.ok(object, `${type.kind} ${name} missing`);
      assert.deepEqual(
        object.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
        [["Sender", "mail", uid, true]],
        `${type.kind} is owned by the Sender`,
      );
      assert.equal(object.metadata.labels?.[Labels.pool], "deliver-mail");
    }

    assert.equal(deployment.spec.replicas, 1);
    const pod = deployment.spec.template.spec;
    assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.terminationGracePeriodSeconds, 30);
    assert.equal(deployment.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION], "h1");
    const [container] = pod.containers;
    assert.ok(container);
    assert.equal(container.image, "registry.example.com/relais:1.2.3");
    assert.deepEqual(container.args, ["deliver"]);
    assert.deepEqual(container.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    });
    assert.deepEqual(container.livenessProbe.httpGet, { path: "/healthz", port: "ops", scheme: "HTTP" });
    assert.deepEqual(container.readinessProbe.httpGet, { path: "/readyz", port: "ops", scheme: "HTTP" });
    assert.deepEqual(
      container.ports.map((p) => [p.name, p.containerPort]),
      [["ops", 9090]],
    );
    assert.ok(container.resources.requests?.cpu !== undefined && container.resources.requests.memory !== undefined);
    const env = new Map(container.env.map((e) => [e.name, e]));
    assert.equal(env.get("RELAIS_SENDER")?.value, "mail");
    assert.equal(env.get("RELAIS_PORT")?.value, "9090");
    assert.equal(env.get("RELAIS_SECRETS_DIR")?.value, SECRETS_DIR);
    assert.deepEqual(env.get("RELAIS_TOKEN_SECRET")?.valueFrom, {
      secretKeyRef: { name: tokenSecretName("deliver-mail"), key: "tokenSecret" },
    });
    assert.ok(!JSON.stringify(deployment).includes(TOKEN), "the token's value is not in the Deployment");
    const secretVolume = pod.volumes.find((v) => v.secret?.secretName === "smtp-credentials");
    assert.ok(secretVolume, "the Sender's Secret is mounted");
    assert.ok(
      container.volumeMounts.some(
        (m) => m.name === secretVolume.name && m.mountPath === `${SECRETS_DIR}/smtp-credentials`,
      ),
    );

    const service = await client.get<KubeObject & { spec: { ports: { name: string; port: number }[] } }>(
      path(serviceType, namespace, "deliver-mail"),
    );
    assert.deepEqual(
      service?.spec.ports.map((p) => [p.name, p.port]),
      [["ops", 9090]],
    );
    const pdb = await client.get<KubeObject & { spec: { maxUnavailable: number } }>(
      path(pdbType, namespace, "deliver-mail"),
    );
    assert.equal(pdb?.spec.maxUnavailable, 1);
  });

  it("corrects drift and rolls the pool when the Sender's config changes", async (t) => {
    const namespace = await testNamespace(t, client, "drift");
    await createSender(namespace, "mail");
    const pool = runner();
    await pool.apply(senderPool(namespace, "mail"));
    await client.mergePatch(
      path(deploymentType, namespace, "deliver-mail"),
      { spec: { template: { spec: { containers: [{ name: "deliver", image: "evil.example.com/other:1" }] } } } },
      "someone-else",
    );
    await client.mergePatch(
      path(serviceType, namespace, "deliver-mail"),
      { spec: { type: "NodePort" } },
      "someone-else",
    );

    await pool.apply(senderPool(namespace, "mail", "h2"));
    const deployment = await readDeployment(namespace, "deliver-mail");
    assert.equal(deployment.spec.template.spec.containers[0]?.image, "registry.example.com/relais:1.2.3");
    assert.equal(deployment.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION], "h2");
    const service = await client.get<KubeObject & { spec: { type: string } }>(
      path(serviceType, namespace, "deliver-mail"),
    );
    assert.equal(service?.spec.type, "ClusterIP");
  });

  it("leaves objects labelled relais.dev/unmanaged alone", async (t) => {
    const namespace = await testNamespace(t, client, "unmanaged");
    await createSender(namespace, "mail");
    const pool = runner();
    await pool.apply(senderPool(namespace, "mail"));
    await client.mergePatch(path(serviceType, namespace, "deliver-mail"), {
      metadata: { labels: { [Labels.unmanaged]: "true" } },
      spec: { type: "NodePort" },
    });
    await client.mergePatch(path(deploymentType, namespace, "deliver-mail"), {
      metadata: { labels: { [Labels.unmanaged]: "true" } },
      spec: { replicas: 4 },
    });
    await pool.apply(senderPool(namespace, "mail", "h2"));
    await pool.scale({ namespace, name: "deliver-mail" }, 2);

    const service = await client.get<KubeObject & { spec: { type: string } }>(
      path(serviceType, namespace, "deliver-mail"),
    );
    assert.equal(service?.spec.type, "NodePort");
    const deployment = await readDeployment(namespace, "deliver-mail");
    assert.equal(deployment.spec.replicas, 4, "not scaled");
    assert.equal(deployment.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION], "h1", "not rolled");
  });

  it("scales through the scale subresource, and later applies keep the count within bounds", async (t) => {
    const namespace = await testNamespace(t, client, "scale");
    await createSender(namespace, "mail");
    const pool = runner();
    const ref = { namespace, name: "deliver-mail" };
    await pool.apply(senderPool(namespace, "mail"));
    await pool.scale(ref, 3);
    assert.equal((await readDeployment(namespace, "deliver-mail")).spec.replicas, 3);
    assert.deepEqual(await pool.state(ref), { desiredReplicas: 3, readyReplicas: 0 });
    await pool.apply(senderPool(namespace, "mail", "h2"));
    assert.equal(
      (await readDeployment(namespace, "deliver-mail")).spec.replicas,
      3,
      "an apply does not reset replicas",
    );
    await pool.apply({ ...senderPool(namespace, "mail", "h2"), maxReplicas: 2 });
    assert.equal((await readDeployment(namespace, "deliver-mail")).spec.replicas, 2);
    const managers = (await client.get(path(deploymentType, namespace, "deliver-mail")))?.metadata?.managedFields as {
      manager: string;
    }[];
    assert.ok(
      managers.every(
        (entry) => entry.manager === "relais-operator" || entry.manager.startsWith("kube-controller-manager"),
      ),
    );
    const reason = await waitUntil(
      async () => {
        const sets = await client.list<KubeObject & { spec: { replicas: number } }>(
          `/apis/apps/v1/namespaces/${namespace}/replicasets`,
        );
        return sets.items.some((set) => set.spec.replicas === 2);
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.equal(reason, "", "the controller-manager's ReplicaSet follows the scale");
    assert.equal(await pool.state({ namespace, name: "no-such-pool" }), undefined);
  });

  it("lets the garbage collector remove the pool when its Sender is deleted", async (t) => {
    const namespace = await testNamespace(t, client, "gc");
    await createSender(namespace, "mail");
    await runner().apply(senderPool(namespace, "mail"));
    await client.delete(senderPath(namespace, "mail"), { propagationPolicy: "Background" });
    const reason = await waitUntil(
      async () => {
        const left = await Promise.all(
          [deploymentType, serviceType, pdbType].map((type) => client.get(path(type, namespace, "deliver-mail"))),
        );
        return left.every((object) => object === undefined);
      },
      // The garbage collector learns new kinds (the Sender CRD, installed moments ago on a fresh
      // control plane) at its 30 s discovery resync; only then can it resolve the owner.
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    assert.equal(reason, "", "the pool outlived its Sender");
  });

  it("deletes a shared pool's objects on request", async (t) => {
    const namespace = await testNamespace(t, client, "shared");
    const pool = runner();
    const spec: PoolSpec = {
      kind: "engage",
      namespace,
      name: "engage",
      env: {},
      secretRefs: [],
      minReplicas: 2,
      maxReplicas: 4,
      configHash: "x",
    };
    await pool.apply(spec);
    const deployment = await readDeployment(namespace, "engage");
    assert.equal(deployment.metadata?.ownerReferences, undefined);
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(
      deployment.spec.template.spec.containers[0]?.env.some((e) => e.name === "RELAIS_TOKEN_SECRET"),
      false,
    );
    await pool.delete(spec);
    for (const type of [deploymentType, serviceType, pdbType, podMonitorType]) {
      assert.equal(await client.get(path(type, namespace, "engage")), undefined, `${type.kind} left behind`);
    }
  });

  it("emits a KEDA ScaledObject on the pool's consumer in keda mode", async (t) => {
    const namespace = await testNamespace(t, client, "keda");
    await createSender(namespace, "mail");
    const pool = runner({ autoscaler: "keda", natsMonitoringEndpoint: "nats.relais-system:8222" });
    await pool.apply(senderPool(namespace, "mail"));
    const scaled = await client.get<KubeObject & { spec: Record<string, unknown> }>(
      path(scaledObjectType, namespace, "deliver-mail"),
    );
    assert.ok(scaled, "no ScaledObject");
    assert.deepEqual(scaled.spec, {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "deliver-mail" },
      minReplicaCount: 1,
      maxReplicaCount: 5,
      triggers: [
        {
          type: "nats-jetstream",
          metadata: {
            natsServerMonitoringEndpoint: "nats.relais-system:8222",
            account: "$G",
            stream: "RELAIS_SENDS",
            consumer: `deliver_${namespace}_mail`,
            lagThreshold: "250",
            activationLagThreshold: "0",
          },
        },
      ],
    });
    await pool.apply({
      kind: "ingest",
      namespace,
      name: "ingest",
      env: {},
      secretRefs: [],
      minReplicas: 1,
      maxReplicas: 2,
      configHash: "x",
    });
    assert.equal(
      await client.get(path(scaledObjectType, namespace, "ingest")),
      undefined,
      "ingest consumes nothing to scale on",
    );
  });
});
