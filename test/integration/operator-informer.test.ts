// The operator's informer and work queue against the real API server: changes are seen as they
// happen, an idle watch keeps seeing them (client-node's 30 s inactivity abort is worked around and
// any ended watch is resumed), a compacted resourceVersion leads to a fresh list, and the work
// queue fed by the informer never reconciles one object twice at once.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { Informer, WorkQueue, resourceTypes } from "#operator";
import type { KubeClient, KubeObject } from "#operator";
import { defer, useStack, waitUntil } from "#harness";
import {
  applySender,
  installRelaisCrds,
  kubeClient,
  senderManifest,
  senderPath,
  testNamespace,
} from "./operator-fixtures.ts";

const stack = useStack(["kube"]);
/** How long the idle-watch test keeps the watch idle: above client-node's 30 s by default. */
const idleMs = Number(process.env.RELAIS_IDLE_WATCH_MS ?? "40000");

let client: KubeClient;

before(async () => {
  await stack.ready();
  client = kubeClient(stack.kubeconfig);
  await installRelaisCrds(client);
});

function fromAddress(object: KubeObject | undefined): string | undefined {
  return (object?.spec as { email?: { from?: { address?: string } } } | undefined)?.email?.from?.address;
}

function startInformer(t: Parameters<typeof defer>[0], informer: Informer): void {
  const controller = new AbortController();
  const running = informer.run(controller.signal);
  defer(t, async () => {
    controller.abort();
    await running;
  });
}

describe("the informer", () => {
  it("keeps its store equal to the API server's objects through adds, updates and deletes", async (t) => {
    const namespace = await testNamespace(t, client, "inf");
    await applySender(client, senderManifest(namespace, "before-start"));
    const events: string[] = [];
    const informer = new Informer({
      client,
      type: resourceTypes.Sender,
      namespace,
      onEvent: ({ type, object }) => events.push(`${type}:${object.metadata?.name ?? ""}`),
    });
    startInformer(t, informer);
    await informer.synced();
    assert.deepEqual(informer.keys(), [`${namespace}/before-start`]);

    await applySender(client, senderManifest(namespace, "added"));
    await applySender(client, senderManifest(namespace, "before-start", "changed@shop.example.com"));
    await client.delete(senderPath(namespace, "added"));
    const reason = await waitUntil(
      async () =>
        informer.get(`${namespace}/added`) === undefined &&
        fromAddress(informer.get(`${namespace}/before-start`)) === "changed@shop.example.com" &&
        events.includes(`delete:added`),
      { timeoutMs: 5000, intervalMs: 20 },
    );
    assert.equal(reason, "", `store: ${JSON.stringify(informer.keys())}, events: ${events.join(",")}`);
    assert.deepEqual(events, ["add:before-start", "add:added", "update:before-start", "delete:added"]);
    assert.equal(informer.get(`${namespace}/added`), undefined);
    assert.equal(
      informer.get(`${namespace}/before-start`)?.metadata?.managedFields,
      undefined,
      "managedFields are not kept",
    );
  });

  it(
    `sees a change within a second after its watch stayed idle for ${Math.round(idleMs / 1000)} s`,
    { timeout: idleMs + 60_000 },
    async (t) => {
      const namespace = await testNamespace(t, client, "idle");
      await applySender(client, senderManifest(namespace, "quiet"));
      const informer = new Informer({ client, type: resourceTypes.Sender, namespace });
      startInformer(t, informer);
      await informer.synced();
      await delay(idleMs);
      const changedAt = Date.now();
      await applySender(client, senderManifest(namespace, "quiet", "after-idle@shop.example.com"));
      const reason = await waitUntil(
        async () => fromAddress(informer.get(`${namespace}/quiet`)) === "after-idle@shop.example.com",
        {
          timeoutMs: 1000,
          intervalMs: 10,
        },
      );
      assert.equal(reason, "", `the change was not seen within 1 s (stats ${JSON.stringify(informer.stats)})`);
      assert.ok(Date.now() - changedAt < 1000);
      assert.equal(informer.stats.lists, 1, "an idle watch is resumed, never replaced by a new list");
    },
  );

  it("resumes a watch its client gave up on from the last resourceVersion, without listing again", async (t) => {
    const namespace = await testNamespace(t, client, "resume");
    await applySender(client, senderManifest(namespace, "s"));
    const informer = new Informer({ client, type: resourceTypes.Sender, namespace, inactivityTimeoutMs: 1000 });
    startInformer(t, informer);
    await informer.synced();
    const timedOut = await waitUntil(async () => informer.stats.inactivityTimeouts >= 2, { timeoutMs: 10_000 });
    assert.equal(timedOut, "", "the inactivity timer did not end the watch");
    await applySender(client, senderManifest(namespace, "s", "resumed@shop.example.com"));
    const reason = await waitUntil(
      async () => fromAddress(informer.get(`${namespace}/s`)) === "resumed@shop.example.com",
      {
        timeoutMs: 3000,
        intervalMs: 10,
      },
    );
    assert.equal(reason, "", `change not seen after restarts: ${JSON.stringify(informer.stats)}`);
    assert.equal(informer.stats.lists, 1);
    assert.ok(informer.stats.watches >= 3);
  });

  it("lists again when the resourceVersion it resumes from is gone (410)", async (t) => {
    const namespace = await testNamespace(t, client, "gone");
    await applySender(client, senderManifest(namespace, "existing"));
    // Version 1 is older than anything the API server still holds: its watch answers 410 Gone.
    const informer = new Informer({ client, type: resourceTypes.Sender, namespace, resumeFrom: "1" });
    startInformer(t, informer);
    await informer.synced();
    assert.equal(informer.stats.expired, 1);
    assert.equal(informer.stats.lists, 1);
    assert.deepEqual(informer.keys(), [`${namespace}/existing`]);
    await applySender(client, senderManifest(namespace, "later"));
    const reason = await waitUntil(async () => informer.get(`${namespace}/later`) !== undefined, {
      timeoutMs: 3000,
      intervalMs: 10,
    });
    assert.equal(reason, "");
  });
});

