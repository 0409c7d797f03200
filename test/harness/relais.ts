// Runs a `relais` command (deliver, engage, ingest, ...) as its own process, the way a pool runs
// in a cluster: killed with the test, and with the test process itself through setpriv, so a chaos
// test can SIGKILL it without leaving anything behind.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import type { TestContext } from "node:test";
import { defer } from "./context.ts";
import { freePort } from "./net.ts";
import { hasTool, toolPath } from "./tools.ts";

const cli = new URL("../../bin/relais.ts", import.meta.url).pathname;

export interface RelaisProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:<port> of its /metrics, /healthz and /readyz (or its API, for ingest). */
  baseUrl: string;
  /** Resolves with how the process ended: "with code 0", "by SIGKILL". */
  exited: Promise<string>;
  /** The last 4,000 characters of its stdout and stderr, for failure messages. */
  output(): string;
}

export interface RelaisProcessOptions {
  command: "ingest" | "engage" | "deliver" | "operator" | "local";
  /** Arguments after the command, e.g. the folder of `local`. */
  args?: string[];
  /**
   * The script Node runs instead of bin/relais.ts, with the same arguments (a test's own entry
   * point over the product's API, e.g. local mode over servers the test owns).
   */
  entry?: string;
  /** A name for messages, e.g. "replica-0". */
  name: string;
  /** RELAIS_* variables; RELAIS_HOST and RELAIS_PORT are set to a free loopback port. */
  env: Record<string, string>;
}

/**
 * Spawns the process; it is killed when `owner` ends: a test (its teardown), or, outside node:test
 * (a benchmark or soak script), a function that registers the teardown.
 */
export async function spawnRelais(
  owner: TestContext | ((teardown: () => void) => void),
  options: RelaisProcessOptions,
): Promise<RelaisProcess> {
  const port = await freePort();
  const command = [process.execPath, options.entry ?? cli, options.command, ...(options.args ?? [])];
  const [file = process.execPath, ...args] = hasTool("setpriv")
    ? [toolPath("setpriv"), "--pdeathsig", "SIGKILL", "--", ...command]
    : command;
  const child = spawn(file, args, {
    env: { PATH: process.env.PATH ?? "", ...options.env, RELAIS_HOST: "127.0.0.1", RELAIS_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const teardown = (): void => void child.kill("SIGKILL");
  if (typeof owner === "function") owner(teardown);
  else defer(owner, teardown);
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => {
      resolve(code === null ? `by ${signal ?? "a signal"}` : `with code ${code}`);
    });
  });
  if (child.pid === undefined) throw new Error(`${options.name} did not spawn: ${output}`);
  return {
    name: options.name,
    child,
    pid: child.pid,
    baseUrl: `http://127.0.0.1:${port}`,
    exited,
    output: () => output,
  };
}

/** Resolves with `outcome`'s value (e.g. a RelaisProcess's `exited`), or with a note once `ms` passed. */
export async function within(outcome: Promise<string>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(resolve, ms, `not within ${ms} ms`);
  });
  try {
    return await Promise.race([outcome, late]);
  } finally {
    clearTimeout(timer);
  }
}
