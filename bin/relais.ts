#!/usr/bin/env node
// The one `relais` CLI: its first argument selects the process, so one image serves every pool.
//
// Only Node's own modules are imported statically: the compile cache must be on before the first
// of ours is compiled (a static import is compiled before this file runs). With the cache, a pool
// process that restarts — after a crash, or scaling from zero — compiles nothing it compiled
// before: about a third less time to ready on the 2-core machine. NODE_COMPILE_CACHE chooses the
// directory (default: the OS temporary directory, an emptyDir in the pools' Deployments); an
// unwritable one only turns the cache off.
import { enableCompileCache } from "node:module";
import { parseArgs } from "node:util";

enableCompileCache();
const { abortOnSignals, isRelaisError } = await import("#runtime");

const usage = `Usage: relais <command> [options]

Commands:
  local [dir]     run Relais on this machine from a folder of manifests (default: examples/):
                  NATS, Redis, an SMTP sink, a Web Push endpoint, the operator and its pools
  stack           start every real server the tests use (NATS, Redis, etcd, kube-apiserver,
                  kube-controller-manager) and print how to reach them, until Ctrl-C
  operator        reconcile Sender, Campaign, Automation and SendPolicy resources in a cluster
                  into worker pools (RELAIS_* environment: see docs/configuration.md)
  ingest          serve the Profiles & Data API (RELAIS_* environment: see docs/configuration.md)
  engage          run Automations (RELAIS_* environment: see docs/configuration.md)
  deliver         run one Sender's delivery pool (RELAIS_NAMESPACE, RELAIS_SENDER: see docs/configuration.md)

Options:
  --only a,b      with stack: start only these of nats, redis, kube
  -h, --help      show this help
`;

const Commands = ["local", "stack", "operator", "ingest", "engage", "deliver"] as const;
type Command = (typeof Commands)[number];

function isCommand(value: string | undefined): value is Command {
  return (Commands as readonly (string | undefined)[]).includes(value);
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { help: { type: "boolean", short: "h" }, only: { type: "string" } },
  });
  const [command, ...rest] = positionals;
  if (values.help === true || command === undefined) {
    process.stdout.write(usage);
    return values.help === true ? 0 : 2;
  }
  if (!isCommand(command)) {
    process.stderr.write(`relais: unknown command "${command}"\n\n${usage}`);
    return 2;
  }
  const signal = abortOnSignals();
  switch (command) {
    // Each command loads only its own part: a pool restarts in about half the time, and the image
    // (production dependencies only) runs every command but `stack` and `local`, which start the
    // test harness's servers.
    case "stack":
      return (await import("./stack.ts")).runStack({ signal, only: values.only, out: process.stdout });
    case "local":
      return (await import("./local.ts")).runLocalCommand({
        signal,
        dir: rest[0],
        env: process.env,
        out: process.stdout,
      });
    case "ingest":
      await (await import("#ingest")).runIngest(process.env, signal);
      return 0;
    case "deliver":
      await (await import("#deliver")).runDeliver(process.env, signal);
      return 0;
    case "engage":
      await (await import("#engage")).runEngage(process.env, signal);
      return 0;
    case "operator":
      await (await import("#operator")).runClusterOperator(process.env, signal);
      return 0;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (isRelaisError(error)) process.stderr.write(`relais: ${error.code}: ${error.message}\n`);
    else console.error(error);
    process.exit(1);
  },
);
