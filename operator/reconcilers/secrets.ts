// The Secrets a Sender references and the keys each must hold. The check reports the first
// problem by Secret, key and field, never a value.
import { createHash, createPrivateKey } from "node:crypto";
import type { SenderSpec } from "#crds";
import type { ResourceSource } from "../types.ts";

export interface SecretNeed {
  secret: string;
  key: string;
  /** The field of the Sender that references it. */
  field: string;
  /** Checks the value's form; returns what is wrong, or undefined. */
  check?: (value: string) => string | undefined;
}

/** Every key name a Relais resource may reference, for sources that cannot list a Secret's keys. */
export const KnownSecretKeys = ["username", "password", "apiKey", "privateKey", "publicKey", "key"] as const;

function pemPrivateKey(value: string): string | undefined {
  try {
    createPrivateKey(value);
    return undefined;
  } catch {
    return "is not a PEM private key";
  }
}

export function secretNeeds(spec: SenderSpec): SecretNeed[] {
  const needs: SecretNeed[] = [];
  const smtp = spec.email?.transport.smtp;
  if (smtp?.authSecretRef !== undefined) {
    const field = "spec.email.transport.smtp.authSecretRef";
    needs.push({ secret: smtp.authSecretRef.name, key: "username", field });
    needs.push({ secret: smtp.authSecretRef.name, key: "password", field });
  }
  const sparkpost = spec.email?.transport.sparkpost;
  if (sparkpost !== undefined) {
    const ref = sparkpost.apiKeySecretRef;
    needs.push({ secret: ref.name, key: ref.key, field: "spec.email.transport.sparkpost.apiKeySecretRef" });
  }
  const dkim = spec.email?.dkim;
  if (dkim !== undefined) {
    const ref = dkim.privateKeySecretRef;
    needs.push({ secret: ref.name, key: ref.key, field: "spec.email.dkim.privateKeySecretRef", check: pemPrivateKey });
  }
  const vapid = spec.webpush?.vapid;
  if (vapid !== undefined) {
    const field = "spec.webpush.vapid.keysSecretRef";
    needs.push({ secret: vapid.keysSecretRef.name, key: "publicKey", field });
    needs.push({ secret: vapid.keysSecretRef.name, key: "privateKey", field });
  }
  return needs;
}

export type SecretCheck =
  | {
      kind: "ok";
      secrets: string[];
      /** SHA-256 over the keys the Sender uses: a rotated value rolls the pool, no value is kept. */
      digest: string;
    }
  | { kind: "missing" | "invalid"; secret: string; message: string };

/** Reads each referenced Secret once; the first problem wins. */
export async function checkSecrets(source: ResourceSource, namespace: string, spec: SenderSpec): Promise<SecretCheck> {
  const needs = secretNeeds(spec);
  const names = [...new Set(needs.map((need) => need.secret))];
  const data = new Map(
    await Promise.all(names.map(async (name) => [name, await source.readSecret(namespace, name)] as const)),
  );
  for (const need of needs) {
    const secret = data.get(need.secret);
    if (secret === undefined) {
      return {
        kind: "missing",
        secret: need.secret,
        message: `Secret "${need.secret}" (${need.field}) does not exist in namespace ${namespace}`,
      };
    }
    const value = secret[need.key];
    // A key that is not there is missing (SecretMissing), as a Secret that is not; a value in the
    // wrong form is invalid (SecretInvalid).
    if (value === undefined || value === "") {
      return {
        kind: "missing",
        secret: need.secret,
        message: `Secret "${need.secret}" has no key "${need.key}" (${need.field}), or it is empty`,
      };
    }
    const problem = need.check?.(value);
    if (problem !== undefined) {
      return {
        kind: "invalid",
        secret: need.secret,
        message: `Secret "${need.secret}" key "${need.key}" (${need.field}) ${problem}`,
      };
    }
  }
  const hash = createHash("sha256");
  for (const need of needs) hash.update(`${need.secret}\0${need.key}\0${data.get(need.secret)?.[need.key] ?? ""}\0`);
  return { kind: "ok", secrets: names, digest: hash.digest("hex") };
}
