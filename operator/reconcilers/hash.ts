import { createHash } from "node:crypto";

/** Hex SHA-256, as the ingest pool compares API key secrets. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}
