// The harness never leaves a server behind, says why a server failed, and restarts servers on
// the same ports and data (later chaos tests depend on that).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { Redis } from "ioredis";
import { ManagedProcess, startRedis, startStack, waitUntil } from "#harness";
import { isRelaisError } from "#runtime";

const cli = new URL("../../bin/relais.ts", import.meta.url).pathname;

/** Pids of live processes working in `dir` (the harness starts each server in its data folder). */
async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = await readlink(`/proc/${entry}/cwd`);
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      if (cwd.startsWith(dir) && !/\) Z /.test(stat)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked, or is not ours to inspect.
    }
  }
  return pids;
}

/** Starts `relais stack --only nats,redis` and resolves once it says where its data lives. */
async function startCliStack(t: TestContext): Promise<{ child: ChildProcess; dir: string }> {
  const child = spawn(process.execPath, [cli, "stack", "--only", "nats,redis"], { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => void child.kill("SIGKILL"));
  let output = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => (output += chunk));
  const exited = new AbortController();
  child.once("exit", () => {
    exited.abort();
  });
  const reason = await waitUntil(() => Promise.resolve(output.includes("Press Ctrl-C")), {
    timeoutMs: 60_000,
    signal: exited.signal,
  });
  assert.equal(reason, "", `relais stack did not come up: ${reason}`);
  const dir = /data and logs:\s+(\S+)/.exec(output)?.[1];
  assert.ok(dir !== undefined, `no data folder in:\n${output}`);
  return { child, dir };
}

describe("the harness's process lifecycle", () => {
  it("stops every server and removes its data when `relais stack` gets Ctrl-C", async (t) => {
    const { child, dir } = await startCliStack(t);
    assert.equal((await processesIn(dir)).length, 2, "nats-server and redis-server should run");
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
    assert.deepEqual(await processesIn(dir), []);
    assert.equal(existsSync(dir), false);
  });

  it("takes its servers down with it when the process that started them is killed with SIGKILL", async (t) => {
    const { child, dir } = await startCliStack(t);
    t.after(() => rm(dir, { recursive: true, force: true }));
    const servers = await processesIn(dir);
    assert.equal(servers.length, 2);
    child.kill("SIGKILL");
    const leftover = await waitUntil(async () => (await processesIn(dir)).length === 0, { timeoutMs: 15_000 });
    assert.equal(leftover, "", `servers left running: ${(await processesIn(dir)).join(", ")}`);
    // The next stack started on this machine removes the abandoned folder.
    const next = await startStack({ components: [] });
    await next.stop();
    assert.equal(existsSync(dir), false, "the killed stack's folder was not swept");
  });

  it("reports a server that exits at start with its code and the end of its log", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "relais-harness-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const server = new ManagedProcess({
      name: "redis-server",
      tool: "redis-server",
      args: ["--no-such-directive", "yes"],
      logFile: join(dir, "redis.log"),
      ready: () => Promise.resolve(false),
    });
    await assert.rejects(
      server.start(),
      (error: unknown) =>
        isRelaisError(error, "RELAIS_SERVER_START_FAILED") &&
        error.message.startsWith("redis-server failed to start: exited with code 1") &&
        error.message.includes("no-such-directive"),
    );
    assert.equal(server.running, false);
  });

  it("restarts a killed Redis on the same port with its data", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "relais-harness-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const redis = await startRedis(dir);
    t.after(() => redis.stop());
    const client = new Redis(redis.url, { maxRetriesPerRequest: null });
    t.after(() => {
      client.disconnect();
    });
    await client.set("relais:{harness}:kept", "yes");
    // appendfsync everysec: give the AOF its second before the crash.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const before = redis.process.pid;
    await redis.process.restart({ hard: true });
    assert.notEqual(redis.process.pid, before);
    assert.equal(await client.get("relais:{harness}:kept"), "yes");
  });
});
