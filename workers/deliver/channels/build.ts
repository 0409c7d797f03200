// Builds the Channel a Sender's spec describes, resolving its Secrets. A missing Secret or key is
// an outcome (the pool waits and reports it), not a crash.
import type { SenderSpec } from "#crds";
import type { Channel } from "../channel.ts";
import type { SecretSource } from "../secrets.ts";
import { smtpChannel } from "./email/smtp.ts";
import { sparkPostChannel } from "./email/sparkpost.ts";
import { webPushChannel } from "./webpush/webpush.ts";

export type ChannelBuild = { kind: "built"; channel: Channel } | { kind: "secretMissing"; secret: string; key: string };

export interface ChannelBuildOptions {
  /** PEM of extra CAs trusted for SMTP TLS and push services. */
  ca?: string | undefined;
}

/** Internal: unwinds a build whose Secret is missing; turned into a result before it leaves. */
class MissingSecret extends Error {
  readonly secret: string;
  readonly key: string;
  constructor(secret: string, key: string) {
    super(`secret ${secret} has no key ${key}`);
    this.secret = secret;
    this.key = key;
  }
}

async function required(secrets: SecretSource, secret: string, key: string): Promise<string> {
  const value = await secrets.get(secret, key);
  if (value === undefined || value === "") throw new MissingSecret(secret, key);
  return value.trim();
}

async function emailChannel(
  email: NonNullable<SenderSpec["email"]>,
  secrets: SecretSource,
  options: ChannelBuildOptions,
  transactional: boolean,
): Promise<Channel> {
  const { smtp, sparkpost } = email.transport;
  if (sparkpost !== undefined) {
    const apiKey = await required(secrets, sparkpost.apiKeySecretRef.name, sparkpost.apiKeySecretRef.key);
    return sparkPostChannel({ endpoint: sparkpost.endpoint, apiKey, transactional });
  }
  if (smtp === undefined) throw new Error("a validated Sender has exactly one transport");
  const auth =
    smtp.authSecretRef === undefined
      ? undefined
      : {
          user: await required(secrets, smtp.authSecretRef.name, "username"),
          pass: await required(secrets, smtp.authSecretRef.name, "password"),
        };
  const dkim =
    email.dkim === undefined
      ? undefined
      : {
          domainName: email.dkim.domain,
          keySelector: email.dkim.selector,
          privateKey: await required(secrets, email.dkim.privateKeySecretRef.name, email.dkim.privateKeySecretRef.key),
        };
  return smtpChannel({
    host: smtp.host,
    port: smtp.port,
    tls: smtp.tls,
    maxConnections: smtp.maxConnections,
    auth,
    dkim,
    ca: options.ca,
  });
}

export async function buildChannel(
  spec: SenderSpec,
  secrets: SecretSource,
  options: ChannelBuildOptions = {},
): Promise<ChannelBuild> {
  try {
    if (spec.email !== undefined)
      return { kind: "built", channel: await emailChannel(spec.email, secrets, options, false) };
    if (spec.webpush !== undefined) {
      const ref = spec.webpush.vapid.keysSecretRef.name;
      const channel = webPushChannel({
        subject: spec.webpush.vapid.subject,
        publicKey: await required(secrets, ref, "publicKey"),
        privateKey: await required(secrets, ref, "privateKey"),
        ca: options.ca,
      });
      return { kind: "built", channel };
    }
    throw new Error("a validated Sender has its channel's block");
  } catch (error) {
    if (error instanceof MissingSecret) return { kind: "secretMissing", secret: error.secret, key: error.key };
    throw error;
  }
}
