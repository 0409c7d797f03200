// Where the harness finds its binaries: a folder the user names (official downloads), then the
// provisioned cache (scripts/provision-tools.sh), then PATH.
import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { ToolMissingError } from "./errors.ts";

export const Tools = {
  natsServer: "nats-server",
  nats: "nats",
  redisServer: "redis-server",
  etcd: "etcd",
  kubeApiserver: "kube-apiserver",
  kubeControllerManager: "kube-controller-manager",
  kubectl: "kubectl",
  helm: "helm",
  kubeconform: "kubeconform",
  promtool: "promtool",
  prometheus: "prometheus",
  grafanaDashboardCheck: "grafana-dashboard-check",
  openssl: "openssl",
  setpriv: "setpriv",
} as const;
export type Tool = (typeof Tools)[keyof typeof Tools];

/** The provisioned tools' bin folder, as scripts/provision-tools.sh lays it out. */
export function provisionedBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME ?? join(homedir(), ".cache");
  return join(env.RELAIS_TOOLS_DIR ?? join(cache, "relais", "tools"), "bin");
}

function searchPath(env: NodeJS.ProcessEnv): string[] {
  const dirs = [env.RELAIS_BIN_DIR, provisionedBinDir(env), ...(env.PATH ?? "").split(delimiter)];
  return dirs.filter((dir): dir is string => dir !== undefined && dir !== "");
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const resolved = new Map<Tool, string>();

/** The absolute path of `tool`; throws ToolMissingError (RELAIS_TOOL_MISSING) naming where it looked. */
export function toolPath(tool: Tool, env: NodeJS.ProcessEnv = process.env): string {
  const cached = resolved.get(tool);
  if (cached !== undefined) return cached;
  const dirs = searchPath(env);
  for (const dir of dirs) {
    const candidate = join(dir, tool);
    if (isExecutable(candidate)) {
      resolved.set(tool, candidate);
      return candidate;
    }
  }
  throw new ToolMissingError(tool, dirs.length > 4 ? [...dirs.slice(0, 2), "PATH"] : dirs);
}

/** Whether `tool` can be found, for tests that skip with a reason rather than fail. */
export function hasTool(tool: Tool): boolean {
  try {
    toolPath(tool);
    return true;
  } catch {
    return false;
  }
}
