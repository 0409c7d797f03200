// Local mode passes Secrets to pools as environment variables; the operator writes and checks
// them, the deliver pool reads them, so the naming is a wire contract.

/** RELAIS_SECRET_<SECRET>_<KEY>, upper-cased, other characters as "_". */
export function secretEnvName(secret: string, key: string): string {
  return `RELAIS_SECRET_${secret}_${key}`.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}
