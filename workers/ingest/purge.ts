// Deletes profiles inactive for longer than their namespace's retention, in bounded batches, so a
// large backlog never blocks Redis. Each deletion is a full erase (announced to engage). A Runnable.
import type { Logger, Runnable } from "#runtime";
import type { IngestMetrics } from "./metrics.ts";
import type { ProfileStore } from "./profiles/store.ts";
import type { IngestService } from "./service.ts";
import { delay } from "#runtime";

export interface PurgeOptions {
  retentionDays: Readonly<Record<string, number>>;
  intervalMs: number;
  batchSize: number;
  now?: () => Date;
}

export interface PurgeDeps {
  store: ProfileStore;
  service: IngestService;
  metrics: IngestMetrics;
  log: Logger;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** One pass: at most `batchSize` profiles per namespace. Resolves with how many were deleted. */
export async function purgeOnce(deps: PurgeDeps, options: PurgeOptions): Promise<Record<string, number>> {
  const now = (options.now ?? (() => new Date()))();
  const removed: Record<string, number> = {};
  for (const [namespace, days] of Object.entries(options.retentionDays)) {
    const ids = await deps.store.inactiveSince(namespace, new Date(now.getTime() - days * DAY_MS), options.batchSize);
    let count = 0;
    for (const id of ids) {
      const result = await deps.service.erase(namespace, id);
      if (result.kind === "unavailable") break;
      count++;
    }
    deps.metrics.purged.inc({ namespace }, count);
    removed[namespace] = count;
  }
  return removed;
}

export function inactivePurge(deps: PurgeDeps, options: PurgeOptions): Runnable {
  return {
    async run(signal) {
      while (!signal.aborted) {
        const removed = await purgeOnce(deps, options).catch((error: unknown) => {
          deps.log.warn({ err: error }, "inactive purge pass failed");
          return {};
        });
        if (Object.values(removed).some((count) => count > 0)) deps.log.info({ removed }, "inactive profiles purged");
        // A full batch means more are waiting: go again at once.
        const more = Object.values(removed).some((count) => count >= options.batchSize);
        if (!more) await delay(options.intervalMs, signal);
      }
    },
  };
}
