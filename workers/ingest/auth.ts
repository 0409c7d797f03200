// API keys: "<keyId>.<secret>", sent as "Authorization: Bearer <key>". Only the SHA-256 of a
// secret is held (from the operator's config KV in a cluster, from local configuration
// otherwise); the comparison is constant-time, and a key reaches only its own namespace.
import { createHash, timingSafeEqual } from "node:crypto";

export interface ApiKeyEntry {
  keyId: string;
  namespace: string;
  /** Hex SHA-256 of the secret part. */
  secretSha256: string;
}

export interface Caller {
  keyId: string;
  namespace: string;
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export class ApiKeys {
  #entries = new Map<string, { namespace: string; digest: Buffer }>();

  constructor(entries: readonly ApiKeyEntry[] = []) {
    this.replace(entries);
  }

  /** Swaps the whole set at once (a revoked key stops working on the next request). */
  replace(entries: readonly ApiKeyEntry[]): void {
    this.#entries = new Map(
      entries.map((entry) => [
        entry.keyId,
        { namespace: entry.namespace, digest: Buffer.from(entry.secretSha256, "hex") },
      ]),
    );
  }

  /** The caller behind an Authorization header value, or undefined. */
  authenticate(header: string | undefined): Caller | undefined {
    const match = /^Bearer ([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{16,256})$/.exec(header ?? "");
    if (match === null) return undefined;
    const [, keyId = "", secret = ""] = match;
    const entry = this.#entries.get(keyId);
    const presented = createHash("sha256").update(secret).digest();
    // Compare even for an unknown key id, so timing does not tell which ids exist.
    const expected = entry?.digest ?? Buffer.alloc(presented.length);
    const equal = expected.length === presented.length && timingSafeEqual(expected, presented);
    return entry !== undefined && equal ? { keyId, namespace: entry.namespace } : undefined;
  }
}
