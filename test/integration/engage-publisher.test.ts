// The engage process's JetStream publisher (AckedPublisher) against a real NATS: a send job is
// stored once per id, and a publish nobody stores is an error, not a silent success.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { AckedPublisher } from "#engage";
import { defer, uniqueName, useStack } from "#harness";
import { connectNats, ensureStreams, sendMessageId, Streams, Subjects } from "#runtime";

const stack = useStack(["nats"]);

describe("AckedPublisher", () => {
  it("resolves once JetStream stored the message, once per message id", async (t) => {
    const nc = await connectNats(stack.natsUrl, "publisher-test");
    defer(t, () => nc.drain());
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm);
    const namespace = uniqueName("pub");
    const subject = Subjects.send(namespace, "mail");
    const reader = `test_${namespace.replace(/-/g, "_")}`;
    await jsm.consumers.add(Streams.sends, {
      durable_name: reader,
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
    });
    defer(t, () => jsm.consumers.delete(Streams.sends, reader));
    const publisher = new AckedPublisher(nc);
    defer(t, () => {
      publisher.close();
    });
    const ids = Array.from({ length: 50 }, (_, i) => `job-${i % 25}`);
    await Promise.all(
      ids.map((id) => publisher.publish(subject, JSON.stringify({ id }), sendMessageId(namespace, id))),
    );
    const info = await jsm.consumers.info(Streams.sends, reader);
    assert.equal(info.num_pending, 25, "each id stored once");
    const consumer = await jetstream(nc).consumers.get(Streams.sends, reader);
    const batch = await consumer.fetch({ max_messages: 25, expires: 2000 });
    for await (const message of batch) message.ack();
  });

  it("rejects a publish no stream stores, and any publish once closed", async (t) => {
    const nc = await connectNats(stack.natsUrl, "publisher-test");
    defer(t, () => nc.drain());
    const publisher = new AckedPublisher(nc, 2000);
    await assert.rejects(
      publisher.publish(`nowhere.${uniqueName("x")}`, "{}", "id-1"),
      /JetStream publish failed: 503/,
    );
    publisher.close();
    await assert.rejects(publisher.publish(Subjects.send("ns", "mail"), "{}", "id-2"), /JetStream publish failed/);
  });
});
