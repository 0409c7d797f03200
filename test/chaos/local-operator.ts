// Local mode's operator (runLocal: a folder of manifests, pools as child processes) over servers a
// chaos test owns: its NATS, Redis and SMTP sink. `relais local` starts its own servers and takes
// them down with it; here they outlive the operator, so a test can SIGKILL this process, restart
// nats-server or redis-server, and start it again on the same data.
//
// node test/chaos/local-operator.ts local <dir>, with RELAIS_CHAOS_NATS_URL, RELAIS_CHAOS_REDIS_URL
// and RELAIS_CHAOS_SMTP_PORT, and local mode's own RELAIS_* settings (docs/configuration.md).
// The pools are started through `setpriv --pdeathsig SIGTERM`, as `relais local` starts them: when
// this process dies, even by SIGKILL, they get SIGTERM and drain.
import { hasTool, toolPath } from "#harness";
import { runLocal } from "#operator";
import { abortOnSignals } from "#runtime";

const cli = new URL("../../bin/relais.ts", import.meta.url).pathname;

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`local-operator: ${name} is required`);
  return value;
}

const dir = process.argv[3];
if (dir === undefined) throw new Error("local-operator: usage: local-operator.ts local <dir>");
const signal = abortOnSignals();
await runLocal(
  {
    dir,
    env: process.env,
    services: {
      natsUrl: required("RELAIS_CHAOS_NATS_URL"),
      redisUrl: required("RELAIS_CHAOS_REDIS_URL"),
      smtp: { host: "127.0.0.1", port: Number(required("RELAIS_CHAOS_SMTP_PORT")), received: () => 0 },
      // No Web Push Sender here: an empty CA file is left unset for the deliver pools.
      push: { url: "", caFile: "", received: () => 0 },
    },
    command: [process.execPath, cli],
    ...(hasTool("setpriv") && { wrapper: [toolPath("setpriv"), "--pdeathsig", "SIGTERM", "--"] }),
    out: process.stdout,
  },
  signal,
);
