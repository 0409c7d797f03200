// ResourceSource over the Kubernetes API: Relais resources from informers (list + watch into a
// store; reads come from the store once it has synced, as controller-runtime's cached client),
// status through the status subresource, finalizers by a merge patch that carries the
// resourceVersion read (a concurrent edit fails with 409 and the work queue retries), Events in
// events.k8s.io/v1, and Secrets read directly (never cached: their values stay out of memory).
import { randomBytes } from "node:crypto";
import { GROUP, VERSION, validateManifest } from "#crds";
import type { RelaisResource } from "#crds";
import { RelaisError } from "#runtime";
import type { Logger } from "#runtime";
import { Informer } from "../controller/informer.ts";
import { microTime, apiVersionOf, resourcePath } from "../controller/kube.ts";
import type { KubeClient, KubeObject, ResourceType } from "../controller/kube.ts";
import { keyString } from "../types.ts";
import type { EventRecord, ObjectKey, ResourceKind, ResourceSource, SecretObject, StatusUpdate } from "../types.ts";

export const resourceTypes: Record<ResourceKind, ResourceType> = {
  Sender: { group: GROUP, version: VERSION, plural: "senders", kind: "Sender", namespaced: true },
  Campaign: { group: GROUP, version: VERSION, plural: "campaigns", kind: "Campaign", namespaced: true },
  Automation: { group: GROUP, version: VERSION, plural: "automations", kind: "Automation", namespaced: true },
  SendPolicy: { group: GROUP, version: VERSION, plural: "sendpolicies", kind: "SendPolicy", namespaced: true },
};

export const secretType: ResourceType = {
  group: "",
  version: "v1",
  plural: "secrets",
  kind: "Secret",
  namespaced: true,
};
export const eventType: ResourceType = {
  group: "events.k8s.io",
  version: "v1",
  plural: "events",
  kind: "Event",
  namespaced: true,
};

/** The controller name Events are reported under. */
export const REPORTING_CONTROLLER = "relais.dev/operator";
/** events.k8s.io/v1 caps `note` at 1 kB. */
const NOTE_MAX = 1024;
/** A repeated Event within this window counts on the first one instead of creating another. */
const EVENT_SERIES_WINDOW_MS = 10 * 60 * 1000;
/** Distinct recent Events remembered for that (oldest forgotten first). */
const EVENT_SERIES_MAX = 4096;

export interface KubernetesSourceOptions {
  client: KubeClient;
  /** Namespaces to watch; every namespace when empty. */
  namespaces: readonly string[];
  /** This replica's name, reported on Events. */
  identity: string;
  log?: Logger;
}

/** A Relais resource the API server holds that does not match the operator's schema. */
export class ResourceInvalidError extends RelaisError {
  constructor(key: ObjectKey, path: string, message: string) {
    super("RELAIS_KUBE_RESOURCE_INVALID", `${key.kind} ${key.namespace}/${key.name}: ${path}: ${message}`);
  }
}

function toResource(key: ObjectKey, object: KubeObject): RelaisResource {
  const { managedFields: _managed, ...metadata } = (object.metadata ?? {}) as Record<string, unknown>;
  const result = validateManifest({ ...object, metadata });
  if (result.kind === "invalid") {
    const first = result.issues[0];
    throw new ResourceInvalidError(key, first?.path ?? "", first?.message ?? "invalid");
  }
  return result.resource;
}

export class KubernetesSource implements ResourceSource {
  readonly #options: KubernetesSourceOptions;
  readonly #informers = new Map<ResourceKind, Informer[]>();
  readonly #recentEvents = new Map<string, { name: string; firstMs: number; count: number }>();

  constructor(options: KubernetesSourceOptions) {
    this.#options = options;
  }

