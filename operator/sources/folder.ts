// Local mode's ResourceSource: a folder of manifests (multi-document YAML), validated by the same
// schemas the API server enforces, watched for edits. Status goes back next to the manifests, in
// `.relais-status/<namespace>.<Kind>.<name>.yaml`, so a person (or an editor) sees what kubectl
// would show. Secrets come from Secret manifests in the folder, from the options, or from the
// environment (RELAIS_SECRET_<SECRET>_<KEY>, as the deliver pool reads them).
import { randomUUID } from "node:crypto";
import { watch } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { validateManifest } from "#crds";
import type { RelaisResource, ValidationIssue } from "#crds";
import { secretEnvName } from "#runtime";
import { KnownSecretKeys } from "../reconcilers/secrets.ts";
import { keyString } from "../types.ts";
import type { EventRecord, ObjectKey, ResourceKind, ResourceSource, SecretObject, StatusUpdate } from "../types.ts";

export const STATUS_DIR = ".relais-status";

export interface ManifestProblem {
  file: string;
  /** 0-based index of the document in its file. */
  document: number;
  kind: string | undefined;
  name: string | undefined;
  issues: ValidationIssue[];
}

export interface SecretManifest extends SecretObject {
  labels: Record<string, string>;
}

export interface LoadedManifests {
  resources: RelaisResource[];
  secrets: SecretManifest[];
  problems: ManifestProblem[];
}

export interface FolderSourceOptions {
  dir: string;
  /** Where RELAIS_SECRET_* variables are read from. */
  env: Readonly<Record<string, string | undefined>>;
  /** Secrets given by the caller (local mode's demo API key), as if they were manifests. */
  secrets?: SecretManifest[];
  defaultNamespace?: string;
  debounceMs?: number;
  onProblems?: (problems: ManifestProblem[]) => void;
  onStatus?: (key: ObjectKey, status: StatusUpdate) => void;
  onEvent?: (key: ObjectKey, event: EventRecord) => void;
}

interface Entry {
  resource: RelaisResource;
  specJson: string;
  generation: number;
  uid: string;
  finalizers: string[];
  deletionTimestamp: string | undefined;
  status: StatusUpdate | undefined;
}

function isManifestFile(name: string): boolean {
  return !name.startsWith(".") && /\.ya?ml$/.test(name);
}

function decodeSecret(document: Record<string, unknown>, defaultNamespace: string): SecretManifest | undefined {
  const metadata = (document.metadata ?? {}) as Record<string, unknown>;
  if (typeof metadata.name !== "string") return undefined;
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries((document.data ?? {}) as Record<string, unknown>)) {
    if (typeof value === "string") data[key] = Buffer.from(value, "base64").toString("utf8");
  }
  for (const [key, value] of Object.entries((document.stringData ?? {}) as Record<string, unknown>)) {
    if (typeof value === "string") data[key] = value;
  }
  return {
    namespace: typeof metadata.namespace === "string" ? metadata.namespace : defaultNamespace,
    name: metadata.name,
    labels: (metadata.labels ?? {}) as Record<string, string>,
    data,
  };
}

function nameOf(document: unknown): string | undefined {
  const metadata = (document as { metadata?: { name?: unknown } } | null)?.metadata;
  return typeof metadata?.name === "string" ? metadata.name : undefined;
}

function kindOf(document: unknown): string | undefined {
  const kind = (document as { kind?: unknown } | null)?.kind;
  return typeof kind === "string" ? kind : undefined;
}

function parseFile(file: string, text: string, defaultNamespace: string, into: LoadedManifests): void {
  for (const [index, document] of parseAllDocuments(text).entries()) {
    if (!("errors" in document)) continue;
    if (document.errors.length > 0) {
      const issues = document.errors.map((error) => ({
        path: `line ${error.linePos?.[0].line ?? "?"}`,
        message: error.message,
      }));
      into.problems.push({ file, document: index, kind: undefined, name: undefined, issues });
      continue;
    }
    const value: unknown = document.toJS();
    if (value === null || value === undefined) continue;
    if (kindOf(value) === "Secret") {
      const secret = decodeSecret(value as Record<string, unknown>, defaultNamespace);
      if (secret !== undefined) into.secrets.push(secret);
      continue;
    }
    const result = validateManifest(value);
    if (result.kind === "invalid") {
      into.problems.push({ file, document: index, kind: kindOf(value), name: nameOf(value), issues: result.issues });
      continue;
    }
    const resource = result.resource;
    resource.metadata.namespace ??= defaultNamespace;
    into.resources.push(resource);
  }
}

