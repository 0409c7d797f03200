// Local mode: the operator over a folder of manifests, with pools as child processes of this CLI,
// every email Sender pointed at a local SMTP sink, a demo API key, demo profiles and events, and
// progress on the terminal. The servers (NATS, Redis, the sink, the push endpoint) are started by
// the caller, so this module needs nothing from the test harness.
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { SenderSpec } from "#crds";
import { connectNats, connectRedis, createLogger } from "#runtime";
import type { Logger } from "#runtime";
import { runOperator } from "../main.ts";
import { ProcessPoolRunner } from "../pools/process.ts";
import { API_KEY_LABEL } from "../reconcilers/index.ts";
import type { SharedPoolsConfig } from "../reconcilers/index.ts";
import { FolderSource } from "../sources/folder.ts";
import type { ManifestProblem } from "../sources/folder.ts";
import { keyString } from "../types.ts";
import type { ObjectKey, StatusUpdate } from "../types.ts";
import { loadLocalConfig } from "./config.ts";
import type { LocalConfig } from "./config.ts";
import { demoEvents, demoProfiles, expectedReminders, loadDemo } from "./demo.ts";
import { Progress } from "./progress.ts";

export interface LocalServices {
  natsUrl: string;
  redisUrl: string;
  /** Where every email Sender delivers in local mode. */
  smtp: { host: string; port: number; received: () => number };
  /** The Web Push endpoint and the file of its CA certificate (for the deliver pools). */
  push: { url: string; caFile: string; received: () => number };
}

export interface LocalOptions {
  /** The folder of manifests. */
  dir: string;
  /** RELAIS_* settings (see docs/configuration.md) and RELAIS_SECRET_* values. */
  env: Record<string, string | undefined>;
  services: LocalServices;
  /** What starts a pool process, before its kind: [process.execPath, "<checkout>/bin/relais.ts"]. */
  command: readonly string[];
  /** Put before the command (setpriv --pdeathsig), so replicas die with this process. */
  wrapper?: readonly string[];
  out: NodeJS.WritableStream;
}

export const LOCAL_NAMESPACE = "default";
const SHARED_NAMESPACE = "relais-system";
const API_KEY_ID = "local";

async function portOrFree(preferred: number): Promise<number> {
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const server = createServer();
      server.once("error", () => {
        resolve(undefined);
      });
      server.listen(port, "127.0.0.1", () => {
        const chosen = (server.address() as AddressInfo).port;
        server.close(() => {
          resolve(chosen);
        });
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0)) ?? 0;
}

function pointAtSink(smtp: LocalServices["smtp"]): (spec: SenderSpec) => SenderSpec {
  return (spec) =>
    spec.email === undefined
      ? spec
      : {
          ...spec,
          email: {
            ...spec.email,
            transport: { smtp: { host: smtp.host, port: smtp.port, tls: "none", maxConnections: 5 } },
          },
        };
}

class Terminal {
  readonly #out: NodeJS.WritableStream;
  readonly #shown = new Map<string, string>();

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  say(line = ""): void {
    this.#out.write(`${line}\n`);
  }

