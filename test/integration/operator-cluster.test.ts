// `relais operator` as a cluster runs it: two replicas as processes, a kubeconfig to the real API
// server and controller-manager, NATS and Redis. The examples applied with kubectl become pools
// with owner references and config in the NATS KV; status reaches Ready (kubectl wait) once the
// pods are ready; a broken Secret and a CEL error show in status and recover; a Sender edit rolls
// its pool and a deletion removes it; one replica leads, a standby takes over when the
// leader is killed or stops mid-reconcile; a backlog scales a pool through the scale subresource.
// There is no kubelet: the test plays its part by marking pods Ready through their status.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { after, before, it } from "node:test";
import type { TestContext } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { parseAllDocuments } from "yaml";
import {
  CONFIG_HASH_ANNOTATION,
  deploymentType,
  pdbType,
  resourcePath,
  resourceTypes,
  scaledObjectType,
  serviceType,
} from "#operator";
import type { KubeClient, KubeObject, ResourceKind } from "#operator";
import { ConfigKeys, ConsumerNames, Streams, Subjects, connectNats, openConfigBucket } from "#runtime";
import { defer, generateDkimKey, spawnRelais, uniqueName, useStack, waitUntil } from "#harness";
import type { RelaisProcess } from "#harness";
import { installCrds, installRelaisCrds, kubeClient, kubectlFor, openCrd } from "./operator-fixtures.ts";
import type { Kubectl } from "./operator-fixtures.ts";

const stack = useStack(["kube", "nats", "redis"]);
const examplesDir = new URL("../../examples/", import.meta.url);
const LEASE = { durationMs: 3000, renewDeadlineMs: 2000, retryMs: 250 };
const TOKEN = "a-link-signing-token-of-at-least-32-characters";

let client: KubeClient;
let kubectl: Kubectl;
let nc: NatsConnection;
let kv: KV;
const opNamespace = uniqueName("relais-system");
const appNamespace = uniqueName("shop");

before(async () => {
  await stack.ready();
  client = kubeClient(stack.kubeconfig);
  kubectl = kubectlFor(stack.kubeconfig);
  await installRelaisCrds(client);
  await installCrds(client, [openCrd("keda.sh", "ScaledObject", "scaledobjects", "v1alpha1")]);
  nc = await connectNats(stack.natsUrl, "operator-cluster-test");
  kv = await openConfigBucket(nc);
});
after(() => nc.close());

function operatorEnv(identity: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    RELAIS_KUBECONFIG: stack.kubeconfig,
    RELAIS_NATS_URL: stack.natsUrl,
    RELAIS_REDIS_URL: stack.redisUrl,
    RELAIS_NAMESPACE: opNamespace,
    RELAIS_WATCH_NAMESPACES: appNamespace,
    RELAIS_IDENTITY: identity,
    RELAIS_LEASE_DURATION_MS: String(LEASE.durationMs),
    RELAIS_LEASE_RENEW_DEADLINE_MS: String(LEASE.renewDeadlineMs),
    RELAIS_LEASE_RETRY_PERIOD_MS: String(LEASE.retryMs),
    RELAIS_TOKEN_SECRET: TOKEN,
    RELAIS_IMAGE: "registry.example.com/relais:test",
    RELAIS_PUBLIC_BASE_URL: "https://engage.shop.example.com",
    RELAIS_INGEST_MIN_REPLICAS: "1",
    RELAIS_INGEST_MAX_REPLICAS: "1",
    // Fixed: the engage pool scales on the events consumer's lag, which on the NATS server the
    // test files share carries other files' events.
    RELAIS_ENGAGE_MIN_REPLICAS: "1",
    RELAIS_ENGAGE_MAX_REPLICAS: "1",
    // Longer than the test: status must follow the watches (resources, Secrets, owned Deployments).
    RELAIS_STATUS_INTERVAL_MS: "600000",
    RELAIS_AUTOSCALE_INTERVAL_MS: "500",
    RELAIS_STABILIZATION_WINDOW_MS: "3000",
    RELAIS_LOG_LEVEL: "warn",
    ...overrides,
  };
}

function startOperator(t: TestContext, identity: string): Promise<RelaisProcess> {
  return spawnRelais(t, { command: "operator", name: identity, env: operatorEnv(identity) });
}

