// A server process the harness owns: started, checked for readiness, stopped, killed, restarted.
//
// No process may outlive the harness, also when a test fails or the run is interrupted:
// - children are started through `setpriv --pdeathsig SIGTERM`, so the kernel signals them when
//   the Node process that spawned them dies, even by SIGKILL;
// - they stay in our process group, so Ctrl-C reaches them with everything else;
// - an `exit` hook SIGKILLs any that are still running when Node exits normally.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import type { WriteStream } from "node:fs";
import { ServerNotReadyError, ServerStartError } from "./errors.ts";
import { waitUntil } from "./net.ts";
import { hasTool, toolPath } from "./tools.ts";
import type { Tool } from "./tools.ts";

export interface ProcessSpec {
  /** A short name for messages, e.g. "nats-server". */
  name: string;
  tool: Tool;
  args: readonly string[];
  env?: Record<string, string>;
  /** The working folder: the server's data folder, so its processes can be found by it. */
  cwd?: string;
  /** Where stdout and stderr go; the end of it is quoted when the process fails. */
  logFile: string;
  /** Resolves true once the server serves. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** How long a SIGTERM gets before SIGKILL. */
  stopTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

function lastLines(file: string, count: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-count).join("\n");
  } catch {
    return "(no log)";
  }
}

export class ManagedProcess {
  readonly spec: ProcessSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<string> = Promise.resolve("not started");
  #log: WriteStream | undefined;

  constructor(spec: ProcessSpec) {
    this.spec = spec;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Spawns the process and resolves once it is ready; rejects (and kills it) otherwise. */
  async start(): Promise<void> {
    if (this.running) return;
    installExitHook();
    const command = toolPath(this.spec.tool);
    const [file, args] = hasTool("setpriv")
      ? [toolPath("setpriv"), ["--pdeathsig", "SIGTERM", "--", command, ...this.spec.args]]
      : [command, [...this.spec.args]];
    this.#log = createWriteStream(this.spec.logFile, { flags: "a" });
    const child = spawn(file, args, {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: a terminal's Ctrl-C reaches only the Node process, which can then
      // drain what uses the server before stopping it (`relais local`).
      detached: true,
    });
    this.#child = child;
    live.add(child);
    child.stdout.pipe(this.#log, { end: false });
    child.stderr.pipe(this.#log, { end: false });
    const exitedEarly = new AbortController();
    this.#exited = new Promise((resolve) => {
      const done = (how: string): void => {
        live.delete(child);
        exitedEarly.abort();
        resolve(how);
      };
      child.once("exit", (code, signal) => {
        done(code === null ? `by ${signal ?? "a signal"}` : `with code ${code}`);
      });
      child.once("error", (error) => {
        done(`on spawn error ${error.message}`);
      });
    });
    await this.#awaitReady(exitedEarly.signal);
  }

  async #awaitReady(exited: AbortSignal): Promise<void> {
    const timeoutMs = this.spec.readyTimeoutMs ?? 30_000;
    const reason = await waitUntil(this.spec.ready, { timeoutMs, intervalMs: 50, signal: exited });
    if (reason === "") return;
    if (exited.aborted) {
      const how = await this.#exited;
      throw new ServerStartError(
        this.spec.name,
        `exited ${how}; log ${this.spec.logFile}:\n${lastLines(this.spec.logFile, 15)}`,
      );
    }
    await this.kill();
    throw new ServerNotReadyError(
      this.spec.name,
      timeoutMs,
      `${reason}; log ${this.spec.logFile}:\n${lastLines(this.spec.logFile, 15)}`,
    );
  }

  /** SIGTERM, then SIGKILL after stopTimeoutMs; resolves once the process is gone. */
  async stop(): Promise<void> {
    await this.#signal("SIGTERM", this.spec.stopTimeoutMs ?? 10_000);
  }

  /** SIGKILL at once, as a crash would; resolves once the process is gone. */
  async kill(): Promise<void> {
    await this.#signal("SIGKILL", 0);
  }

  /** Stops (gracefully unless `hard`) and starts again with the same arguments, ports and data. */
  async restart(options: { hard?: boolean } = {}): Promise<void> {
    if (options.hard === true) await this.kill();
    else await this.stop();
    await this.start();
  }

  async #signal(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) {
      this.#closeLog();
      return;
    }
    child.kill(signal);
    if (graceMs > 0) {
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await this.#exited;
      clearTimeout(timer);
    } else {
      await this.#exited;
    }
    this.#closeLog();
  }

  #closeLog(): void {
    this.#log?.end();
    this.#log = undefined;
  }
}