/** Reads and validates every *.yaml / *.yml in `dir` (not recursive). Never throws on bad content. */
export async function loadManifests(dir: string, defaultNamespace = "default"): Promise<LoadedManifests> {
  const loaded: LoadedManifests = { resources: [], secrets: [], problems: [] };
  const names = (await readdir(dir)).filter(isManifestFile).sort();
  for (const name of names) {
    const text = await readFile(join(dir, name), "utf8").catch(() => undefined);
    if (text !== undefined) parseFile(name, text, defaultNamespace, loaded);
  }
  return loaded;
}

type Listener<T extends unknown[]> = (...args: T) => void;

export class FolderSource implements ResourceSource {
  readonly #options: FolderSourceOptions;
  readonly #entries = new Map<string, Entry>();
  #secrets: SecretManifest[] = [];
  readonly #listeners = new Set<Listener<[ObjectKey]>>();
  readonly #secretListeners = new Set<Listener<[string, string]>>();
  #problems: ManifestProblem[] = [];

  private constructor(options: FolderSourceOptions) {
    this.#options = options;
  }

  /** Loads the folder once; `run` then keeps following it. */
  static async open(options: FolderSourceOptions): Promise<FolderSource> {
    const source = new FolderSource(options);
    await mkdir(join(options.dir, STATUS_DIR), { recursive: true });
    await source.reload();
    return source;
  }

  get problems(): readonly ManifestProblem[] {
    return this.#problems;
  }

  get statusDir(): string {
    return join(this.#options.dir, STATUS_DIR);
  }

  /** Follows the folder until `signal` aborts; edits are applied once they settle (debounce). */
  async run(signal: AbortSignal): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const watcher = watch(this.#options.dir, { signal }, (_event, file) => {
      if (file !== null && !isManifestFile(file)) return;
      clearTimeout(timer);
      timer = setTimeout(() => void this.reload(), this.#options.debounceMs ?? 200);
    });
    await new Promise<void>((resolve) => {
      watcher.once("close", resolve);
      watcher.once("error", () => {
        resolve();
      });
      signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }

  /** Re-reads the folder and notifies the keys whose content changed. */
  async reload(): Promise<void> {
    const namespace = this.#options.defaultNamespace ?? "default";
    const loaded = await loadManifests(this.#options.dir, namespace);
    this.#problems = loaded.problems;
    this.#options.onProblems?.(loaded.problems);
    await this.#writeProblems(loaded.problems);
    const changed: ObjectKey[] = [];
    const seen = new Set<string>();
    for (const resource of loaded.resources) {
      const key = this.#keyOf(resource);
      const id = keyString(key);
      seen.add(id);
      if (this.#upsert(id, resource)) changed.push(key);
    }
    for (const [id, entry] of this.#entries) {
      if (seen.has(id) || entry.deletionTimestamp !== undefined) continue;
      changed.push(this.#keyOf(entry.resource));
      if (entry.finalizers.length > 0) entry.deletionTimestamp = new Date().toISOString();
      else await this.#forget(id, entry);
    }
    this.#notify(changed, loaded.secrets);
  }

  #notify(changed: ObjectKey[], secrets: SecretManifest[]): void {
    const before = this.#secrets;
    this.#secrets = [...secrets, ...(this.#options.secrets ?? [])];
    for (const key of changed) for (const listener of this.#listeners) listener(key);
    if (JSON.stringify(this.#secrets) === JSON.stringify(before)) return;
    // Deleted Secrets too: a Sender that needed one must now say so.
    for (const secret of [...before, ...this.#secrets]) {
      for (const listener of this.#secretListeners) listener(secret.namespace, secret.name);
    }
  }

  #keyOf(resource: RelaisResource): ObjectKey {
    return { kind: resource.kind, namespace: resource.metadata.namespace ?? "default", name: resource.metadata.name };
  }

  /** True when the resource is new or its spec or metadata changed. */
  #upsert(id: string, resource: RelaisResource): boolean {
    const specJson = JSON.stringify({ spec: resource.spec, labels: resource.metadata.labels });
    const entry = this.#entries.get(id);
    if (entry === undefined) {
      this.#entries.set(id, {
        resource,
        specJson,
        generation: 1,
        uid: randomUUID(),
        finalizers: [],
        deletionTimestamp: undefined,
        status: undefined,
      });
      return true;
    }
    if (entry.deletionTimestamp !== undefined) return false;
    if (entry.specJson === specJson) {
      // Annotations (a resume request) change the resource but not its generation, as in a cluster.
      const annotations = (r: RelaisResource) => JSON.stringify(r.metadata.annotations ?? {});
      if (annotations(entry.resource) === annotations(resource)) return false;
      entry.resource = resource;
      return true;
    }
    entry.resource = resource;
    entry.specJson = specJson;
    entry.generation += 1;
    return true;
  }

  async #forget(id: string, entry: Entry): Promise<void> {
    this.#entries.delete(id);
    await rm(this.#statusFile(this.#keyOf(entry.resource)), { force: true });
  }

  #statusFile(key: ObjectKey): string {
    return join(this.statusDir, `${key.namespace}.${key.kind}.${key.name}.yaml`);
  }

  async #writeProblems(problems: ManifestProblem[]): Promise<void> {
    const file = join(this.statusDir, "problems.yaml");
    if (problems.length === 0) await rm(file, { force: true });
    else await writeFile(file, `# Manifests that were not applied, and why.\n${stringify(problems)}`);
  }

  #view(entry: Entry): RelaisResource {
    const metadata = {
      ...entry.resource.metadata,
      generation: entry.generation,
      uid: entry.uid,
      finalizers: [...entry.finalizers],
      ...(entry.deletionTimestamp !== undefined && { deletionTimestamp: entry.deletionTimestamp }),
    };
    const status = entry.status === undefined ? {} : { status: structuredClone(entry.status) };
    return { ...entry.resource, metadata, ...status };
  }

  async list(kind: ResourceKind): Promise<RelaisResource[]> {
    return [...this.#entries.values()]
      .filter((entry) => entry.resource.kind === kind)
      .map((entry) => this.#view(entry));
  }

  async get(key: ObjectKey): Promise<RelaisResource | undefined> {
    const entry = this.#entries.get(keyString(key));
    return entry === undefined ? undefined : this.#view(entry);
  }

  async watch(_kind: ResourceKind, onChange: (key: ObjectKey) => void, signal: AbortSignal): Promise<void> {
    await this.#listen(
      this.#listeners,
      (key: ObjectKey) => {
        if (key.kind === _kind) onChange(key);
      },
      signal,
    );
  }

  async watchSecrets(onChange: (namespace: string, name: string) => void, signal: AbortSignal): Promise<void> {
    await this.#listen(this.#secretListeners, onChange, signal);
  }

  async #listen<T extends unknown[]>(set: Set<Listener<T>>, listener: Listener<T>, signal: AbortSignal): Promise<void> {
    set.add(listener);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener(
        "abort",
        () => {
          resolve();
        },
        { once: true },
      );
    });
    set.delete(listener);
  }

