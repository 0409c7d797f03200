// NATS and Redis connections with the reconnect behaviour every process wants: keep trying
// forever (a restarted server is the normal case), fail fast on a command while disconnected.
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";

export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  return connect({
    servers: url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    // Without this, every request and publish builds two Error objects with stack traces for
    // context it may never report: about 16% of ingest's CPU on batched events (measured with
    // test/bench/ingest.ts). Errors still carry their message and code.
    noAsyncTraces: true,
  });
}

/**
 * A Redis client that reconnects forever. `onError` hears connection errors (ioredis emits one per
 * failed reconnect attempt; without a listener it prints them as unhandled).
 */
export function connectRedis(url: string, name: string, onError: (error: Error) => void = () => undefined): Redis {
  const client = new Redis(url, {
    connectionName: name,
    // A command issued while Redis is away fails after a short wait instead of queueing forever,
    // so an HTTP request gets a 503 and the client retries.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
  });
  client.on("error", onError);
  return client;
}
