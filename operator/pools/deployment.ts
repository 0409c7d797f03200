// PoolRunner over Deployments. Every object of a pool (Deployment, Service for metrics,
// PodDisruptionBudget, PodMonitor when the Prometheus Operator is installed, the Secret carrying
// the link-signing token, a KEDA ScaledObject in keda mode) is written by server-side apply under
// one field manager, so re-applying corrects any drift in the fields the operator sets and leaves
// fields others set alone. An object labelled relais.dev/unmanaged=true is never written, scaled or
// deleted. Owned pools carry an owner reference to their resource, so the controller-manager's
// garbage collector removes them with it.
import { createHash } from "node:crypto";
import { API_VERSION } from "#crds";
import type { Logger } from "#runtime";
import { Informer } from "../controller/informer.ts";
import { KubeApiError, apiVersionOf, resourcePath } from "../controller/kube.ts";
import type { KubeClient, KubeObject, ObjectMeta, OwnerReference, ResourceType } from "../controller/kube.ts";
import type { OperatorConfig, PoolResources } from "../config.ts";
import { resourceTypes, secretType } from "../sources/kubernetes.ts";
import type { ObjectKey, PoolKind, PoolRef, PoolRunner, PoolSpec, PoolState, ResourceKind } from "../types.ts";
import { scaledObject, scaledObjectType } from "./keda.ts";

export const FIELD_MANAGER = "relais-operator";
export const Labels = {
  name: "app.kubernetes.io/name",
  component: "app.kubernetes.io/component",
  instance: "app.kubernetes.io/instance",
  managedBy: "app.kubernetes.io/managed-by",
  pool: "relais.dev/pool",
  unmanaged: "relais.dev/unmanaged",
} as const;
export const CONFIG_HASH_ANNOTATION = "relais.dev/config-hash";
/** Where a pool's pods find the Secrets their Sender references: <dir>/<secret>/<key>. */
export const SECRETS_DIR = "/var/run/relais/secrets";
const TOKEN_KEY = "tokenSecret";
const NONROOT_UID = 65532;

/** Each pool's listening port: ingest serves its API and /metrics on one port. */
const poolPorts: Record<PoolKind, { name: string; port: number }> = {
  ingest: { name: "http", port: 8080 },
  engage: { name: "ops", port: 9091 },
  deliver: { name: "ops", port: 9090 },
};

const defaultResources: PoolResources = {
  requests: { cpu: "100m", memory: "128Mi" },
  limits: { memory: "512Mi" },
};

export const deploymentType: ResourceType = {
  group: "apps",
  version: "v1",
  plural: "deployments",
  kind: "Deployment",
  namespaced: true,
};
export const serviceType: ResourceType = {
  group: "",
  version: "v1",
  plural: "services",
  kind: "Service",
  namespaced: true,
};
export const pdbType: ResourceType = {
  group: "policy",
  version: "v1",
  plural: "poddisruptionbudgets",
  kind: "PodDisruptionBudget",
  namespaced: true,
};
export const podMonitorType: ResourceType = {
  group: "monitoring.coreos.com",
  version: "v1",
  plural: "podmonitors",
  kind: "PodMonitor",
  namespaced: true,
};

/**
 * A Kubernetes name for the pool: DNS-1035 labels are at most 63 characters (Services), so a long
 * pool name keeps its start and gains a hash of the whole.
 */
export function objectName(pool: string): string {
  if (pool.length <= 63) return pool;
  const hash = createHash("sha256").update(pool).digest("hex").slice(0, 8);
  return `${pool.slice(0, 54).replace(/-+$/, "")}-${hash}`;
}

export type DeploymentRunnerConfig = Pick<
  OperatorConfig,
  | "image"
  | "imagePullPolicy"
  | "poolResources"
  | "tokenSecret"
  | "terminationGracePeriodSeconds"
  | "autoscaler"
  | "natsMonitoringEndpoint"
>;

export interface DeploymentRunnerOptions {
  client: KubeClient;
  config: DeploymentRunnerConfig;
  /** Where `watch` looks for pools; every namespace when absent or empty. */
  namespaces?: readonly string[];
  /** How long the answer to "is the PodMonitor CRD installed?" is reused. */
  discoveryTtlMs?: number;
  log?: Logger;
}

function isUnmanaged(object: KubeObject | undefined): boolean {
  return object?.metadata?.labels?.[Labels.unmanaged] === "true";
}

export class DeploymentRunner implements PoolRunner {
  readonly #options: DeploymentRunnerOptions;
  #podMonitors: { present: boolean; at: number } | undefined;

