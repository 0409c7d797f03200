// Where a pool finds the Secrets its Sender references. In a cluster the operator mounts each
// Secret as a folder (<dir>/<secret>/<key>); in local mode they come from the environment
// (RELAIS_SECRET_<SECRET>_<KEY>, upper-cased, other characters as "_"). Values never reach logs.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { secretEnvName } from "#runtime";

export interface SecretSource {
  /** The value, or undefined when the Secret or key does not exist. */
  get(secret: string, key: string): Promise<string | undefined>;
}

export { secretEnvName };

export function envSecrets(env: Readonly<Record<string, string | undefined>>): SecretSource {
  return { get: async (secret, key) => env[secretEnvName(secret, key)] };
}

export function dirSecrets(dir: string): SecretSource {
  return {
    async get(secret, key) {
      if (/[/\\]|^\.\.?$/.test(secret) || /[/\\]|^\.\.?$/.test(key)) return undefined;
      return readFile(join(dir, secret, key), "utf8").catch(() => undefined);
    },
  };
}

/** The first source that has the value wins. */
export function chainSecrets(...sources: SecretSource[]): SecretSource {
  return {
    async get(secret, key) {
      for (const source of sources) {
        const value = await source.get(secret, key);
        if (value !== undefined) return value;
      }
      return undefined;
    },
  };
}