  async writeStatus(key: ObjectKey, status: StatusUpdate): Promise<void> {
    const entry = this.#entries.get(keyString(key));
    if (entry === undefined) return;
    entry.status = structuredClone(status);
    const document = {
      apiVersion: entry.resource.apiVersion,
      kind: key.kind,
      metadata: { name: key.name, namespace: key.namespace, generation: entry.generation },
      status,
    };
    await writeFile(this.#statusFile(key), `# Written by relais local; edits are overwritten.\n${stringify(document)}`);
    this.#options.onStatus?.(key, status);
  }

  async addFinalizer(key: ObjectKey, finalizer: string): Promise<void> {
    const entry = this.#entries.get(keyString(key));
    if (entry !== undefined && !entry.finalizers.includes(finalizer)) entry.finalizers.push(finalizer);
  }

  async removeFinalizer(key: ObjectKey, finalizer: string): Promise<void> {
    const id = keyString(key);
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    entry.finalizers = entry.finalizers.filter((item) => item !== finalizer);
    if (entry.deletionTimestamp !== undefined && entry.finalizers.length === 0) {
      await this.#forget(id, entry);
      for (const listener of this.#listeners) listener(key);
    }
  }

  async recordEvent(key: ObjectKey, event: EventRecord): Promise<void> {
    this.#options.onEvent?.(key, event);
  }

  async readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const fromEnv: Record<string, string> = {};
    for (const key of KnownSecretKeys) {
      const value = this.#options.env[secretEnvName(name, key)];
      if (value !== undefined) fromEnv[key] = value;
    }
    const manifest = this.#secrets.find((secret) => secret.namespace === namespace && secret.name === name);
    if (manifest === undefined && Object.keys(fromEnv).length === 0) return undefined;
    return { ...fromEnv, ...manifest?.data };
  }

  /** The Secrets' keys as RELAIS_SECRET_* variables, for pool processes (ProcessPoolOptions.secretEnv). */
  async secretEnv(namespace: string, names: readonly string[]): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const name of names) {
      const data = (await this.readSecret(namespace, name)) ?? {};
      for (const [key, value] of Object.entries(data)) env[secretEnvName(name, key)] = value;
    }
    return env;
  }

  async listSecrets(label: string, value: string): Promise<SecretObject[]> {
    return this.#secrets
      .filter((secret) => secret.labels[label] === value)
      .map(({ namespace, name, data }) => ({ namespace, name, data: { ...data } }));
  }
}
