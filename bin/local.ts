// `relais local [dir]`: the whole product on this machine. Starts NATS and Redis (as the test
// harness does), an SMTP sink and a Web Push endpoint, makes demo keys for the Secrets the
// manifests reference and nobody provided, then runs the operator's local mode until Ctrl-C.
import { stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import webpush from "web-push";
import { generateDkimKey, hasTool, startSmtpSink, startStack, startWebPushEndpoint, toolPath } from "#harness";
import { loadManifests, runLocal } from "#operator";
import type { RelaisResource } from "#crds";
import { RelaisError, secretEnvName } from "#runtime";

export interface LocalCommandOptions {
  signal: AbortSignal;
  dir: string | undefined;
  env: Record<string, string | undefined>;
  out: NodeJS.WritableStream;
}

const cli = new URL("./relais.ts", import.meta.url).pathname;
const defaultDir = new URL("../examples", import.meta.url).pathname;

interface DemoSecrets {
  env: Record<string, string>;
  /** "<selector>._domainkey.<domain>" → TXT record, for the sink to verify DKIM signatures. */
  dkimKeys: Record<string, string>;
  made: string[];
}

/** Keys for the DKIM and VAPID Secrets the Senders reference that neither the folder nor the environment holds. */
async function demoSecrets(dir: string, env: LocalCommandOptions["env"]): Promise<DemoSecrets> {
  const loaded = await loadManifests(dir);
  const provided = (secret: string, key: string): boolean =>
    env[secretEnvName(secret, key)] !== undefined ||
    loaded.secrets.some((item) => item.name === secret && item.data[key] !== undefined);
  const result: DemoSecrets = { env: {}, dkimKeys: {}, made: [] };
  const senders = loaded.resources.filter(
    (item): item is Extract<RelaisResource, { kind: "Sender" }> => item.kind === "Sender",
  );
  for (const sender of senders) {
    const dkim = sender.spec.email?.dkim;
    if (dkim !== undefined && !provided(dkim.privateKeySecretRef.name, dkim.privateKeySecretRef.key)) {
      const key = generateDkimKey();
      result.env[secretEnvName(dkim.privateKeySecretRef.name, dkim.privateKeySecretRef.key)] = key.privateKeyPem;
      result.dkimKeys[`${dkim.selector}._domainkey.${dkim.domain}`] = key.txtRecord;
      result.made.push(`${dkim.privateKeySecretRef.name} (DKIM key for ${dkim.domain})`);
    }
    const vapid = sender.spec.webpush?.vapid.keysSecretRef.name;
    if (vapid !== undefined && !provided(vapid, "privateKey")) {
      const keys = webpush.generateVAPIDKeys();
      result.env[secretEnvName(vapid, "publicKey")] = keys.publicKey;
      result.env[secretEnvName(vapid, "privateKey")] = keys.privateKey;
      result.made.push(`${vapid} (VAPID keys)`);
    }
  }
  return result;
}

export async function runLocalCommand(options: LocalCommandOptions): Promise<number> {
  const dir = resolve(options.dir ?? defaultDir);
  const isDir = await stat(dir).then(
    (info) => info.isDirectory(),
    () => false,
  );
  if (!isDir) throw new RelaisError("RELAIS_CLI_USAGE", `local: "${dir}" is not a folder of manifests`);
  const say = (line: string): void => void options.out.write(`${line}\n`);
  const secrets = await demoSecrets(dir, options.env);
  say("relais: starting NATS, Redis, an SMTP sink and a Web Push endpoint on loopback...");
  const stack = await startStack({ components: ["nats", "redis"] });
  try {
    const sink = await startSmtpSink({ tls: "none", dkimKeys: secrets.dkimKeys });
    const push = await startWebPushEndpoint();
    const caFile = join(stack.dir, "push-ca.pem");
    await writeFile(caFile, push.ca);
    say("");
    say(`  NATS JetStream   ${stack.nats?.url ?? ""}   (monitoring ${stack.nats?.monitorUrl ?? ""})`);
    say(`  Redis            ${stack.redis?.url ?? ""}`);
    say(`  SMTP sink        127.0.0.1:${sink.port}`);
    say(`  Web Push         ${push.url}`);
    say(`  manifests        ${dir}`);
    if (secrets.made.length > 0) say(`  demo Secrets     ${secrets.made.join(", ")}`);
    say("");
    try {
      await runLocal(
        {
          dir,
          env: { ...options.env, ...secrets.env },
          services: {
            natsUrl: stack.nats?.url ?? "",
            redisUrl: stack.redis?.url ?? "",
            smtp: { host: sink.host, port: sink.port, received: () => sink.received.length },
            push: { url: push.url, caFile, received: () => push.received.length },
          },
          command: [process.execPath, cli],
          ...(hasTool("setpriv") && { wrapper: [toolPath("setpriv"), "--pdeathsig", "SIGTERM", "--"] }),
          out: options.out,
        },
        options.signal,
      );
    } finally {
      await Promise.allSettled([sink.stop(), push.stop()]);
    }
  } finally {
    await stack.stop();
  }
  say("relais: stopped.");
  return 0;
}
