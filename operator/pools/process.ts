// Local mode's PoolRunner: each replica is a child process of this same CLI (`relais deliver`,
// `relais ingest`, `relais engage`) with its RELAIS_* environment and its own ops port. A replica
// that dies is restarted with exponential backoff; scale-down and delete stop replicas with
// SIGTERM, so they drain as a Deployment's pods do, and SIGKILL only after a timeout.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Logger } from "#runtime";
import type { PoolRef, PoolRunner, PoolSpec, PoolState } from "../types.ts";

export interface ProcessPoolOptions {
  /** What starts a pool process, before its kind: [process.execPath, "<checkout>/bin/relais.ts"]. */
  command: readonly string[];
  /** Put before the command, e.g. ["setpriv", "--pdeathsig", "SIGTERM", "--"] so replicas die with the operator. */
  wrapper?: readonly string[];
  /** Environment every process gets (PATH and the like); the pool's env is added to it. */
  baseEnv: Record<string, string>;
  /** The values of a pool's Secrets as RELAIS_SECRET_* variables (never logged). */
  secretEnv?: (namespace: string, secrets: readonly string[]) => Promise<Record<string, string>>;
  /** One output file per replica here (`<namespace>.<pool>-<index>.log`); output is dropped without. */
  logDir?: string;
  log: Logger;
  restartBaseMs?: number;
  restartMaxMs?: number;
  /** A replica that ran this long without dying starts its backoff afresh. */
  healthyAfterMs?: number;
  stopTimeoutMs?: number;
  host?: string;
}

export interface ReplicaInfo {
  index: number;
  pid: number | undefined;
  /** http://host:port of its /metrics, /healthz, /readyz (the API, for ingest). */
  url: string;
  restarts: number;
}

interface Replica {
  index: number;
  port: number;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  stopping: boolean;
  restarts: number;
  startedAt: number;
  restartTimer: NodeJS.Timeout | undefined;
}

interface Pool {
  spec: PoolSpec;
  desired: number;
  replicas: Replica[];
  /** Serialises apply/scale/delete of one pool. */
  lock: Promise<void>;
}

async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  return port;
}

const id = (pool: PoolRef): string => `${pool.namespace}/${pool.name}`;

export class ProcessPoolRunner implements PoolRunner {
  readonly #options: ProcessPoolOptions;
  readonly #pools = new Map<string, Pool>();
  #closing = false;

  constructor(options: ProcessPoolOptions) {
    this.#options = options;
  }