  #scopes(): (string | undefined)[] {
    return this.#options.namespaces.length === 0 ? [undefined] : [...this.#options.namespaces];
  }

  #path(key: ObjectKey, subresource?: string): string {
    return resourcePath(resourceTypes[key.kind], {
      namespace: key.namespace,
      name: key.name,
      ...(subresource !== undefined && { subresource }),
    });
  }

  #synced(kind: ResourceKind): Informer[] | undefined {
    const informers = this.#informers.get(kind);
    return informers?.every((informer) => informer.hasSynced) === true ? informers : undefined;
  }

  /** Every resource of `kind` that matches the schema (others are logged and skipped). */
  async list(kind: ResourceKind): Promise<RelaisResource[]> {
    const informers = this.#synced(kind);
    const objects =
      informers !== undefined
        ? informers.flatMap((informer) => informer.list())
        : (
            await Promise.all(
              this.#scopes().map((namespace) =>
                this.#options.client.list(
                  resourcePath(resourceTypes[kind], namespace === undefined ? {} : { namespace }),
                ),
              ),
            )
          ).flatMap((list) => list.items);
    // One resource the schema refuses must not hide the others: it is skipped here, and its own
    // reconcile (through get) reports the error.
    const resources: RelaisResource[] = [];
    for (const object of objects) {
      try {
        resources.push(
          toResource({ kind, namespace: object.metadata?.namespace ?? "", name: object.metadata?.name ?? "" }, object),
        );
      } catch (error) {
        this.#options.log?.warn({ err: error }, "resource skipped: does not match the schema");
      }
    }
    return resources;
  }

  async get(key: ObjectKey): Promise<RelaisResource | undefined> {
    const informers = this.#synced(key.kind);
    const object =
      informers !== undefined
        ? informers.map((informer) => informer.get(`${key.namespace}/${key.name}`)).find((found) => found !== undefined)
        : await this.#options.client.get(this.#path(key));
    return object === undefined ? undefined : toResource(key, object);
  }

  async watch(kind: ResourceKind, onChange: (key: ObjectKey) => void, signal: AbortSignal): Promise<void> {
    const informers = this.#scopes().map(
      (namespace) =>
        new Informer({
          client: this.#options.client,
          type: resourceTypes[kind],
          ...(namespace !== undefined && { namespace }),
          onEvent: ({ object }) => {
            onChange({ kind, namespace: object.metadata?.namespace ?? "", name: object.metadata?.name ?? "" });
          },
          ...(this.#options.log !== undefined && { log: this.#options.log }),
        }),
    );
    this.#informers.set(kind, informers);
    try {
      await Promise.all(informers.map((informer) => informer.run(signal)));
    } finally {
      if (this.#informers.get(kind) === informers) this.#informers.delete(kind);
    }
  }

  /** Resolves once every informer of `kind` holds a complete list (watch must be running). */
  async synced(kind: ResourceKind): Promise<void> {
    await Promise.all((this.#informers.get(kind) ?? []).map((informer) => informer.synced()));
  }

  async writeStatus(key: ObjectKey, status: StatusUpdate): Promise<void> {
    await this.#options.client.mergePatch(this.#path(key, "status"), { status }, "relais-operator");
  }

  async #setFinalizers(key: ObjectKey, change: (finalizers: string[]) => string[]): Promise<void> {
    const object = await this.#options.client.get(this.#path(key));
    if (object === undefined) return;
    const before = object.metadata?.finalizers ?? [];
    const after = change(before);
    if (after.length === before.length) return;
    await this.#options.client.mergePatch(this.#path(key), {
      metadata: { finalizers: after, resourceVersion: object.metadata?.resourceVersion },
    });
  }

  addFinalizer(key: ObjectKey, finalizer: string): Promise<void> {
    return this.#setFinalizers(key, (list) => (list.includes(finalizer) ? list : [...list, finalizer]));
  }

  removeFinalizer(key: ObjectKey, finalizer: string): Promise<void> {
    return this.#setFinalizers(key, (list) => list.filter((name) => name !== finalizer));
  }

  /**
   * Records an Event about `key`. The same event (type, reason, message) again within
   * EVENT_SERIES_WINDOW_MS becomes a count on the first one (events.k8s.io `series`), as client-go's
   * recorder does, so a reconcile retried with backoff does not flood the namespace.
   */
  async recordEvent(key: ObjectKey, event: EventRecord): Promise<void> {
    const now = Date.now();
    const note = event.message.slice(0, NOTE_MAX);
    const seriesKey = JSON.stringify([keyString(key), event.type, event.reason, note]);
    const previous = this.#recentEvents.get(seriesKey);
    if (previous !== undefined && now - previous.firstMs < EVENT_SERIES_WINDOW_MS) {
      previous.count++;
      const patched = await this.#options.client
        .mergePatch(resourcePath(eventType, { namespace: key.namespace, name: previous.name }), {
          series: { count: previous.count, lastObservedTime: microTime(now) },
        })
        .then(
          () => true,
          () => false,
        );
      if (patched) return;
    }
    const name = `${key.name}.${now.toString(16)}${randomBytes(4).toString("hex")}`;
    await this.#options.client.request({
      method: "POST",
      path: resourcePath(eventType, { namespace: key.namespace }),
      body: {
        apiVersion: apiVersionOf(eventType),
        kind: "Event",
        metadata: { name, namespace: key.namespace },
        eventTime: microTime(now),
        type: event.type,
        reason: event.reason,
        action: "Reconcile",
        note,
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.#options.identity.slice(0, 128),
        regarding: await this.#regarding(key),
      },
    });
    this.#rememberEvent(seriesKey, { name, firstMs: now, count: 1 });
  }

  #rememberEvent(seriesKey: string, entry: { name: string; firstMs: number; count: number }): void {
    this.#recentEvents.delete(seriesKey);
    this.#recentEvents.set(seriesKey, entry);
    // Bounded: the oldest entries go first (a Map iterates in insertion order).
    for (const oldest of this.#recentEvents.keys()) {
      if (this.#recentEvents.size <= EVENT_SERIES_MAX) break;
      this.#recentEvents.delete(oldest);
    }
  }

  async #regarding(key: ObjectKey): Promise<Record<string, string>> {
    const cached = this.#synced(key.kind)
      ?.map((informer) => informer.get(`${key.namespace}/${key.name}`))
      .find((found) => found !== undefined);
    const uid = cached?.metadata?.uid ?? (await this.#options.client.get(this.#path(key)))?.metadata?.uid;
    return {
      apiVersion: apiVersionOf(resourceTypes[key.kind]),
      kind: key.kind,
      namespace: key.namespace,
      name: key.name,
      ...(uid !== undefined && { uid }),
    };
  }

  async readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const secret = await this.#options.client.get<KubeObject & { data?: Record<string, string> }>(
      resourcePath(secretType, { namespace, name }),
    );
    if (secret === undefined) return undefined;
    return decodeSecretData(secret.data);
  }

  async listSecrets(label: string, value: string): Promise<SecretObject[]> {
    const lists = await Promise.all(
      this.#scopes().map((namespace) =>
        this.#options.client.list<KubeObject & { data?: Record<string, string> }>(
          resourcePath(secretType, namespace === undefined ? {} : { namespace }),
          { labelSelector: `${label}=${value}` },
        ),
      ),
    );
    return lists
      .flatMap((list) => list.items)
      .map((secret) => ({
        namespace: secret.metadata?.namespace ?? "",
        name: secret.metadata?.name ?? "",
        data: decodeSecretData(secret.data),
      }));
  }

  async watchSecrets(onChange: (namespace: string, name: string) => void, signal: AbortSignal): Promise<void> {
    const informers = this.#scopes().map(
      (namespace) =>
        new Informer({
          client: this.#options.client,
          type: secretType,
          ...(namespace !== undefined && { namespace }),
          // Only names are kept: a Secret's values never stay in the operator's memory (the list
          // does not even fetch them; a watch event's are dropped on arrival).
          metadataOnly: true,
          transform: (object) => ({ apiVersion: object.apiVersion, kind: object.kind, metadata: object.metadata }),
          onEvent: ({ object }) => {
            onChange(object.metadata?.namespace ?? "", object.metadata?.name ?? "");
          },
          ...(this.#options.log !== undefined && { log: this.#options.log }),
        }),
    );
    await Promise.all(informers.map((informer) => informer.run(signal)));
  }
}

/** A Secret's `data`, base64-decoded. */
function decodeSecretData(data: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(data ?? {}).map(([key, value]) => [key, Buffer.from(value, "base64").toString("utf8")]),
  );
}
