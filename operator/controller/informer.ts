// List + watch of one resource type into a local store, as client-go's reflector does: list once,
// then watch from the list's resourceVersion; resume every watch that ends from the last
// resourceVersion seen (events and bookmarks move it), and list again only when the server says
// that version is gone (410). Watches ask for bookmarks, so an idle watch still receives data about
// once a minute; client-node's Watch aborts after `requestTimeoutMs` without data (30 s by
// default), so that timer is raised above the bookmark interval, and any watch that ends anyway
// (the server's timeoutSeconds, a dropped connection, the inactivity timer) is restarted.
import { Watch } from "@kubernetes/client-node";
import type { Logger } from "#runtime";
import { sleep, systemClock } from "./clock.ts";
import type { Clock } from "./clock.ts";
import { apiVersionOf, resourcePath } from "./kube.ts";
import type { KubeClient, KubeObject, ResourceType } from "./kube.ts";
import { backoffMs } from "./workqueue.ts";

export type InformerEventType = "add" | "update" | "delete";

export interface InformerEvent<T extends KubeObject> {
  type: InformerEventType;
  object: T;
}

export interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  type: ResourceType;
  /** Watch one namespace; all namespaces when absent (or for cluster-scoped types). */
  namespace?: string;
  labelSelector?: string;
  /** Told of every change of the store, after the store holds it. */
  onEvent?: (event: InformerEvent<T>) => void;
  /** Client-side inactivity limit of one watch; above the API server's bookmark interval (1 min). */
  inactivityTimeoutMs?: number;
  /** Server-side length of one watch, in seconds: a random value in [min, 2 min) spreads reconnects. */
  watchTimeoutSeconds?: number;
  /**
   * What the store keeps of each object. By default everything but metadata.managedFields, which
   * the operator never reads and which is often the largest part of an object.
   */
  transform?: (object: T) => T;
  /** List metadata only (Secrets: their values are never fetched by the list). */
  metadataOnly?: boolean;
  /** Start by watching from this resourceVersion instead of listing (resuming after a restart). */
  resumeFrom?: string;
  clock?: Clock;
  random?: () => number;
  log?: Logger;
}

/** Counters a test or a status page reads: how often the informer listed and watched. */
export interface InformerStats {
  lists: number;
  watches: number;
  /** Lists forced by 410 Gone (the resourceVersion it resumed from was compacted). */
  expired: number;
  /** Watches the client ended for lack of data. */
  inactivityTimeouts: number;
  bookmarks: number;
}

type WatchEnd = "closed" | "expired" | "failed";

/** A watch that lasted less than this and ended without error still counts toward backoff. */
const MIN_HEALTHY_WATCH_MS = 1000;

interface WatchStatus {
  code?: number;
  reason?: string;
  message?: string;
}

