// NATS JetStream and Redis of the harness are real servers, reached with the clients Relais uses.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import { uniqueName, useStack } from "#harness";

const stack = useStack(["nats", "redis"]);

describe("NATS JetStream of the harness", () => {
  let nc: NatsConnection | undefined;
  before(async () => {
    nc = await connect({ servers: stack.natsUrl });
  });
  after(() => nc?.drain());

  it("stores a message that a durable pull consumer fetches and acks", async (t) => {
    assert.ok(nc);
    const prefix = uniqueName("smoke");
    const stream = prefix.toUpperCase().replace(/-/g, "_");
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
    t.after(() => jsm.streams.delete(stream));
    const js = jetstream(nc);
    const ack = await js.publish(`${prefix}.greeting`, "hello", { msgID: "greeting-1" });
    assert.equal(ack.seq, 1);
    const duplicate = await js.publish(`${prefix}.greeting`, "hello", { msgID: "greeting-1" });
    assert.equal(duplicate.duplicate, true);

    await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get(stream, "reader");
    const messages = await consumer.fetch({ max_messages: 10, expires: 2000 });
    const received: string[] = [];
    for await (const message of messages) {
      received.push(message.string());
      await message.ackAck();
    }
    assert.deepEqual(received, ["hello"]);
    const info = await consumer.info();
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 0);
    assert.equal(info.delivered.stream_seq, 1);
  });
});

describe("Redis of the harness", () => {
  it("round-trips a value under a test's own hash tag", async (t) => {
    const redis = new Redis(stack.redisUrl, { lazyConnect: true });
    await redis.connect();
    t.after(() => redis.quit());
    const key = `relais:{${uniqueName("smoke")}}:greeting`;
    await redis.set(key, "hello", "EX", 60);
    assert.equal(await redis.get(key), "hello");
    assert.ok((await redis.ttl(key)) > 0);
    const info = await redis.config("GET", "appendonly");
    assert.deepEqual(info, ["appendonly", "yes"]);
  });
});