/** relais_operator_leader as the replica serves it, or undefined while it does not answer. */
async function leaderGauge(operator: RelaisProcess): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${operator.baseUrl}/metrics`)).text();
    const match = /^relais_operator_leader (\d)$/m.exec(text);
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
  const started = Date.now();
  const reason = await waitUntil(check, { timeoutMs, intervalMs: 100 });
  assert.equal(reason, "", `${what}: ${reason}`);
  return Date.now() - started;
}

/** The one replica that reports leading while every other reports standing by. */
async function waitForOneLeader(operators: RelaisProcess[], timeoutMs = 20_000): Promise<RelaisProcess> {
  let leader: RelaisProcess | undefined;
  await waitFor(
    "exactly one leader",
    async () => {
      const gauges = await Promise.all(operators.map(leaderGauge));
      const leading = operators.filter((_, index) => gauges[index] === 1);
      leader = leading[0];
      return leading.length === 1 && gauges.every((gauge) => gauge === 0 || gauge === 1);
    },
    timeoutMs,
  );
  assert.ok(leader !== undefined);
  return leader;
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
type Resource = KubeObject & { status?: { conditions?: Condition[]; observedGeneration?: number } };

function resourceOf(kind: ResourceKind, name: string): Promise<Resource | undefined> {
  return client.get<Resource>(resourcePath(resourceTypes[kind], { namespace: appNamespace, name }));
}

async function readyOf(kind: ResourceKind, name: string): Promise<Condition | undefined> {
  return (await resourceOf(kind, name))?.status?.conditions?.find((condition) => condition.type === "Ready");
}

async function waitForReady(
  kind: ResourceKind,
  name: string,
  check: (ready: Condition) => boolean,
): Promise<Condition> {
  let last: Condition | undefined;
  await waitFor(`${kind} ${name} Ready condition`, async () => {
    last = await readyOf(kind, name);
    return last !== undefined && check(last);
  });
  assert.ok(last !== undefined);
  return last;
}

interface Deployment extends KubeObject {
  spec: {
    replicas: number;
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        containers: {
          image: string;
          args: string[];
          env: { name: string; value?: string; valueFrom?: unknown }[];
        }[];
        volumes: { name: string; secret?: { secretName: string } }[];
      };
    };
  };
}

function deployment(namespace: string, name: string): Promise<Deployment | undefined> {
  return client.get<Deployment>(resourcePath(deploymentType, { namespace, name }));
}

async function waitForDeployment(namespace: string, name: string): Promise<Deployment> {
  let found: Deployment | undefined;
  await waitFor(`Deployment ${namespace}/${name}`, async () => {
    found = await deployment(namespace, name);
    return found !== undefined;
  });
  assert.ok(found !== undefined);
  return found;
}

/** The kubelet's part: every pod of the pool reports Ready, so its Deployment counts ready replicas. */
async function markPodsReady(pool: string): Promise<void> {
  const path = `/api/v1/namespaces/${appNamespace}/pods`;
  await waitFor(`pods of ${pool}`, async () => {
    const pods = await client.list(path, { labelSelector: `relais.dev/pool=${pool}` });
    return pods.items.length > 0;
  });
  const pods = await client.list(path, { labelSelector: `relais.dev/pool=${pool}` });
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  for (const pod of pods.items) {
    await client.mergePatch(`${path}/${pod.metadata?.name ?? ""}/status`, {
      status: { phase: "Running", conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }] },
    });
  }
}

function secretManifest(name: string, data: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: appNamespace },
    stringData: data,
  });
}

const exampleSecrets = {
  "sparkpost-api": { apiKey: "sparkpost-key-value" },
  "smtp-credentials": { username: "relais", password: "smtp-password-value" },
  "dkim-shop": { privateKey: generateDkimKey().privateKeyPem },
  "vapid-keys": { publicKey: "vapid-public", privateKey: "vapid-private" },
};

async function examples(): Promise<{ kind: ResourceKind; name: string }[]> {
  const found: { kind: ResourceKind; name: string }[] = [];
  for (const file of (await readdir(examplesDir)).filter((name) => name.endsWith(".yaml"))) {
    for (const document of parseAllDocuments(await readFile(new URL(file, examplesDir), "utf8"))) {
      const manifest = document.toJS() as { kind: ResourceKind; metadata: { name: string } };
      found.push({ kind: manifest.kind, name: manifest.metadata.name });
    }
  }
  return found;
}

// One test whose steps share the operators and namespaces (started and removed with it).
it("relais operator in a cluster", async (t) => {
  const operators: RelaisProcess[] = [];
  let leader: RelaisProcess;
  await kubectl(["create", "namespace", opNamespace]);
  await kubectl(["create", "namespace", appNamespace]);
  defer(t, () => kubectl(["delete", "namespace", opNamespace, appNamespace, "--wait=false"]));

  await t.test("refuses to start without the link-signing token, naming the variable", async () => {
    const { RELAIS_TOKEN_SECRET: _token, ...env } = operatorEnv("operator-untokened");
    const refused = await spawnRelais(t, { command: "operator", name: "operator-untokened", env });
    assert.equal(await refused.exited, "with code 1");
    assert.match(refused.output(), /RELAIS_CONFIG_INVALID: RELAIS_TOKEN_SECRET: required by relais operator/);
  });

  await t.test("runs as two replicas: one leads, both answer /healthz, /readyz and /metrics", async () => {
    operators.push(await startOperator(t, "operator-a"), await startOperator(t, "operator-b"));
    leader = await waitForOneLeader(operators);
    for (const operator of operators) {
      for (const path of ["/healthz", "/readyz"]) {
        const response = await fetch(`${operator.baseUrl}${path}`);
        assert.equal(response.status, 200, `${operator.name} ${path}: ${operator.output()}`);
      }
    }
    const lease = await client.get<KubeObject & { spec: { holderIdentity: string } }>(
      `/apis/coordination.k8s.io/v1/namespaces/${opNamespace}/leases/relais-operator`,
    );
    assert.equal(lease?.spec.holderIdentity, leader.name);
    for (const [pool, replicas] of [
      ["ingest", 1],
      ["engage", 1],
    ] as const) {
      const shared = await waitForDeployment(opNamespace, pool);
      assert.equal(shared.spec.replicas, replicas, `${pool} sized from the configuration`);
      assert.deepEqual(shared.spec.template.spec.containers[0]?.args, [pool]);
    }
    await waitFor("the shared pools' reconcile counted", async () => {
      const metrics = await (await fetch(`${leader.baseUrl}/metrics`)).text();
      return /relais_operator_reconcile_total\{kind="SharedPools",result="success"\} [1-9]/.test(metrics);
    });
    const standby = await (await fetch(`${operators.find((o) => o !== leader)?.baseUrl ?? ""}/metrics`)).text();
    assert.match(
      standby,
      /relais_operator_reconcile_total\{kind="Sender",result="success"\} 0/,
      "a standby reconciles nothing",
    );
  });

  await t.test(
    "turns the examples applied with kubectl into pools with owner references and config in the KV",
    async () => {
      for (const [name, data] of Object.entries(exampleSecrets)) {
        await kubectl(["apply", "-f", "-"], secretManifest(name, data));
      }
      await kubectl(["apply", "-n", appNamespace, "-f", examplesDir.pathname]);
      const senders = { "marketing-email": 0, "transactional-email": 1, webpush: 1 };
      for (const [sender, replicas] of Object.entries(senders)) {
        const pool = `deliver-${sender}`;
        const found = await waitForDeployment(appNamespace, pool);
        const owner = await resourceOf("Sender", sender);
        assert.deepEqual(found.metadata?.ownerReferences, [
          {
            apiVersion: "relais.dev/v1alpha1",
            kind: "Sender",
            name: sender,
            uid: owner?.metadata?.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ]);
        assert.equal(found.spec.replicas, replicas, `${pool} starts at minReplicas`);
        const container = found.spec.template.spec.containers[0];
        assert.equal(container?.image, "registry.example.com/relais:test");
        assert.deepEqual(container.args, ["deliver"]);
        const env = Object.fromEntries(container.env.map((entry) => [entry.name, entry.value ?? entry.valueFrom]));
        assert.equal(env.RELAIS_SENDER, sender);
        assert.equal(env.RELAIS_NAMESPACE, appNamespace);
        assert.equal(env.RELAIS_NATS_URL, stack.natsUrl);
        assert.equal(env.RELAIS_PUBLIC_BASE_URL, "https://engage.shop.example.com");
        assert.deepEqual(env.RELAIS_TOKEN_SECRET, { secretKeyRef: { name: `${pool}-token`, key: "tokenSecret" } });
        assert.doesNotMatch(JSON.stringify(found), /smtp-password-value|sparkpost-key-value|vapid-private/);
        for (const type of [serviceType, pdbType]) {
          // Applied after the Deployment.
          await waitFor(`${type.kind} ${pool} owned by its Sender`, async () => {
            const object = await client.get(resourcePath(type, { namespace: appNamespace, name: pool }));
            return object?.metadata?.ownerReferences?.[0]?.uid === owner?.metadata?.uid;
          });
        }
      }
      for (const { kind, name } of await examples()) {
        await waitFor(`${kind} ${name} in the KV`, async () => {
          const entry = await kv.get(ConfigKeys.of(appNamespace, kind, name));
          const resource = await resourceOf(kind, name);
          return (
            entry !== null &&
            entry.length > 0 &&
            entry.json<{ generation: number }>().generation === resource?.metadata?.generation
          );
        });
      }
    },
  );

  await t.test("reports Ready through kubectl wait once the pool's pods are ready", async (step) => {
    const unavailable = await waitForReady("Sender", "transactional-email", (ready) => ready.status === "False");
    assert.equal(unavailable.reason, "PoolUnavailable");
    const markedAt = Date.now();
    await markPodsReady("deliver-transactional-email");
    await markPodsReady("deliver-webpush");
    await kubectl([
      "wait",
      "-n",
      appNamespace,
      "--for=condition=Ready",
      "--timeout=20s",
      "sender/transactional-email",
      "sender/webpush",
      "sender/marketing-email",
    ]);
    step.diagnostic(`Senders Ready ${Date.now() - markedAt} ms after their pods were marked ready`);
    await kubectl(["wait", "-n", appNamespace, "--for=condition=Ready", "--timeout=20s", "automation", "--all"]);
    const ready = await readyOf("Sender", "transactional-email");
    assert.equal(ready?.observedGeneration, (await resourceOf("Sender", "transactional-email"))?.metadata?.generation);
  });

  await t.test("shows a Secret missing a key as SecretMissing, naming it, and recovers when it is fixed", async () => {
    await kubectl(
      ["replace", "-f", "-"],
      secretManifest("smtp-credentials", { username: "relais" }), // password gone
    );
    const broken = await waitForReady("Sender", "transactional-email", (ready) => ready.status === "False");
    assert.equal(broken.reason, "SecretMissing");
    assert.equal(
      broken.message,
      'Secret "smtp-credentials" has no key "password" (spec.email.transport.smtp.authSecretRef), or it is empty',
    );
    assert.ok(await deployment(appNamespace, "deliver-transactional-email"), "the running pool keeps running");
    await kubectl(["replace", "-f", "-"], secretManifest("smtp-credentials", exampleSecrets["smtp-credentials"]));
    await waitForReady("Sender", "transactional-email", (ready) => ready.status === "True");
  });

  await t.test("shows a CEL error in an Automation as InvalidExpression with its position, and recovers", async () => {
    const patch = (filter: string): Promise<string> =>
      kubectl([
        "patch",
        "-n",
        appNamespace,
        "automation/abandoned-cart",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { trigger: { filter } } }),
      ]);
    await patch("event.attributes.itemCount >");
    const invalid = await waitForReady("Automation", "abandoned-cart", (ready) => ready.status === "False");
    assert.equal(invalid.reason, "InvalidExpression");
    assert.match(invalid.message, /^spec\.trigger\.filter line 1, column \d+: /);
    await patch("event.attributes.itemCount > 1");
    const fixed = await waitForReady("Automation", "abandoned-cart", (ready) => ready.status === "True");
    assert.equal(fixed.observedGeneration, (await resourceOf("Automation", "abandoned-cart"))?.metadata?.generation);
  });

  await t.test("rolls a Sender's pool when the Sender is edited", async () => {
    const hashOf = async (): Promise<string | undefined> =>
      (await deployment(appNamespace, "deliver-transactional-email"))?.spec.template.metadata.annotations[
        CONFIG_HASH_ANNOTATION
      ];
    const before = await hashOf();
    assert.ok(before !== undefined && before !== "");
    await kubectl([
      "patch",
      "-n",
      appNamespace,
      "sender/transactional-email",
      "--type=merge",
      "-p",
      '{"spec":{"rateLimit":{"perSecond":60}}}',
    ]);
    await waitFor("a new config hash on the pod template", async () => {
      const after = await hashOf();
      return after !== undefined && after !== before;
    });
  });

  await t.test("removes a deleted Sender's pool and its config", async () => {
    await kubectl(["delete", "-n", appNamespace, "sender/webpush", "--wait=false"]);
    await waitFor("deliver-webpush gone", async () => {
      const gone = await Promise.all(
        [deploymentType, serviceType, pdbType].map(
          async (type) =>
            (await client.get(resourcePath(type, { namespace: appNamespace, name: "deliver-webpush" }))) === undefined,
        ),
      );
      return gone.every(Boolean);
    });
    await waitFor("its config gone from the KV", async () => {
      const entry = await kv.get(ConfigKeys.of(appNamespace, "Sender", "webpush"));
      return entry === null || entry.length === 0;
    });
  });

  await t.test("fails over to the standby when the leader is killed, which then reconciles a change", async (step) => {
    const standby = operators.find((operator) => operator !== leader);
    assert.ok(standby !== undefined);
    const killedAt = Date.now();
    leader.child.kill("SIGKILL");
    await leader.exited;
    await waitForOneLeader([standby], LEASE.durationMs + 2 * LEASE.retryMs + 5000);
    const takeoverMs = Date.now() - killedAt;
    step.diagnostic(
      `takeover after SIGKILL: ${takeoverMs} ms (lease ${LEASE.durationMs} ms, retry ${LEASE.retryMs} ms)`,
    );
    leader = standby;
    await kubectl(
      ["apply", "-n", appNamespace, "-f", "-"],
      (await readFile(new URL("sender-webpush.yaml", examplesDir), "utf8")).replace("name: webpush", "name: webpush-2"),
    );
    await waitForDeployment(appNamespace, "deliver-webpush-2");
  });

  await t.test(
    "converges after the leader stops in the middle of reconciling: the Lease is released on SIGTERM",
    async (step) => {
      operators.push(await startOperator(t, "operator-c"));
      const names = Array.from({ length: 5 }, (_, index) => `burst-${index}`);
      const manifests = names.map((name) =>
        JSON.stringify({
          apiVersion: "relais.dev/v1alpha1",
          kind: "Sender",
          metadata: { name, namespace: appNamespace },
          spec: {
            channel: "webpush",
            webpush: { vapid: { subject: "mailto:push@shop.example.com", keysSecretRef: { name: "vapid-keys" } } },
            pool: { minReplicas: 0, maxReplicas: 2 },
          },
        }),
      );
      await kubectl(["apply", "-f", "-"], `{"apiVersion":"v1","kind":"List","items":[${manifests.join(",")}]}`);
      const stoppedAt = Date.now();
      leader.child.kill("SIGTERM");
      assert.equal(await leader.exited, "with code 0", leader.output());
      const successor = operators.at(-1);
      assert.ok(successor !== undefined);
      await waitForOneLeader([successor], LEASE.durationMs);
      step.diagnostic(`takeover after SIGTERM (Lease released): ${Date.now() - stoppedAt} ms`);
      leader = successor;
      for (const name of names) {
        await waitForDeployment(appNamespace, `deliver-${name}`);
        await waitForReady("Sender", name, (ready) => ready.status === "True");
      }
    },
  );

  await t.test("scales a Sender's Deployment to ceil(lag / target) through the scale subresource", async (step) => {
    const sender = "bulk";
    const target = 100;
    const backlog = 450;
    await kubectl(
      ["apply", "-n", appNamespace, "-f", "-"],
      JSON.stringify({
        apiVersion: "relais.dev/v1alpha1",
        kind: "Sender",
        metadata: { name: sender },
        spec: {
          channel: "webpush",
          webpush: { vapid: { subject: "mailto:push@shop.example.com", keysSecretRef: { name: "vapid-keys" } } },
          pool: { minReplicas: 0, maxReplicas: 10, targetLagPerReplica: target },
        },
      }),
    );
    await waitForReady("Sender", sender, (ready) => ready.status === "True");
    assert.equal((await deployment(appNamespace, `deliver-${sender}`))?.spec.replicas, 0, "idle at zero");
    const js = jetstream(nc);
    const subject = Subjects.send(appNamespace, sender);
    const started = Date.now();
    await Promise.all(
      Array.from({ length: backlog }, (_, index) => js.publish(subject, JSON.stringify({ id: `bulk-${index}` }))),
    );
    const publishMs = Date.now() - started;
    const expected = Math.ceil(backlog / target);
    const upMs = await waitFor(
      `deliver-${sender} at ${expected} replicas`,
      async () => (await deployment(appNamespace, `deliver-${sender}`))?.spec.replicas === expected,
      10_000,
    );
    const scale = await client.get<KubeObject & { spec: { replicas: number } }>(
      resourcePath(deploymentType, { namespace: appNamespace, name: `deliver-${sender}`, subresource: "scale" }),
    );
    assert.equal(scale?.spec.replicas, expected);
    const metrics = await (await fetch(`${leader.baseUrl}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`relais_pool_replicas\\{namespace="${appNamespace}",pool="deliver-${sender}"\\} ${expected}`),
    );
    await (await jetstreamManager(nc)).streams.purge(Streams.sends, { filter: subject });
    const downMs = await waitFor(
      `deliver-${sender} back to 0`,
      async () => (await deployment(appNamespace, `deliver-${sender}`))?.spec.replicas === 0,
      15_000,
    );
    step.diagnostic(
      `backlog ${backlog}, target ${target}: published in ${publishMs} ms, then 0 → ${expected} replicas in ${upMs} ms; ` +
        `back to 0 ${downMs} ms after the purge (stabilisation window 3000 ms)`,
    );
  });
});

