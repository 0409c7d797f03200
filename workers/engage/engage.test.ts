// Unit tests of the engage pieces that need no server: the automation registry's index and the
// keyed queue that orders a profile's events.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { automationSpecSchema } from "#crds";
import { AutomationRegistry, compileAutomation } from "./automations/registry.ts";
import { KeyedQueue } from "./keyed-queue.ts";

function automation(
  namespace: string,
  name: string,
  trigger: string,
  options: { cancels?: string[]; generation?: number } = {},
) {
  const { cancels = [], generation = 1 } = options;
  const spec = automationSpecSchema.parse({
    senderRef: { name: "mail" },
    trigger: { event: trigger },
    cancelOn: cancels.map((event) => ({ event })),
    message: { email: { subject: "s", html: "<p>h</p>" } },
  });
  return compileAutomation(namespace, name, generation, spec);
}

const names = (list: readonly { name: string }[]) => list.map((entry) => entry.name).sort();

describe("AutomationRegistry", () => {
  it("indexes automations by trigger and cancel event, per namespace", () => {
    const registry = new AutomationRegistry();
    registry.put(automation("a", "cart", "cart_updated", { cancels: ["purchase"] }));
    registry.put(automation("a", "welcome", "signed_up"));
    registry.put(automation("b", "cart", "cart_updated"));
    assert.deepEqual(names(registry.triggeredBy("a", "cart_updated")), ["cart"]);
    assert.deepEqual(names(registry.cancelledBy("a", "purchase")), ["cart"]);
    assert.deepEqual(registry.cancelledBy("b", "purchase"), []);
    assert.deepEqual(registry.namespaces().sort(), ["a", "b"]);
    assert.deepEqual(names([...registry.inNamespace("a")]), ["cart", "welcome"]);
  });

  it("moves an edited automation's entries and drops a removed one's, leaving the others", () => {
    const registry = new AutomationRegistry();
    registry.put(automation("a", "cart", "cart_updated", { cancels: ["purchase"] }));
    registry.put(automation("a", "browse", "cart_updated", { cancels: ["purchase", "logout"] }));
    const before = registry.triggeredBy("a", "cart_updated");
    registry.put(automation("a", "cart", "checkout_started", { cancels: ["order_placed"], generation: 2 }));
    assert.deepEqual(names(registry.triggeredBy("a", "cart_updated")), ["browse"]);
    assert.deepEqual(names(registry.triggeredBy("a", "checkout_started")), ["cart"]);
    assert.equal(registry.get("a", "cart")?.generation, 2);
    assert.deepEqual(names(registry.cancelledBy("a", "purchase")), ["browse"]);
    assert.deepEqual(names(registry.cancelledBy("a", "order_placed")), ["cart"]);
    assert.deepEqual(names(before), ["browse", "cart"], "a list handed out earlier is not changed under its holder");
    registry.remove("a", "browse");
    registry.remove("a", "cart");
    assert.deepEqual(registry.triggeredBy("a", "cart_updated"), []);
    assert.deepEqual(registry.cancelledBy("a", "logout"), []);
    assert.deepEqual(registry.namespaces(), []);
  });

  it("keeps an automation that does not compile out of the index", () => {
    const registry = new AutomationRegistry();
    const broken = automation("a", "bad", "cart_updated");
    registry.put({ ...broken, problems: ["spec.trigger.filter: no such field"] });
    assert.deepEqual(registry.triggeredBy("a", "cart_updated"), []);
    assert.ok(registry.get("a", "bad"));
  });
});

describe("KeyedQueue", () => {
  it("runs a key's tasks in order and different keys concurrently, within the limit", async () => {
    const queue = new KeyedQueue(4);
    const order = new Map<string, number[]>();
    let running = 0;
    let most = 0;
    let overlapped = false;
    const delays = [7, 1, 4, 0, 9, 2, 5, 3];
    for (let i = 0; i < 40; i++) {
      const key = `p${i % 5}`;
      await queue.add(key, async () => {
        running++;
        most = Math.max(most, running);
        if (running > 1) overlapped = true;
        await new Promise((resolve) => setTimeout(resolve, delays[i % delays.length]));
        order.set(key, [...(order.get(key) ?? []), i]);
        running--;
      });
    }
    await queue.drain();
    for (const [key, seen] of order)
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => a - b),
        `order of ${key}`,
      );
    assert.equal([...order.values()].flat().length, 40);
    assert.ok(most <= 4, `at most 4 at once, saw ${most}`);
    assert.ok(overlapped, "different keys overlap");
  });
});
