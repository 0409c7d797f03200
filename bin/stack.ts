// `relais stack`: bring up the real servers and say how to reach them.
import { Components, startStack } from "#harness";
import type { Component } from "#harness";
import { RelaisError, untilAborted } from "#runtime";

export interface StackCommandOptions {
  signal: AbortSignal;
  /** Comma-separated components; all when absent. */
  only: string | undefined;
  out: NodeJS.WritableStream;
}

export function parseComponents(only: string | undefined): Component[] {
  const all = Object.values(Components);
  if (only === undefined) return all;
  const names = only
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  for (const name of names) {
    if (!(all as string[]).includes(name)) {
      throw new RelaisError("RELAIS_CLI_USAGE", `--only: unknown component "${name}" (allowed: ${all.join(", ")})`);
    }
  }
  return names as Component[];
}

export async function runStack(options: StackCommandOptions): Promise<number> {
  const components = parseComponents(options.only);
  const say = (line: string): void => void options.out.write(`${line}\n`);
  say(`relais: starting ${components.join(", ")} on loopback...`);
  const stack = await startStack({ components });
  try {
    say("");
    if (stack.nats) say(`  NATS JetStream   ${stack.nats.url}   (monitoring ${stack.nats.monitorUrl})`);
    if (stack.redis) say(`  Redis            ${stack.redis.url}`);
    if (stack.kube) {
      say(`  kube-apiserver   ${stack.kube.server}   (etcd ${stack.kube.etcd.url}, with kube-controller-manager)`);
      say(`  kubectl:         export KUBECONFIG=${stack.kube.kubeconfig}`);
    }
    say(`  data and logs:   ${stack.dir}`);
    say("");
    say("Press Ctrl-C to stop; everything started here stops with it.");
    await untilAborted(options.signal);
    say("relais: stopping...");
  } finally {
    await stack.stop();
  }
  return 0;
}
