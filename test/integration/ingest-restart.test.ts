// No accepted event is lost or stored twice when NATS or Redis restarts under a client that keeps
// sending and retries what did not get a 2xx (with the same event ids). Own servers: restarting
// the shared ones would disturb other tests.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { defer, startNats, startRedis } from "#harness";
import type { StackInfo } from "#harness";
import { ingestFixture } from "../fixtures/ingest.ts";
import type { IngestFixture } from "../fixtures/ingest.ts";

interface Client {
  /** Ids of events whose batch got a 2xx. */
  acknowledged: Set<string>;
  /** Requests answered with a non-2xx and retried. */
  retries: number;
  stop(): Promise<void>;
}

/** Sends batches of 10 events until stopped, retrying each batch until it gets a 2xx. */
function startClient(f: IngestFixture): Client {
  const acknowledged = new Set<string>();
  const stopped = new AbortController();
  let retries = 0;
  let batch = 0;
  const loop = (async () => {
    while (!stopped.signal.aborted) {
      const events = Array.from({ length: 10 }, (_, i) => ({
        profileId: `p${i}`,
        name: "heartbeat",
        id: `b${batch}-${i}`,
      }));
      batch++;
      for (;;) {
        const response = await f.app.inject({
          method: "POST",
          url: "/v1/events",
          headers: { authorization: f.auth },
          payload: { events },
        });
        if (response.statusCode === 202) break;
        assert.equal(response.statusCode, 503, `unexpected ${response.statusCode}: ${response.body}`);
        retries++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (const event of events) acknowledged.add(event.id);
    }
  })();
  return {
    acknowledged,
    get retries() {
      return retries;
    },
    stop: async () => {
      stopped.abort();
      await loop;
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("ingest across server restarts", () => {
  it("keeps every acknowledged event exactly once when NATS and then Redis are killed and restarted", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "relais-restart-"));
    defer(t, () => rm(dir, { recursive: true, force: true }));
    const nats = await startNats(join(dir, "nats"));
    defer(t, () => nats.stop());
    const redis = await startRedis(join(dir, "redis"));
    defer(t, () => redis.stop());
    const stack: StackInfo = {
      natsUrl: nats.url,
      natsMonitorUrl: nats.monitorUrl,
      redisUrl: redis.url,
      kubeconfig: "",
      ready: () => Promise.resolve(),
    };
    const f = await ingestFixture(t, stack);
    const client = startClient(f);

    await pause(1500);
    await nats.process.restart({ hard: true });
    await pause(1500);
    await redis.process.restart({ hard: true });
    await pause(1500);
    await client.stop();

    const stored = await f.storedEvents();
    const ids = stored.map((message) => String(message.data.id));
    const distinct = new Set(ids);
    assert.equal(ids.length, distinct.size, `${ids.length - distinct.size} events stored twice`);
    const lost = [...client.acknowledged].filter((id) => !distinct.has(id));
    assert.deepEqual(lost, [], "acknowledged events missing from RELAIS_EVENTS");
    assert.ok(client.acknowledged.size > 100, `the client got too few batches through: ${client.acknowledged.size}`);
    t.diagnostic(
      `acknowledged ${client.acknowledged.size} events, ${client.retries} retried requests, ${stored.length} stored`,
    );
  });
});