  status(key: ObjectKey, status: StatusUpdate): void {
    const ready = status.conditions.find((condition) => condition.type === "Ready");
    if (ready === undefined) return;
    const summary = `${ready.status}:${ready.reason}:${ready.message}`;
    if (this.#shown.get(keyString(key)) === summary) return;
    this.#shown.set(keyString(key), summary);
    const mark = ready.status === "True" ? "ready" : `NOT READY (${ready.reason})`;
    this.say(`  ${key.kind} ${key.namespace}/${key.name}: ${mark}: ${ready.message}`);
  }

  problems(problems: ManifestProblem[]): void {
    for (const problem of problems) {
      const what =
        problem.name === undefined ? `document ${problem.document + 1}` : `${problem.kind ?? "?"} ${problem.name}`;
      for (const issue of problem.issues) this.say(`  ${problem.file}: ${what}: ${issue.path}: ${issue.message}`);
    }
  }
}

interface Running {
  config: Readonly<LocalConfig>;
  source: FolderSource;
  pools: ProcessPoolRunner;
  nc: NatsConnection;
  terminal: Terminal;
  log: Logger;
  ingestUrl: string;
  apiKey: string;
  services: LocalServices;
  signal: AbortSignal;
}

async function until(check: () => Promise<boolean>, signal: AbortSignal, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted && Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

/** Waits for the pools and the automations, then sends the demo data through the ingest API. */
async function runDemo(running: Running): Promise<void> {
  const { source, pools, terminal, signal } = running;
  const automationsReady = async (): Promise<boolean> => {
    const automations = await source.list("Automation");
    return automations.every((item) => item.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
  };
  const poolsReady = async (): Promise<boolean> => {
    const ingest = await pools.state({ namespace: SHARED_NAMESPACE, name: "ingest" });
    const engage = await pools.state({ namespace: SHARED_NAMESPACE, name: "engage" });
    return (ingest?.readyReplicas ?? 0) > 0 && (engage?.readyReplicas ?? 0) > 0;
  };
  // Events sent before the automations are in engage would match nothing.
  if (!(await until(async () => (await poolsReady()) && (await automationsReady()), signal, 60_000))) {
    if (!signal.aborted) terminal.say("relais: demo skipped: the pools or automations did not become ready in 60 s");
    return;
  }
  const profiles = demoProfiles(running.config.demoProfiles);
  const events = demoEvents(profiles, Date.now());
  const client = { baseUrl: running.ingestUrl, apiKey: running.apiKey };
  // The API key reaches ingest through the config KV: retry while it is not there yet.
  let lastError = "";
  const loaded = await until(
    async () => {
      try {
        await loadDemo(client, profiles, events);
        return true;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
        return false;
      }
    },
    signal,
    30_000,
  );
  if (!loaded) {
    if (!signal.aborted) terminal.say(`relais: demo data refused: ${lastError}`);
    return;
  }
  terminal.say(
    `relais: demo: ${profiles.length} profiles and ${events.length} events sent; ` +
      `${expectedReminders(events)} appointment reminders are due within a minute.`,
  );
}

async function printEndpoints(running: Running, operatorUrl: string): Promise<void> {
  const { pools, terminal, signal } = running;
  await until(
    async () =>
      pools.pools().length > 0 && (await pools.state(pools.pools()[0] ?? { namespace: "", name: "" })) !== undefined,
    signal,
    30_000,
  );
  terminal.say("");
  terminal.say(`  ingest API       ${running.ingestUrl}   (API key for this run: ${running.apiKey})`);
  terminal.say(`  operator         ${operatorUrl}/metrics`);
  for (const spec of pools.pools()) {
    for (const replica of pools.replicas(spec)) {
      terminal.say(`  ${`${spec.name}-${replica.index}`.padEnd(16)} ${replica.url}/metrics`);
    }
  }
  terminal.say(`  status files     ${running.source.statusDir}   (pool logs in logs/)`);
  terminal.say("");
}

/** Automations' waiting instances, read from the engage pool's /metrics (what has not fired yet). */
async function waitingLines(running: Running): Promise<string[]> {
  const url = running.pools.replicas({ namespace: SHARED_NAMESPACE, name: "engage" })[0]?.url;
  if (url === undefined) return [];
  const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(1000) })
    .then((response) => response.text())
    .catch(() => "");
  const pattern = /^relais_engage_automation_waiting_instances\{namespace="([^"]+)",automation="([^"]+)"\} (\d+)$/gm;
  return [...text.matchAll(pattern)]
    .filter((match) => match[3] !== "0")
    .map((match) => `Automation ${match[1] ?? ""}/${match[2] ?? ""}: ${match[3] ?? ""} waiting for their time`);
}

function printProgress(running: Running, progress: Progress): () => Promise<void> {
  let last = "";
  return async () => {
    const received = running.services.smtp.received() + running.services.push.received();
    const lines = [...progress.lines(), ...(await waitingLines(running))];
    const text = [
      `relais: ${received} message${received === 1 ? "" : "s"} received by the local SMTP sink and push endpoint`,
      ...lines.map((line) => `  ${line}`),
    ].join("\n");
    if (text === last) return;
    last = text;
    running.terminal.say(text);
  };
}

function describeOverride(terminal: Terminal, smtp: LocalServices["smtp"]): void {
  terminal.say(`relais: local mode sends every email Sender's mail to the SMTP sink at ${smtp.host}:${smtp.port}`);
  terminal.say("        (their smtp / sparkpost transport is replaced; DKIM and the rest apply as written).");
}

/** Runs local mode until `signal` aborts, then stops the pools and resolves. */
export async function runLocal(options: LocalOptions, signal: AbortSignal): Promise<void> {
  const config = loadLocalConfig(options.env);
  const terminal = new Terminal(options.out);
  const apiKey = `${API_KEY_ID}.${randomBytes(24).toString("base64url")}`;
  const source = await FolderSource.open({
    dir: options.dir,
    env: options.env,
    defaultNamespace: LOCAL_NAMESPACE,
    secrets: [
      {
        namespace: LOCAL_NAMESPACE,
        name: "relais-local-api-key",
        labels: { [API_KEY_LABEL]: "true" },
        data: { key: apiKey },
      },
    ],
    onProblems: (problems) => {
      terminal.problems(problems);
    },
    onStatus: (key, status) => {
      terminal.status(key, status);
    },
  });
  const logDir = join(source.statusDir, "logs");
  await mkdir(logDir, { recursive: true });
  // The terminal is for summaries; the operator's own log goes next to the pools' logs.
  const log = createLogger({
    name: "relais-operator",
    level: config.logLevel,
    destination: createWriteStream(join(logDir, "operator.log"), { flags: "a" }),
  });
  const [ingestPort, operatorPort] = [await portOrFree(config.ingestPort), await portOrFree(config.operatorPort)];
  const ingestUrl = `http://127.0.0.1:${ingestPort}`;
  const tokenSecret = config.tokenSecret ?? randomBytes(32).toString("base64url");
  const common = {
    RELAIS_NATS_URL: options.services.natsUrl,
    RELAIS_REDIS_URL: options.services.redisUrl,
    RELAIS_LOG_LEVEL: config.logLevel,
  };
  const pools = new ProcessPoolRunner({
    command: options.command,
    ...(options.wrapper !== undefined && { wrapper: options.wrapper }),
    baseEnv: { PATH: options.env.PATH ?? "" },
    secretEnv: (namespace, names) => source.secretEnv(namespace, names),
    logDir,
    log,
  });
  const shared: SharedPoolsConfig = {
    namespace: SHARED_NAMESPACE,
    ingest: {
      minReplicas: 1,
      maxReplicas: 1,
      targetLagPerReplica: 1000,
      env: { ...common, RELAIS_TOKEN_SECRET: tokenSecret, RELAIS_PORT: String(ingestPort) },
    },
    engage: { minReplicas: 1, maxReplicas: 1, targetLagPerReplica: 1000, env: common },
  };
  const nc = await connectNats(options.services.natsUrl, "relais-local");
  const redis = connectRedis(options.services.redisUrl, "relais-local", (error) => {
    log.warn({ err: error }, "redis connection error");
  });
  describeOverride(terminal, options.services.smtp);
  const progress = new Progress();
  progress.start(nc);
  const running: Running = {
    config,
    source,
    pools,
    nc,
    terminal,
    log,
    ingestUrl,
    apiKey,
    services: options.services,
    signal,
  };
  const operatorUrl = `http://127.0.0.1:${operatorPort}`;
  const tick = printProgress(running, progress);
  const timer = setInterval(() => void tick(), config.progressIntervalMs);
  try {
    await Promise.all([
      source.run(signal),
      runOperator(
        {
          source,
          pools,
          nc,
          log,
          deliverEnv: {
            ...common,
            RELAIS_TOKEN_SECRET: tokenSecret,
            RELAIS_PUBLIC_BASE_URL: ingestUrl,
            RELAIS_CA_FILE: options.services.push.caFile,
          },
          shared,
          redis,
          senderOverride: pointAtSink(options.services.smtp),
          autoscaleIntervalMs: config.autoscaleIntervalMs,
          stabilizationWindowMs: config.stabilizationWindowMs,
          statusIntervalMs: config.statusIntervalMs,
          ops: { host: "127.0.0.1", port: operatorPort },
        },
        signal,
      ),
      printEndpoints(running, operatorUrl).then(() => (config.demo ? runDemo(running) : undefined)),
    ]);
  } finally {
    clearInterval(timer);
    await tick();
    terminal.say("relais: stopping the pools...");
    await pools.stopAll();
    progress.stop();
    await nc.drain();
    await redis.quit();
  }
}