it("leaves scaling to KEDA in keda mode: a ScaledObject per pool, lag read for status, replicas untouched", async (t) => {
  const system = uniqueName("relais-keda");
  const shop = uniqueName("shop-keda");
  await kubectl(["create", "namespace", system]);
  await kubectl(["create", "namespace", shop]);
  defer(t, () => kubectl(["delete", "namespace", system, shop, "--wait=false"]));
  const operator = await spawnRelais(t, {
    command: "operator",
    name: "operator-keda",
    env: operatorEnv("operator-keda", {
      RELAIS_NAMESPACE: system,
      RELAIS_WATCH_NAMESPACES: shop,
      RELAIS_AUTOSCALER: "keda",
      RELAIS_NATS_MONITORING_ENDPOINT: "nats.relais-system.svc:8222",
    }),
  });
  await kubectl(
    ["apply", "-n", shop, "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "vapid-keys" },
          stringData: exampleSecrets["vapid-keys"],
        },
        {
          apiVersion: "relais.dev/v1alpha1",
          kind: "Sender",
          metadata: { name: "push" },
          spec: {
            channel: "webpush",
            webpush: { vapid: { subject: "mailto:push@shop.example.com", keysSecretRef: { name: "vapid-keys" } } },
            pool: { minReplicas: 0, maxReplicas: 10, targetLagPerReplica: 100 },
          },
        },
      ],
    }),
  );
  type ScaledObject = KubeObject & {
    spec: { minReplicaCount: number; maxReplicaCount: number; triggers: { metadata: Record<string, string> }[] };
  };
  const scaledPath = resourcePath(scaledObjectType, { namespace: shop, name: "deliver-push" });
  await waitFor("the ScaledObject of deliver-push", async () => (await client.get(scaledPath)) !== undefined);
  const scaled = await client.get<ScaledObject>(scaledPath);
  assert.ok(scaled !== undefined);
  assert.equal(scaled.spec.maxReplicaCount, 10);
  const trigger = scaled.spec.triggers.at(0)?.metadata;
  assert.deepEqual(
    {
      consumer: trigger?.consumer,
      lagThreshold: trigger?.lagThreshold,
      endpoint: trigger?.natsServerMonitoringEndpoint,
    },
    { consumer: ConsumerNames.deliver(shop, "push"), lagThreshold: "100", endpoint: "nats.relais-system.svc:8222" },
  );
  assert.equal(
    await client.get(resourcePath(scaledObjectType, { namespace: system, name: "ingest" })),
    undefined,
    "ingest consumes nothing: no ScaledObject",
  );
  await waitForDeployment(shop, "deliver-push");
  const js = jetstream(nc);
  await Promise.all(
    Array.from({ length: 450 }, (_, index) => js.publish(Subjects.send(shop, "push"), JSON.stringify({ id: index }))),
  );
  // The autoscaler reports a pool's lag after deciding on it: once 450 shows, builtin would have scaled.
  await waitFor("the lag read for status", async () => {
    const metrics = await (await fetch(`${operator.baseUrl}/metrics`)).text();
    return metrics.includes(`relais_pool_lag_messages{namespace="${shop}",pool="deliver-push"} 450`);
  });
  assert.equal((await deployment(shop, "deliver-push"))?.spec.replicas, 0, "KEDA, not the operator, scales");
  await (await jetstreamManager(nc)).streams.purge(Streams.sends, { filter: Subjects.send(shop, "push") });
});