export function objectKey(object: KubeObject): string {
  const meta = object.metadata ?? {};
  return meta.namespace === undefined ? (meta.name ?? "") : `${meta.namespace}/${meta.name ?? ""}`;
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly #options: InformerOptions<T>;
  readonly #clock: Clock;
  readonly #store = new Map<string, T>();
  readonly #stats: InformerStats = { lists: 0, watches: 0, expired: 0, inactivityTimeouts: 0, bookmarks: 0 };
  #resourceVersion: string | undefined;
  #synced = false;
  #onSynced: (() => void)[] = [];

  constructor(options: InformerOptions<T>) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#resourceVersion = options.resumeFrom;
  }

  get stats(): Readonly<InformerStats> {
    return { ...this.#stats };
  }

  /** The last resourceVersion seen (list, event or bookmark). */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** True once the store holds a complete list. */
  get hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves once the store holds a complete list (at once if it already does). */
  synced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#onSynced.push(resolve));
  }

  /** The stored object `namespace/name` (or `name` for a cluster-scoped type). */
  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  list(): T[] {
    return [...this.#store.values()];
  }

  keys(): string[] {
    return [...this.#store.keys()];
  }

  /** Lists and watches until `signal` aborts; never rejects (failures are retried with backoff). */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const started = this.#clock.now();
      const end = await this.#cycle(signal);
      // A watch the server closes at once, again and again, is a failure too: without backoff the
      // loop would hammer the API server.
      const instant = end === "closed" && this.#clock.now() - started < MIN_HEALTHY_WATCH_MS;
      if (end === "failed" || instant) failures++;
      else failures = 0;
      if (failures > 0) {
        await sleep(
          this.#clock,
          backoffMs(failures, { baseMs: 200, maxMs: 30_000, random: this.#options.random ?? Math.random }),
          signal,
        );
      }
    }
  }

  /** One list (when needed) and one watch. */
  async #cycle(signal: AbortSignal): Promise<WatchEnd> {
    try {
      if (this.#resourceVersion === undefined) await this.#relist();
      const end = await this.#watch(signal);
      if (end === "expired") {
        this.#stats.expired++;
        this.#resourceVersion = undefined;
        this.#options.log?.info({ resource: this.#options.type.plural }, "watch expired (410), listing again");
      }
      return end;
    } catch (error) {
      if (signal.aborted) return "closed";
      this.#options.log?.warn({ err: error, resource: this.#options.type.plural }, "list or watch failed, retrying");
      return "failed";
    }
  }

  #collectionPath(): string {
    const { type, namespace } = this.#options;
    return resourcePath(type, namespace === undefined ? {} : { namespace });
  }

  #withTypeMeta(object: T): T {
    // Items of a list carry no apiVersion/kind; watch events do. Store both the same way.
    const typed = { ...object, apiVersion: apiVersionOf(this.#options.type), kind: this.#options.type.kind };
    if (this.#options.transform !== undefined) return this.#options.transform(typed);
    if (typed.metadata?.managedFields === undefined) return typed;
    const { managedFields: _dropped, ...metadata } = typed.metadata;
    return { ...typed, metadata };
  }

  async #relist(): Promise<void> {
    this.#stats.lists++;
    const list = await this.#options.client.list<T>(
      this.#collectionPath(),
      { labelSelector: this.#options.labelSelector },
      { metadataOnly: this.#options.metadataOnly === true },
    );
    const seen = new Set<string>();
    for (const item of list.items) {
      const object = this.#withTypeMeta(item);
      const key = objectKey(object);
      seen.add(key);
      const old = this.#store.get(key);
      if (old?.metadata?.resourceVersion === object.metadata?.resourceVersion) continue;
      this.#store.set(key, object);
      this.#emit(old === undefined ? "add" : "update", object);
    }
    for (const [key, old] of this.#store) {
      if (seen.has(key)) continue;
      this.#store.delete(key);
      this.#emit("delete", old);
    }
    this.#resourceVersion = list.metadata.resourceVersion;
    this.#markSynced();
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    for (const resolve of this.#onSynced.splice(0)) resolve();
  }

  #emit(type: InformerEventType, object: T): void {
    this.#options.onEvent?.({ type, object });
  }

  /** Applies one watch event to the store; says whether the watch must end with 410. */
  #apply(type: string, object: unknown): WatchEnd | undefined {
    if (type === "ERROR") {
      const status = object as WatchStatus;
      return status.code === 410 ? "expired" : "failed";
    }
    const item = object as T;
    const version = item.metadata?.resourceVersion;
    if (type === "BOOKMARK") {
      this.#stats.bookmarks++;
      if (version !== undefined) this.#resourceVersion = version;
      return undefined;
    }
    const stored = this.#withTypeMeta(item);
    const key = objectKey(stored);
    if (type === "DELETED") {
      this.#store.delete(key);
      this.#emit("delete", stored);
    } else if (type === "ADDED" || type === "MODIFIED") {
      const existed = this.#store.has(key);
      this.#store.set(key, stored);
      this.#emit(existed ? "update" : "add", stored);
    }
    if (version !== undefined) this.#resourceVersion = version;
    return undefined;
  }

  /** Watches from the current resourceVersion until the watch ends; resolves how it ended. */
  async #watch(signal: AbortSignal): Promise<WatchEnd> {
    this.#stats.watches++;
    const watch = new Watch(this.#options.client.config);
    // Declared private in 2.0.1's types, but it is the only knob of the inactivity timer.
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = this.#options.inactivityTimeoutMs ?? 100_000;
    const minSeconds = this.#options.watchTimeoutSeconds ?? 300;
    const random = this.#options.random ?? Math.random;
    let ended: WatchEnd | undefined;
    let finish: (end: WatchEnd) => void = () => undefined;
    const finished = new Promise<WatchEnd>((resolve) => {
      finish = (end) => {
        resolve(ended ?? end);
      };
    });
    const controller = await watch.watch(
      this.#collectionPath(),
      {
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: Math.floor(minSeconds * (1 + random())),
        labelSelector: this.#options.labelSelector,
      },
      (type: string, object: unknown) => {
        ended ??= this.#apply(type, object);
      },
      (error: unknown) => {
        finish(this.#classifyEnd(error, signal));
      },
    );
    const onAbort = (): void => {
      controller.abort();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) controller.abort();
    try {
      return await finished;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  #classifyEnd(error: unknown, signal: AbortSignal): WatchEnd {
    if (error === null || error === undefined || signal.aborted) return "closed";
    if (error instanceof Error && error.name === "TimeoutError") {
      this.#stats.inactivityTimeouts++;
      return "closed";
    }
    if ((error as { statusCode?: number }).statusCode === 410) return "expired";
    this.#options.log?.warn({ err: error, resource: this.#options.type.plural }, "watch failed");
    return "failed";
  }
}
