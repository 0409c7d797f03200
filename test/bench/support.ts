// Helpers shared by the benchmark scripts: settings, versions, and CPU accounting from /proc.
import { execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/** How to run `script` again with the same BENCH_* settings. */
export function commandLine(script: string): string {
  const env = Object.entries(process.env)
    .filter(([name]) => name.startsWith("BENCH_"))
    .map(([name, value]) => `${name}=${value ?? ""} `)
    .join("");
  return `${env}node ${relative(process.cwd(), script)}`;
}

/** User + system CPU seconds a process has used so far (Linux /proc), or undefined. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** An integer BENCH_* setting within `range`, or `fallback` when unset. */
export function numberSetting(name: string, fallback: number, range: { min: number; max: number }): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < range.min || value > range.max)
    throw new Error(`${name} must be an integer from ${range.min} to ${range.max}, got "${raw}"`);
  return value;
}

export function packageVersion(name: string): string {
  try {
    const file = join(import.meta.dirname, "..", "..", "node_modules", name, "package.json");
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

let clockTicks: number | undefined;
/** The unit of /proc CPU times (USER_HZ, nearly always 100). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * The next IPC message of `type` from `child` (a bench script run in another process); rejects
 * when the child exits first or `timeoutMs` passes.
 */
export async function nextMessage<M extends { type: string }, T extends M["type"]>(
  child: ChildProcess,
  type: T,
  timeoutMs: number,
): Promise<Extract<M, { type: T }>> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (message: unknown): void => {
      if (typeof message === "object" && message !== null && (message as { type?: unknown }).type === type) {
        cleanup();
        resolve(message as Extract<M, { type: T }>);
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(new Error(`child ${String(child.pid)} exited (${String(code ?? signal)}) before "${type}"`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no "${type}" from child ${String(child.pid)} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      resolve();
    });
  });
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** "name pid" of a process, from its command line: "nats-server 123", "node deliver.ts sink 456". */
function processLabel(pid: number): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const [program = "", ...args] = argv.map((arg) => arg.slice(arg.lastIndexOf("/") + 1));
    const words = program === "node" ? [program, ...args.filter((arg) => !arg.startsWith("{")).slice(0, 2)] : [program];
    return `${words.join(" ")} ${pid}`;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in bytes, or undefined once it is gone. */
function rssOf(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** `root` and every process under it, from the parent pids in /proc. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(parent, [...(children.get(parent) ?? []), pid]);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i] ?? -1) ?? []));
  return tree;
}

/**
 * Samples the RSS of `root` and of every process under it (servers, children) until stopped;
 * `stop` gives the peak of each in MiB, by "name pid".
 */
export function treeRssSampler(root: number, intervalMs = 250): { stop: () => Record<string, number> } {
  const peaks = new Map<number, { label: string; bytes: number }>();
  const sample = (): void => {
    for (const pid of processTree(root)) {
      const bytes = rssOf(pid);
      if (bytes === undefined) continue;
      const known = peaks.get(pid);
      if (known !== undefined) known.bytes = Math.max(known.bytes, bytes);
      else peaks.set(pid, { label: processLabel(pid) ?? `pid ${pid}`, bytes });
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      const result: Record<string, number> = {};
      for (const { label, bytes } of peaks.values()) result[label] = Math.round(bytes / 2 ** 20);
      return result;
    },
  };
}
