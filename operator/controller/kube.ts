// A small JSON client for the Kubernetes API over @kubernetes/client-node's KubeConfig (its
// authentication: client certificates, tokens, in-cluster) and undici, the HTTP stack client-node
// itself uses. One client serves every resource by path, so core objects, apps, policy, leases and
// Relais' own kinds all read, patch and fail the same way. client-node's generated APIs are not
// used for this: their serializer drops list metadata it does not model (`continue` of a custom
// resource list) and needs a middleware per patch content type.
import type { KubeConfig } from "@kubernetes/client-node";
import { HttpMethod, RequestContext } from "@kubernetes/client-node";
import { fetch } from "undici";
import type { Dispatcher } from "undici";
import { RelaisError } from "#runtime";

/** A resource type as the API serves it. `group` "" is the core group. */
export interface ResourceType {
  group: string;
  version: string;
  /** The resource's plural name in paths: "deployments". */
  plural: string;
  kind: string;
  namespaced: boolean;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  ownerReferences?: OwnerReference[];
  managedFields?: unknown[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Any object the API serves: apiVersion, kind, metadata, and the rest. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [field: string]: unknown;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

/** The API server's MicroTime (Lease and Event times): RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

export function apiVersionOf(type: Pick<ResourceType, "group" | "version">): string {
  return type.group === "" ? type.version : `${type.group}/${type.version}`;
}

/** The path of a collection, an object, or an object's subresource. Names are URL-encoded. */
export function resourcePath(
  type: ResourceType,
  target: { namespace?: string; name?: string; subresource?: string } = {},
): string {
  const base = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const scope =
    type.namespaced && target.namespace !== undefined ? `/namespaces/${encodeURIComponent(target.namespace)}` : "";
  const name = target.name === undefined ? "" : `/${encodeURIComponent(target.name)}`;
  const sub = target.subresource === undefined ? "" : `/${target.subresource}`;
  return `${base}${scope}/${type.plural}${name}${sub}`;
}

/** A request the API server refused or could not serve. `status` 0 means no HTTP answer at all. */
export class KubeApiError extends RelaisError {
  readonly status: number;
  /** The API server's Status reason: NotFound, Conflict, Forbidden, Expired, ... */
  readonly reason: string;

  constructor(options: {
    method: string;
    path: string;
    status: number;
    reason: string;
    detail: string;
    cause?: unknown;
  }) {
    super(
      "RELAIS_KUBE_REQUEST_FAILED",
      `${options.method} ${options.path}: ${options.status === 0 ? "no answer" : `HTTP ${options.status}`} ${options.reason}${options.detail === "" ? "" : `: ${options.detail}`}`,
      { cause: options.cause },
    );
    this.status = options.status;
    this.reason = options.reason;
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof KubeApiError && error.status === 404;
}

export const ContentTypes = {
  json: "application/json",
  mergePatch: "application/merge-patch+json",
  jsonPatch: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

export interface KubeRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** The Accept header; JSON by default. */
  accept?: string;
}

/** Lists that carry each item's metadata only (no spec, no Secret data). */
export const METADATA_ONLY_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

export interface KubeClient {
  readonly config: KubeConfig;
  /** Resolves the decoded JSON answer of a 2xx; rejects with KubeApiError otherwise. */
  request<T>(request: KubeRequest): Promise<T>;
  /** The object, or undefined on 404. */
  get<T extends KubeObject>(path: string): Promise<T | undefined>;
  /** Every item of a collection, following `continue` pages; the list's resourceVersion. */
  list<T extends KubeObject>(
    path: string,
    query?: Record<string, string | undefined>,
    options?: { metadataOnly?: boolean },
  ): Promise<KubeList<T>>;
  /** Server-side apply of `object` as `fieldManager`, forcing ownership of the fields it sets. */
  apply<T extends KubeObject>(path: string, object: KubeObject, fieldManager: string): Promise<T>;
  mergePatch<T extends KubeObject>(path: string, patch: unknown, fieldManager?: string): Promise<T>;
  /** Deletes; resolves false when it was already gone. */
  delete(path: string, query?: Record<string, string | undefined>): Promise<boolean>;
}

const PAGE_SIZE = 500;

/** The API server's Status body, as much of it as an error message may carry (never a whole object). */
function statusDetail(body: string): { reason: string; message: string } {
  try {
    const status = JSON.parse(body) as { reason?: string; message?: string };
    return { reason: status.reason ?? "", message: (status.message ?? "").slice(0, 500) };
  } catch {
    return { reason: "", message: "" };
  }
}

export function createKubeClient(config: KubeConfig): KubeClient {
  const cluster = config.getCurrentCluster();
  if (cluster === null) throw new RelaisError("RELAIS_CONFIG_INVALID", "kubeconfig: no current cluster");
  const server = cluster.server;
  // client-node builds a new connection pool per request; one kept for the client's life lets
  // requests share keep-alive connections.
  let dispatcher: Dispatcher | undefined;

  async function request<T>(req: KubeRequest): Promise<T> {
    const url = new URL(server + req.path);
    for (const [key, value] of Object.entries(req.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const context = new RequestContext(url.toString(), HttpMethod[req.method]);
    await config.applySecurityAuthentication(context);
    dispatcher ??= context.getDispatcher();
    const headers: Record<string, string> = { ...context.getHeaders(), accept: req.accept ?? "application/json" };
    if (req.body !== undefined) headers["content-type"] = req.contentType ?? ContentTypes.json;
    let response;
    try {
      response = await fetch(url, {
        method: req.method,
        headers,
        ...(req.body !== undefined && { body: JSON.stringify(req.body) }),
        ...(dispatcher !== undefined && { dispatcher }),
      });
    } catch (error) {
      throw new KubeApiError({
        method: req.method,
        path: req.path,
        status: 0,
        reason: "Unreachable",
        detail: "",
        cause: error,
      });
    }
    const text = await response.text();
    if (response.status < 200 || response.status > 299) {
      const detail = statusDetail(text);
      throw new KubeApiError({
        method: req.method,
        path: req.path,
        status: response.status,
        reason: detail.reason || response.statusText,
        detail: detail.message,
      });
    }
    return (text === "" ? {} : JSON.parse(text)) as T;
  }

  return {
    config,
    request,
    async get<T extends KubeObject>(path: string) {
      try {
        return await request<T>({ method: "GET", path });
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async list<T extends KubeObject>(
      path: string,
      query: Record<string, string | undefined> = {},
      options: { metadataOnly?: boolean } = {},
    ): Promise<KubeList<T>> {
      const items: T[] = [];
      let next: string | undefined;
      let resourceVersion: string | undefined;
      do {
        // An empty PartialObjectMetadataList comes with `items: null`.
        const page = await request<Omit<KubeList<T>, "items"> & { items: T[] | null }>({
          method: "GET",
          path,
          query: { ...query, limit: PAGE_SIZE, continue: next },
          ...(options.metadataOnly === true && { accept: METADATA_ONLY_LIST }),
        });
        items.push(...(page.items ?? []));
        resourceVersion = page.metadata.resourceVersion;
        next = page.metadata.continue === "" ? undefined : page.metadata.continue;
      } while (next !== undefined);
      return { items, metadata: { resourceVersion } };
    },
    apply: (path, object, fieldManager) =>
      request({
        method: "PATCH",
        path,
        query: { fieldManager, force: true },
        body: object,
        contentType: ContentTypes.apply,
      }),
    mergePatch: (path, patch, fieldManager) =>
      request({ method: "PATCH", path, query: { fieldManager }, body: patch, contentType: ContentTypes.mergePatch }),
    async delete(path, query = {}) {
      try {
        await request({ method: "DELETE", path, query });
        return true;
      } catch (error) {
        if (isNotFound(error)) return false;
        throw error;
      }
    },
  };
}
