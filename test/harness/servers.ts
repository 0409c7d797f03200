// NATS (JetStream), Redis and etcd, each on loopback with free ports and its own data folder.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ServerStartError } from "./errors.ts";
import { freePort, tcpExchange } from "./net.ts";
import { ManagedProcess } from "./process.ts";
import type { ProcessSpec } from "./process.ts";

/** A server the harness started; `process` allows stop / kill / restart on the same ports and data. */
export interface Server {
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts the spec built from fresh free ports, retrying with new ports when another process took
 * one between the probe and the bind.
 */
export async function startOnFreePorts<T>(
  portCount: number,
  build: (ports: number[]) => { spec: ProcessSpec; value: T },
): Promise<{ process: ManagedProcess; value: T }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports = await Promise.all(Array.from({ length: portCount }, () => freePort()));
    const { spec, value } = build(ports);
    const process = new ManagedProcess(spec);
    try {
      await process.start();
      return { process, value };
    } catch (error) {
      lastError = error;
      if (!(error instanceof ServerStartError) || !/address already in use|bind/i.test(error.message)) throw error;
    }
  }
  throw lastError;
}

async function httpOk(url: string, body?: RegExp): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
  if (!response.ok) return false;
  return body === undefined || body.test(await response.text());
}

export interface NatsServer extends Server {
  /** nats://127.0.0.1:port */
  readonly url: string;
  /** The monitoring endpoint (varz, jsz, healthz). */
  readonly monitorUrl: string;
  readonly port: number;
}

export async function startNats(dir: string): Promise<NatsServer> {
  await mkdir(join(dir, "jetstream"), { recursive: true });
  const { process, value } = await startOnFreePorts(2, ([port, monitor]) => ({
    value: { port: port ?? 0, monitor: monitor ?? 0 },
    spec: {
      name: "nats-server",
      tool: "nats-server",
      args: [
        "-a",
        "127.0.0.1",
        "-p",
        String(port),
        "-m",
        String(monitor),
        "-js",
        "-sd",
        join(dir, "jetstream"),
        "-n",
        "relais-test",
      ],
      cwd: dir,
      logFile: join(dir, "nats-server.log"),
      ready: () => httpOk(`http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`),
    },
  }));
  return {
    process,
    port: value.port,
    url: `nats://127.0.0.1:${value.port}`,
    monitorUrl: `http://127.0.0.1:${value.monitor}`,
    stop: () => process.stop(),
  };
}

export interface RedisServer extends Server {
  /** redis://127.0.0.1:port */
  readonly url: string;
  readonly port: number;
}

/** Redis with AOF on (appendfsync everysec), as production runs it, so a restart keeps data. */
export async function startRedis(dir: string): Promise<RedisServer> {
  await mkdir(dir, { recursive: true });
  const { process, value: port } = await startOnFreePorts(1, ([port]) => ({
    value: port ?? 0,
    spec: {
      name: "redis-server",
      tool: "redis-server",
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
      ],
      cwd: dir,
      logFile: join(dir, "redis-server.log"),
      ready: async () => (await tcpExchange(port ?? 0, "PING\r\n")).startsWith("+PONG"),
    },
  }));
  return { process, port, url: `redis://127.0.0.1:${port}`, stop: () => process.stop() };
}

export interface EtcdServer extends Server {
  /** http://127.0.0.1:port, for kube-apiserver's --etcd-servers. */
  readonly url: string;
}

export async function startEtcd(dir: string): Promise<EtcdServer> {
  await mkdir(dir, { recursive: true });
  const { process, value: url } = await startOnFreePorts(2, ([client, peer]) => ({
    value: `http://127.0.0.1:${client}`,
    spec: {
      name: "etcd",
      tool: "etcd",
      args: [
        "--name",
        "relais-test",
        "--data-dir",
        join(dir, "data"),
        "--listen-client-urls",
        `http://127.0.0.1:${client}`,
        "--advertise-client-urls",
        `http://127.0.0.1:${client}`,
        "--listen-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-cluster",
        `relais-test=http://127.0.0.1:${peer}`,
        // A test cluster's data is thrown away: skip fsync as envtest does, for speed.
        "--unsafe-no-fsync",
        "--log-level",
        "warn",
      ],
      cwd: dir,
      logFile: join(dir, "etcd.log"),
      ready: () => httpOk(`http://127.0.0.1:${client}/health`, /"health":\s*"true"/),
    },
  }));
  return { process, url, stop: () => process.stop() };
}