  /** The replicas of a pool as they run now. */
  replicas(pool: PoolRef): ReplicaInfo[] {
    const host = this.#options.host ?? "127.0.0.1";
    return (this.#pools.get(id(pool))?.replicas ?? []).map((replica) => ({
      index: replica.index,
      pid: replica.child?.pid,
      url: `http://${host}:${replica.port}`,
      restarts: replica.restarts,
    }));
  }

  /** Every pool this runner runs. */
  pools(): PoolSpec[] {
    return [...this.#pools.values()].map((pool) => pool.spec);
  }

  async #locked(key: string, work: (pool: Pool | undefined) => Promise<void>): Promise<void> {
    const pool = this.#pools.get(key);
    if (pool === undefined) {
      await work(undefined);
      return;
    }
    const previous = pool.lock;
    const next = previous.then(() => work(this.#pools.get(key)));
    pool.lock = next.catch(() => undefined);
    await next;
  }

  async apply(spec: PoolSpec): Promise<void> {
    const key = id(spec);
    await this.#locked(key, async (pool) => {
      if (pool === undefined) {
        const created: Pool = { spec, desired: spec.minReplicas, replicas: [], lock: Promise.resolve() };
        this.#pools.set(key, created);
        await this.#converge(created);
        return;
      }
      const rolled =
        pool.spec.configHash !== spec.configHash || JSON.stringify(pool.spec.env) !== JSON.stringify(spec.env);
      pool.spec = spec;
      pool.desired = Math.min(spec.maxReplicas, Math.max(spec.minReplicas, pool.desired));
      if (rolled) {
        // One replica at a time, so a pool with several replicas keeps serving while it rolls.
        for (const replica of [...pool.replicas]) {
          await this.#stop(replica);
          pool.replicas = pool.replicas.filter((item) => item !== replica);
          pool.replicas.push(await this.#start(pool, replica.index));
          pool.replicas.sort((a, b) => a.index - b.index);
        }
      }
      await this.#converge(pool);
    });
  }

  async scale(ref: PoolRef, replicas: number): Promise<void> {
    await this.#locked(id(ref), async (pool) => {
      if (pool === undefined) return;
      pool.desired = replicas;
      await this.#converge(pool);
    });
  }

  async state(ref: PoolRef): Promise<PoolState | undefined> {
    const pool = this.#pools.get(id(ref));
    if (pool === undefined) return undefined;
    const ready = await Promise.all(pool.replicas.map((replica) => this.#isReady(replica)));
    return { desiredReplicas: pool.desired, readyReplicas: ready.filter(Boolean).length };
  }

  async delete(ref: PoolRef): Promise<void> {
    const key = id(ref);
    await this.#locked(key, async (pool) => {
      if (pool === undefined) return;
      this.#pools.delete(key);
      await Promise.all(pool.replicas.map((replica) => this.#stop(replica)));
    });
  }

  /** Stops every pool (local mode's shutdown). */
  async stopAll(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#pools.values()].map((pool) => this.delete(pool.spec)));
  }

  async #isReady(replica: Replica): Promise<boolean> {
    if (replica.child === undefined || replica.child.exitCode !== null || replica.stopping) return false;
    const host = this.#options.host ?? "127.0.0.1";
    try {
      const response = await fetch(`http://${host}:${replica.port}/readyz`, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }

  async #converge(pool: Pool): Promise<void> {
    while (pool.replicas.length < pool.desired) {
      pool.replicas.push(await this.#start(pool, pool.replicas.length));
    }
    const surplus = pool.replicas.splice(pool.desired);
    // Highest indexes go first, as a StatefulSet scales down; they drain in parallel.
    await Promise.all(surplus.map((replica) => this.#stop(replica)));
  }

  async #environment(pool: Pool, port: number): Promise<Record<string, string>> {
    const secrets = (await this.#options.secretEnv?.(pool.spec.namespace, pool.spec.secretRefs)) ?? {};
    return {
      ...this.#options.baseEnv,
      ...secrets,
      ...pool.spec.env,
      RELAIS_HOST: this.#options.host ?? "127.0.0.1",
      RELAIS_PORT: String(port),
    };
  }

  async #start(pool: Pool, index: number): Promise<Replica> {
    const host = this.#options.host ?? "127.0.0.1";
    // Replica 0 keeps a port the pool asks for (ingest's API port); the others get free ones.
    const asked = index === 0 ? pool.spec.env.RELAIS_PORT : undefined;
    const port = asked === undefined ? await freePort(host) : Number(asked);
    const replica: Replica = {
      index,
      port,
      child: undefined,
      exited: Promise.resolve(),
      stopping: false,
      restarts: 0,
      startedAt: Date.now(),
      restartTimer: undefined,
    };
    await this.#spawn(pool, replica);
    return replica;
  }

  async #spawn(pool: Pool, replica: Replica): Promise<void> {
    const [file = process.execPath, ...args] = [...(this.#options.wrapper ?? []), ...this.#options.command];
    const env = await this.#environment(pool, replica.port);
    const logDir = this.#options.logDir;
    // The replica writes its log file itself, not through a pipe to this process: if the operator
    // dies, a replica draining on SIGTERM would otherwise die of EPIPE at its next log line, with
    // sends made but not yet recorded.
    const output =
      logDir === undefined
        ? undefined
        : openSync(join(logDir, `${pool.spec.namespace}.${pool.spec.name}-${replica.index}.log`), "a");
    let child: ChildProcess;
    try {
      child = spawn(file, [...args, pool.spec.kind], {
        env,
        // Its own process group: a terminal's Ctrl-C reaches the operator only, which stops the
        // replicas with SIGTERM after it has stopped scaling them.
        detached: true,
        stdio: ["ignore", output ?? "ignore", output ?? "ignore"],
      });
    } finally {
      // The child has its own copy of the descriptor.
      if (output !== undefined) closeSync(output);
    }
    replica.child = child;
    replica.startedAt = Date.now();
    replica.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        if (!replica.stopping && !this.#closing)
          this.#onCrash(pool, replica, code === null ? `signal ${signal ?? "?"}` : `code ${code}`);
      });
    });
    child.once("error", (error) => {
      this.#options.log.error({ err: error, pool: pool.spec.name, replica: replica.index }, "replica failed to start");
    });
  }

  #onCrash(pool: Pool, replica: Replica, how: string): void {
    const healthyAfter = this.#options.healthyAfterMs ?? 60_000;
    if (Date.now() - replica.startedAt > healthyAfter) replica.restarts = 0;
    const base = this.#options.restartBaseMs ?? 500;
    const delay = Math.min(this.#options.restartMaxMs ?? 30_000, base * 2 ** replica.restarts);
    replica.restarts += 1;
    this.#options.log.warn(
      { namespace: pool.spec.namespace, pool: pool.spec.name, replica: replica.index, exit: how, restartInMs: delay },
      "replica exited, restarting",
    );
    replica.restartTimer = setTimeout(() => {
      replica.restartTimer = undefined;
      if (replica.stopping || !pool.replicas.includes(replica)) return;
      void this.#spawn(pool, replica);
    }, delay);
  }

  async #stop(replica: Replica): Promise<void> {
    replica.stopping = true;
    clearTimeout(replica.restartTimer);
    const child = replica.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timeout = this.#options.stopTimeoutMs ?? 15_000;
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, timeout);
      });
      await Promise.race([replica.exited, killed]);
      clearTimeout(timer);
      await replica.exited;
    }
  }
}
