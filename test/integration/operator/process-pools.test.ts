// Pools as child processes: replicas start and serve, scale down with SIGTERM, come back after a
// crash.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { defer, hasTool, toolPath, uniqueName, useStack, waitUntil } from "#harness";
import { ProcessPoolRunner } from "#operator";
import type { PoolSpec } from "#operator";
import { createLogger } from "#runtime";

const stack = useStack(["nats", "redis"]);
const cli = new URL("../../../bin/relais.ts", import.meta.url).pathname;

async function runner(t: Parameters<typeof defer>[0]): Promise<ProcessPoolRunner> {
  const dir = await mkdtemp(join(tmpdir(), "relais-pools-"));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  const pools = new ProcessPoolRunner({
    command: [process.execPath, cli],
    ...(hasTool("setpriv") && { wrapper: [toolPath("setpriv"), "--pdeathsig", "SIGKILL", "--"] }),
    baseEnv: { PATH: process.env.PATH ?? "" },
    logDir: dir,
    log: createLogger({ name: "pools-test", level: "silent" }),
    restartBaseMs: 100,
    stopTimeoutMs: 5000,
  });
  defer(t, () => pools.stopAll());
  return pools;
}

function engagePool(): PoolSpec {
  return {
    namespace: uniqueName("pl"),
    name: "engage",
    kind: "engage",
    env: { RELAIS_NATS_URL: stack.natsUrl, RELAIS_REDIS_URL: stack.redisUrl, RELAIS_LOG_LEVEL: "warn" },
    secretRefs: [],
    minReplicas: 1,
    maxReplicas: 3,
    configHash: "a",
  };
}

const alive = (pid: number | undefined): boolean => {
  try {
    process.kill(pid ?? 0, 0);
    return pid !== undefined;
  } catch {
    return false;
  }
};

describe("process pools", () => {
  it("runs N replicas as N processes, each on its own port, and scales down gracefully", async (t) => {
    const pools = await runner(t);
    const spec = engagePool();
    await pools.apply(spec);
    await pools.scale(spec, 3);
    const ready = await waitUntil(async () => (await pools.state(spec))?.readyReplicas === 3, { timeoutMs: 20_000 });
    assert.equal(ready, "", "three replicas serve /readyz");
    const replicas = pools.replicas(spec);
    assert.equal(new Set(replicas.map((replica) => replica.url)).size, 3, "one ops port each");
    const metrics = await (await fetch(`${replicas[2]?.url ?? ""}/metrics`)).text();
    assert.match(metrics, /relais_engage_/);

    await pools.scale(spec, 1);
    assert.deepEqual(await pools.state(spec), { desiredReplicas: 1, readyReplicas: 1 });
    assert.equal(alive(replicas[1]?.pid), false, "replica 1 stopped");
    assert.equal(alive(replicas[2]?.pid), false, "replica 2 stopped");
    assert.equal(alive(replicas[0]?.pid), true, "replica 0 kept");
  });

  it("restarts a replica that crashes", async (t) => {
    const pools = await runner(t);
    const spec = engagePool();
    await pools.apply(spec);
    await waitUntil(async () => (await pools.state(spec))?.readyReplicas === 1, { timeoutMs: 15_000 });
    const before = pools.replicas(spec)[0]?.pid;
    process.kill(before ?? 0, "SIGKILL");
    const back = await waitUntil(
      async () => {
        const replica = pools.replicas(spec)[0];
        return replica?.pid !== before && replica?.restarts === 1 && (await pools.state(spec))?.readyReplicas === 1;
      },
      { timeoutMs: 15_000 },
    );
    assert.equal(back, "", "a new process serves in its place");

    const restarted = pools.replicas(spec)[0]?.pid;
    assert.equal(alive(restarted), true);
    await pools.delete(spec);
    assert.equal(await pools.state(spec), undefined);
    assert.equal(alive(restarted), false, "delete stops the replica");
  });
});
