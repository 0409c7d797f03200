// The whole set of real servers Relais talks to, started together in one temporary folder.
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startKube } from "./kube.ts";
import type { KubeControlPlane } from "./kube.ts";
import { startNats, startRedis } from "./servers.ts";
import type { NatsServer, RedisServer } from "./servers.ts";

export const Components = { nats: "nats", redis: "redis", kube: "kube" } as const;
export type Component = (typeof Components)[keyof typeof Components];

/** The environment variables through which a running stack reaches test processes. */
export const StackEnv = {
  natsUrl: "RELAIS_TEST_NATS_URL",
  natsMonitorUrl: "RELAIS_TEST_NATS_MONITOR_URL",
  redisUrl: "RELAIS_TEST_REDIS_URL",
  kubeconfig: "RELAIS_TEST_KUBECONFIG",
  dir: "RELAIS_TEST_STACK_DIR",
} as const;

export interface Stack {
  readonly dir: string;
  readonly nats?: NatsServer;
  readonly redis?: RedisServer;
  readonly kube?: KubeControlPlane;
  /** The StackEnv variables describing this stack. */
  env(): Record<string, string>;
  /** Stops every server and removes the folder unless `keepDir`. Never rejects. */
  stop(options?: { keepDir?: boolean }): Promise<void>;
}

export interface StackOptions {
  components?: readonly Component[];
  /** Parent of the stack's folder; defaults to the OS temp folder. */
  baseDir?: string;
}

/**
 * Starts the requested servers concurrently. If any fails, the others are stopped before the
 * error propagates, so a failed start leaves nothing behind.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const components = new Set(options.components ?? Object.values(Components));
  const baseDir = options.baseDir ?? tmpdir();
  await sweepAbandoned(baseDir);
  const dir = await mkdtemp(join(baseDir, STACK_PREFIX));
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  const started: { nats?: NatsServer; redis?: RedisServer; kube?: KubeControlPlane } = {};
  const results = await Promise.allSettled([
    components.has("nats") ? startNats(join(dir, "nats")).then((s) => (started.nats = s)) : undefined,
    components.has("redis") ? startRedis(join(dir, "redis")).then((s) => (started.redis = s)) : undefined,
    components.has("kube") ? startKube(join(dir, "kube")).then((s) => (started.kube = s)) : undefined,
  ]);
  const stack = makeStack(dir, started);
  const failure = results.find((result) => result.status === "rejected");
  if (failure !== undefined) {
    await stack.stop({ keepDir: true });
    throw failure.reason;
  }
  return stack;
}

const STACK_PREFIX = "relais-stack-";
const OWNER_FILE = "owner.pid";

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the folders of stacks whose owner died without tearing down (SIGKILL, or a test run
 * interrupted before its global teardown). Their servers died with the owner (pdeathsig).
 */
async function sweepAbandoned(baseDir: string): Promise<void> {
  const entries = await readdir(baseDir).catch(() => []);
  for (const entry of entries.filter((name) => name.startsWith(STACK_PREFIX))) {
    const dir = join(baseDir, entry);
    const owner = Number(await readFile(join(dir, OWNER_FILE), "utf8").catch(() => "0"));
    if (owner > 0 && !isAlive(owner)) await rm(dir, { recursive: true, force: true });
  }
}

function makeStack(dir: string, servers: { nats?: NatsServer; redis?: RedisServer; kube?: KubeControlPlane }): Stack {
  return {
    dir,
    ...servers,
    env() {
      const env: Record<string, string> = { [StackEnv.dir]: dir };
      if (servers.nats !== undefined) {
        env[StackEnv.natsUrl] = servers.nats.url;
        env[StackEnv.natsMonitorUrl] = servers.nats.monitorUrl;
      }
      if (servers.redis !== undefined) env[StackEnv.redisUrl] = servers.redis.url;
      if (servers.kube !== undefined) env[StackEnv.kubeconfig] = servers.kube.kubeconfig;
      return env;
    },
    async stop(stopOptions = {}) {
      await Promise.allSettled([servers.kube?.stop(), servers.nats?.stop(), servers.redis?.stop()]);
      if (stopOptions.keepDir !== true) await rm(dir, { recursive: true, force: true });
    },
  };
}