  constructor(options: DeploymentRunnerOptions) {
    this.#options = options;
  }

  async apply(spec: PoolSpec): Promise<void> {
    const name = objectName(spec.name);
    const meta = { ...(await this.#metadata(spec)), name };
    const token = this.#tokenSecret(spec, meta);
    // The token Secret first: the pods reference it.
    if (token !== undefined) await this.#applyOne(secretType, token);
    await this.#applyDeployment(spec, meta);
    const objects: [ResourceType, KubeObject | undefined][] = [
      [serviceType, this.#service(spec, meta)],
      [pdbType, this.#pdb(meta)],
      [podMonitorType, (await this.#hasPodMonitors()) ? this.#podMonitor(spec, meta) : undefined],
      [
        scaledObjectType,
        this.#options.config.autoscaler === "keda"
          ? scaledObject(spec, {
              target: name,
              natsMonitoringEndpoint: this.#options.config.natsMonitoringEndpoint,
              metadata: meta,
            })
          : undefined,
      ],
    ];
    for (const [type, object] of objects) {
      if (object !== undefined) await this.#applyOne(type, object);
    }
  }

  /**
   * The apply carries the resourceVersion it read the replicas from, so a scale (the autoscaler,
   * KEDA's HPA) landing between the read and the apply is never undone: the apply conflicts
   * (409), and is done again from a fresh read.
   */
  async #applyDeployment(spec: PoolSpec, meta: ObjectMeta): Promise<void> {
    const path = resourcePath(deploymentType, { namespace: spec.namespace, name: meta.name ?? "" });
    for (let attempt = 1; ; attempt++) {
      const current = await this.#options.client.get(path);
      if (isUnmanaged(current)) {
        this.#options.log?.debug({ path }, "left alone: labelled unmanaged");
        return;
      }
      try {
        await this.#options.client.apply(path, this.#deployment(spec, meta, current), FIELD_MANAGER);
        return;
      } catch (error) {
        if (!(error instanceof KubeApiError && error.status === 409) || attempt >= 5) throw error;
      }
    }
  }

  /** Deployments this runner manages, by informer; tells their owner when replicas or readiness move. */
  async watch(onChange: (owner: ObjectKey) => void, signal: AbortSignal): Promise<void> {
    const seen = new Map<string, string>();
    const scopes = this.#options.namespaces?.length ? this.#options.namespaces : [undefined];
    const informers = scopes.map(
      (namespace) =>
        new Informer<PoolDeployment>({
          client: this.#options.client,
          type: deploymentType,
          ...(namespace !== undefined && { namespace }),
          labelSelector: `${Labels.managedBy}=${FIELD_MANAGER}`,
          // Only what the owner's status reads is kept (no managedFields, no pod template).
          transform: ({ metadata: { managedFields: _managed, ...metadata } = {}, spec, status }) => ({
            metadata,
            spec: { replicas: spec?.replicas },
            status: { readyReplicas: status?.readyReplicas },
          }),
          onEvent: ({ type, object }) => {
            const uid = object.metadata?.uid ?? "";
            const figures = `${object.spec?.replicas ?? 0}/${object.status?.readyReplicas ?? 0}`;
            if (type === "delete") seen.delete(uid);
            else if (seen.get(uid) === figures) return;
            else seen.set(uid, figures);
            const owner = ownerKey(object);
            if (owner !== undefined) onChange(owner);
          },
          ...(this.#options.log !== undefined && { log: this.#options.log }),
        }),
    );
    await Promise.all(informers.map((informer) => informer.run(signal)));
  }

  async scale(pool: PoolRef, replicas: number): Promise<void> {
    const path = resourcePath(deploymentType, { namespace: pool.namespace, name: objectName(pool.name) });
    const current = await this.#options.client.get(path);
    if (current === undefined || isUnmanaged(current)) return;
    await this.#options.client.mergePatch(`${path}/scale`, { spec: { replicas } }, FIELD_MANAGER);
  }

  async state(pool: PoolRef): Promise<PoolState | undefined> {
    const deployment = await this.#options.client.get<
      KubeObject & { spec?: { replicas?: number }; status?: { readyReplicas?: number } }
    >(resourcePath(deploymentType, { namespace: pool.namespace, name: objectName(pool.name) }));
    if (deployment === undefined) return undefined;
    return { desiredReplicas: deployment.spec?.replicas ?? 0, readyReplicas: deployment.status?.readyReplicas ?? 0 };
  }

  async delete(pool: PoolRef): Promise<void> {
    const name = objectName(pool.name);
    const types = [scaledObjectType, podMonitorType, pdbType, serviceType, deploymentType, secretType];
    for (const type of types) {
      const path = resourcePath(type, {
        namespace: pool.namespace,
        name: type === secretType ? tokenSecretName(name) : name,
      });
      const current = await this.#optionalGet(path);
      if (current === undefined || isUnmanaged(current) || current.metadata?.labels?.[Labels.pool] !== name) continue;
      await this.#options.client.delete(path, { propagationPolicy: "Background" });
    }
  }

  /** GET that treats an API the cluster does not serve (no KEDA, no Prometheus Operator) as absent. */
  async #optionalGet(path: string): Promise<KubeObject | undefined> {
    try {
      return await this.#options.client.get(path);
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async #applyOne(type: ResourceType, object: KubeObject): Promise<void> {
    const path = resourcePath(type, { namespace: object.metadata?.namespace ?? "", name: object.metadata?.name ?? "" });
    if (isUnmanaged(await this.#optionalGet(path))) {
      this.#options.log?.debug({ path }, "left alone: labelled unmanaged");
      return;
    }
    await this.#options.client.apply(path, object, FIELD_MANAGER);
  }

  async #hasPodMonitors(): Promise<boolean> {
    const ttl = this.#options.discoveryTtlMs ?? 60_000;
    const now = Date.now();
    if (this.#podMonitors !== undefined && now - this.#podMonitors.at < ttl) return this.#podMonitors.present;
    const list = await this.#optionalGet(`/apis/${apiVersionOf(podMonitorType)}`);
    const resources = (list as { resources?: { name: string }[] } | undefined)?.resources ?? [];
    const present = resources.some((resource) => resource.name === podMonitorType.plural);
    this.#podMonitors = { present, at: now };
    return present;
  }

  async #metadata(spec: PoolSpec): Promise<ObjectMeta> {
    const name = objectName(spec.name);
    const meta: ObjectMeta = {
      namespace: spec.namespace,
      labels: {
        [Labels.name]: "relais",
        [Labels.component]: spec.kind,
        [Labels.instance]: name,
        [Labels.managedBy]: FIELD_MANAGER,
        [Labels.pool]: name,
      },
    };
    if (spec.owner !== undefined) meta.ownerReferences = [await this.#ownerReference(spec)];
    return meta;
  }

  async #ownerReference(spec: PoolSpec): Promise<OwnerReference> {
    const owner = spec.owner;
    if (owner === undefined) throw new RangeError("no owner");
    if (owner.namespace !== spec.namespace) {
      throw new RangeError(`pool ${spec.namespace}/${spec.name}: an owner must be in the pool's namespace`);
    }
    const uid =
      owner.uid ??
      (
        await this.#options.client.get(
          resourcePath(resourceTypes[owner.kind], { namespace: owner.namespace, name: owner.name }),
        )
      )?.metadata?.uid;
    if (uid === undefined) {
      throw new KubeApiError({
        method: "GET",
        path: `${owner.kind} ${owner.namespace}/${owner.name}`,
        status: 404,
        reason: "NotFound",
        detail: "the pool's owner is gone",
      });
    }
    return {
      apiVersion: API_VERSION,
      kind: owner.kind,
      name: owner.name,
      uid,
      controller: true,
      blockOwnerDeletion: true,
    };
  }

  #selector(meta: ObjectMeta): Record<string, string> {
    const labels = meta.labels ?? {};
    return { [Labels.name]: labels[Labels.name] ?? "relais", [Labels.pool]: labels[Labels.pool] ?? "" };
  }

  #tokenSecret(spec: PoolSpec, meta: ObjectMeta): KubeObject | undefined {
    const token = this.#options.config.tokenSecret;
    if (token === undefined || spec.kind === "engage") return undefined;
    return {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { ...meta, name: tokenSecretName(meta.name ?? "") },
      type: "Opaque",
      data: { [TOKEN_KEY]: Buffer.from(token, "utf8").toString("base64") },
    };
  }

  #env(spec: PoolSpec, name: string): Record<string, unknown>[] {
    const port = poolPorts[spec.kind];
    const env: Record<string, unknown>[] = [
      { name: "RELAIS_HOST", value: "0.0.0.0" },
      { name: "RELAIS_PORT", value: String(port.port) },
      ...Object.entries(spec.env)
        .filter(([key]) => key !== "RELAIS_HOST" && key !== "RELAIS_PORT")
        .map(([key, value]) => ({ name: key, value })),
    ];
    if (spec.secretRefs.length > 0) env.push({ name: "RELAIS_SECRETS_DIR", value: SECRETS_DIR });
    if (this.#options.config.tokenSecret !== undefined && spec.kind !== "engage") {
      env.push({
        name: "RELAIS_TOKEN_SECRET",
        valueFrom: { secretKeyRef: { name: tokenSecretName(name), key: TOKEN_KEY } },
      });
    }
    return env;
  }

  #podSpec(spec: PoolSpec, name: string): Record<string, unknown> {
    const port = poolPorts[spec.kind];
    const probe = (path: string): Record<string, unknown> => ({
      httpGet: { path, port: port.name },
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
    const secretVolumes = spec.secretRefs.map((secret, index) => ({
      volume: { name: `secret-${index}`, secret: { secretName: secret } },
      mount: { name: `secret-${index}`, mountPath: `${SECRETS_DIR}/${secret}`, readOnly: true },
    }));
    return {
      securityContext: {
        runAsNonRoot: true,
        runAsUser: NONROOT_UID,
        runAsGroup: NONROOT_UID,
        fsGroup: NONROOT_UID,
        seccompProfile: { type: "RuntimeDefault" },
      },
      terminationGracePeriodSeconds: this.#options.config.terminationGracePeriodSeconds,
      enableServiceLinks: false,
      containers: [
        {
          name: spec.kind,
          image: this.#options.config.image,
          imagePullPolicy: this.#options.config.imagePullPolicy,
          args: [spec.kind],
          env: this.#env(spec, name),
          ports: [{ name: port.name, containerPort: port.port, protocol: "TCP" }],
          livenessProbe: probe("/healthz"),
          readinessProbe: probe("/readyz"),
          resources: this.#options.config.poolResources[spec.kind] ?? defaultResources,
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ["ALL"] },
          },
          volumeMounts: [{ name: "tmp", mountPath: "/tmp" }, ...secretVolumes.map((s) => s.mount)],
        },
      ],
      volumes: [{ name: "tmp", emptyDir: {} }, ...secretVolumes.map((s) => s.volume)],
    };
  }

  #deployment(spec: PoolSpec, meta: ObjectMeta, current: KubeObject | undefined): KubeObject {
    const name = meta.name ?? "";
    // Replicas belong to the autoscaler (scale subresource) once the Deployment exists: the apply
    // keeps the current count, brought within the pool's bounds.
    const currentReplicas = (current?.spec as { replicas?: number } | undefined)?.replicas ?? spec.minReplicas;
    const replicas = Math.min(spec.maxReplicas, Math.max(spec.minReplicas, currentReplicas));
    const selector = this.#selector(meta);
    const resourceVersion = current?.metadata?.resourceVersion;
    return {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { ...meta, ...(resourceVersion !== undefined && { resourceVersion }) },
      spec: {
        replicas,
        selector: { matchLabels: selector },
        strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: { labels: meta.labels, annotations: { [CONFIG_HASH_ANNOTATION]: spec.configHash } },
          spec: this.#podSpec(spec, name),
        },
      },
    };
  }

  #service(spec: PoolSpec, meta: ObjectMeta): KubeObject {
    const port = poolPorts[spec.kind];
    return {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta,
      spec: {
        type: "ClusterIP",
        selector: this.#selector(meta),
        ports: [{ name: port.name, port: port.port, targetPort: port.name, protocol: "TCP" }],
      },
    };
  }

  #pdb(meta: ObjectMeta): KubeObject {
    return {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: meta,
      spec: { maxUnavailable: 1, selector: { matchLabels: this.#selector(meta) } },
    };
  }

  #podMonitor(spec: PoolSpec, meta: ObjectMeta): KubeObject {
    return {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PodMonitor",
      metadata: meta,
      spec: {
        selector: { matchLabels: this.#selector(meta) },
        podMetricsEndpoints: [{ port: poolPorts[spec.kind].name, path: "/metrics" }],
      },
    };
  }
}

type PoolDeployment = KubeObject & { spec?: { replicas?: number }; status?: { readyReplicas?: number } };

/** The Relais resource a pool's object is controlled by, if any. */
function ownerKey(object: KubeObject): ObjectKey | undefined {
  const owner = object.metadata?.ownerReferences?.find((reference) => reference.controller === true);
  if (owner?.apiVersion !== API_VERSION || !(owner.kind in resourceTypes)) return undefined;
  return { kind: owner.kind as ResourceKind, namespace: object.metadata?.namespace ?? "", name: owner.name };
}

export function tokenSecretName(pool: string): string {
  return `${pool.slice(0, 240)}-token`;
}
