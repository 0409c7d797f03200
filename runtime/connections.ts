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
  });
}

export function connectRedis(url: string, name: string): Redis {
  return new Redis(url, {
    connectionName: name,
    // A command issued while Redis is away fails after a short wait instead of queueing forever,
    // so an HTTP request gets a 503 and the client retries.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
  });
}
