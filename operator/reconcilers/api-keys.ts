// API keys: every Secret labelled relais.dev/api-key=true holds one key under "key", as
// "<keyId>.<secret>" (what clients send as a Bearer token). Its SHA-256 goes to the config KV,
// which the ingest pool watches; a key whose Secret is deleted is removed from the KV, so it
// stops working within seconds. Reconciled as one set: a Secret change re-lists all of them.
import { ApiKeyKeys } from "#runtime";
import type { ApiKeyEntry } from "#runtime";
import type { SecretObject } from "../types.ts";
import { hashSecret } from "./hash.ts";
import { putConfig } from "./kv.ts";
import { done } from "./types.ts";
import type { ReconcileDeps, ReconcileResult } from "./types.ts";

export const API_KEY_LABEL = "relais.dev/api-key";
const KEY_PATTERN = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{16,256})$/;

function entryOf(secret: SecretObject, deps: ReconcileDeps): ApiKeyEntry | undefined {
  const match = KEY_PATTERN.exec(secret.data.key?.trim() ?? "");
  if (match === null) {
    deps.log.warn(
      { namespace: secret.namespace, secret: secret.name },
      'api key secret has no valid "key" (<keyId>.<secret>, 16+ characters of [A-Za-z0-9_-])',
    );
    return undefined;
  }
  const [, keyId = "", value = ""] = match;
  return { keyId, namespace: secret.namespace, secretSha256: hashSecret(value) };
}

export async function reconcileApiKeys(deps: ReconcileDeps): Promise<ReconcileResult> {
  const managed = (namespace: string): boolean => deps.namespaces?.includes(namespace) ?? true;
  const secrets = (await deps.source.listSecrets(API_KEY_LABEL, "true")).filter((secret) => managed(secret.namespace));
  const wanted = new Map<string, ApiKeyEntry>();
  for (const secret of secrets) {
    const entry = entryOf(secret, deps);
    if (entry !== undefined) wanted.set(ApiKeyKeys.of(entry.namespace, entry.keyId), entry);
  }
  const present: string[] = [];
  for await (const key of await deps.kv.keys(ApiKeyKeys.all)) {
    if (managed(key.slice(0, key.indexOf(".")))) present.push(key);
  }
  for (const key of present) {
    if (!wanted.has(key)) await deps.kv.delete(key);
  }
  for (const [key, entry] of wanted) await putConfig(deps.kv, key, entry);
  return done;
}