describe("the work queue fed by an informer", () => {
  it("never reconciles one object twice at once, and its last reconcile sees the last state", async (t) => {
    const namespace = await testNamespace(t, client, "queue");
    const running = new Set<string>();
    let overlaps = 0;
    let reconciles = 0;
    const lastSeen = new Map<string, string | undefined>();
    const queue = new WorkQueue({
      concurrency: 4,
      handler: async (key) => {
        if (running.has(key)) overlaps++;
        running.add(key);
        reconciles++;
        const [, name = ""] = key.split("/");
        const object = await client.get(senderPath(namespace, name));
        await delay(30); // a slow reconcile, so updates arrive while it runs
        lastSeen.set(name, fromAddress(object));
        running.delete(key);
        return undefined;
      },
    });
    const informer = new Informer({
      client,
      type: resourceTypes.Sender,
      namespace,
      onEvent: ({ object }) => {
        queue.add(`${namespace}/${object.metadata?.name ?? ""}`);
      },
    });
    const controller = new AbortController();
    const runs = Promise.all([informer.run(controller.signal), queue.run(controller.signal)]);
    defer(t, async () => {
      controller.abort();
      await runs;
    });
    const updates = 20;
    for (let i = 0; i < updates; i++) {
      await Promise.all(
        ["a", "b"].map((name) => applySender(client, senderManifest(namespace, name, `v${i}@shop.example.com`))),
      );
    }
    const final = `v${updates - 1}@shop.example.com`;
    const reason = await waitUntil(
      async () => lastSeen.get("a") === final && lastSeen.get("b") === final && running.size === 0,
      {
        timeoutMs: 10_000,
        intervalMs: 20,
      },
    );
    assert.equal(reason, "", `last seen: ${JSON.stringify([...lastSeen])}`);
    assert.equal(overlaps, 0);
    assert.ok(reconciles < updates * 2, `updates were coalesced: ${reconciles} reconciles for ${updates * 2} updates`);
  });
});
