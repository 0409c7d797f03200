// API keys from the config KV: the operator publishes one entry per labelled Secret
// (`<namespace>.ApiKey.<keyId>`); this keeps the ingest pool's set equal to them, so a key revoked
// in Kubernetes stops working as soon as its deletion reaches this watch (well under a second).
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { ApiKeyKeys, apiKeyEntrySchema } from "#runtime";
import type { Logger } from "#runtime";
import type { ApiKeyEntry, ApiKeys } from "./auth.ts";

export interface ApiKeyWatchOptions {
  kv: KV;
  keys: ApiKeys;
  /** Keys from RELAIS_API_KEYS, always kept. */
  fixed: readonly ApiKeyEntry[];
  log: Logger;
}

/** Watches until `signal` aborts; the set is replaced on every change. */
export function apiKeyWatch(options: ApiKeyWatchOptions): { run(signal: AbortSignal): Promise<void> } {
  const fromKv = new Map<string, ApiKeyEntry>();
  const apply = (entry: KvWatchEntry): void => {
    if (entry.operation !== "PUT") {
      fromKv.delete(entry.key);
    } else {
      const parsed = apiKeyEntrySchema.safeParse(entry.json());
      if (parsed.success) fromKv.set(entry.key, parsed.data);
      else options.log.error({ key: entry.key }, "api key entry in KV is invalid");
    }
    options.keys.replace([...options.fixed, ...fromKv.values()]);
  };
  return {
    async run(signal) {
      const watcher = await options.kv.watch({ key: ApiKeyKeys.all });
      const stop = (): void => {
        watcher.stop();
      };
      if (signal.aborted) stop();
      signal.addEventListener("abort", stop, { once: true });
      for await (const entry of watcher) apply(entry);
    },
  };
}
