// Helpers shared by the benchmark scripts: settings, versions, and CPU accounting from /proc.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
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
