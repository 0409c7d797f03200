// Leader election between two operator replicas on a real Lease: one leads, the other stands by
// and takes over within the lease duration (plus two retry periods, the polling granularity) when
// the leader dies, and within about one retry period when the leader shuts down and releases it.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { LeaderElector } from "#operator";
import type { KubeClient } from "#operator";
import { defer, useStack, waitUntil } from "#harness";
import { kubeClient, testNamespace } from "./operator-fixtures.ts";

const stack = useStack(["kube"]);
let client: KubeClient;

before(async () => {
  await stack.ready();
  client = kubeClient(stack.kubeconfig);
});

const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };

interface Replica {
  elector: LeaderElector;
  /** [start, end] of each period this replica led. */
  terms: { start: number; end?: number }[];
  stop(): Promise<void>;
}

function startReplica(
  t: Parameters<typeof defer>[0],
  options: { namespace: string; identity: string; release: boolean },
): Replica {
  const terms: { start: number; end?: number }[] = [];
  const elector = new LeaderElector({
    client,
    namespace: options.namespace,
    name: "relais-operator",
    identity: options.identity,
    ...timing,
    releaseOnStop: options.release,
    lead: (signal) =>
      new Promise<void>((resolve) => {
        terms.push({ start: Date.now() });
        signal.addEventListener(
          "abort",
          () => {
            const term = terms.at(-1);
            if (term) term.end = Date.now();
            resolve();
          },
          { once: true },
        );
      }),
  });
  const controller = new AbortController();
  const running = elector.run(controller.signal);
  const stop = async (): Promise<void> => {
    controller.abort();
    await running;
  };
  defer(t, stop);
  return { elector, terms, stop };
}

describe("leader election on a Lease", () => {
  it("lets one replica lead and a standby take over within the lease duration when the leader dies", async (t) => {
    const namespace = await testNamespace(t, client, "lease");
    const a = startReplica(t, { namespace, identity: "replica-a", release: false });
    assert.equal(await waitUntil(async () => a.elector.isLeader, { timeoutMs: 5000, intervalMs: 20 }), "");
    const b = startReplica(t, { namespace, identity: "replica-b", release: false });
    // b has observed a's renewals for longer than a lease duration and still stands by.
    await waitUntil(async () => false, { timeoutMs: timing.leaseDurationMs + 500 });
    assert.equal(b.elector.isLeader, false);
    assert.equal(b.terms.length, 0);

    const diedAt = Date.now();
    await a.stop(); // no release: as a killed replica, its Lease must expire
    const limit = timing.leaseDurationMs + 2 * timing.retryPeriodMs;
    assert.equal(await waitUntil(async () => b.elector.isLeader, { timeoutMs: limit + 2000, intervalMs: 20 }), "");
    const tookOverAfter = (b.terms[0]?.start ?? 0) - diedAt;
    assert.ok(tookOverAfter <= limit, `standby took over after ${tookOverAfter} ms (limit ${limit} ms)`);
    assert.ok(
      tookOverAfter >= timing.leaseDurationMs - timing.retryPeriodMs,
      `took over before the lease expired: ${tookOverAfter} ms`,
    );
    const aEnd = a.terms[0]?.end ?? Infinity;
    assert.ok((b.terms[0]?.start ?? 0) >= aEnd, "the two replicas never led at the same time");
  });

  it("hands over within a retry period or so when the leader shuts down and releases the Lease", async (t) => {
    const namespace = await testNamespace(t, client, "lease");
    const a = startReplica(t, { namespace, identity: "replica-a", release: true });
    assert.equal(await waitUntil(async () => a.elector.isLeader, { timeoutMs: 5000, intervalMs: 20 }), "");
    const b = startReplica(t, { namespace, identity: "replica-b", release: true });
    const stoppedAt = Date.now();
    await a.stop();
    assert.equal(await waitUntil(async () => b.elector.isLeader, { timeoutMs: 5000, intervalMs: 20 }), "");
    const handover = (b.terms[0]?.start ?? 0) - stoppedAt;
    assert.ok(handover < timing.leaseDurationMs, `handover took ${handover} ms, as long as an expiry`);
    const lease = await client.get<{ spec?: { holderIdentity?: string; leaseTransitions?: number } }>(
      `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/relais-operator`,
    );
    assert.equal(lease?.spec?.holderIdentity, "replica-b");
    assert.ok((lease.spec.leaseTransitions ?? 0) >= 1);
  });
});
