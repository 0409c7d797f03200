// Holdout groups: a stable, uniform assignment of profiles to a control group, per Campaign or
// Automation, so the same profile stays in (or out of) the group across runs and replicas.
import { createHash } from "node:crypto";

/** True when the profile belongs to the source's control group of `percent` % of profiles. */
export function inHoldout(sourceName: string, profileId: string, percent: number | undefined): boolean {
  if (percent === undefined || percent <= 0) return false;
  const digest = createHash("sha256").update(`${sourceName}\u0000${profileId}`).digest();
  // The first 32 bits, uniform over [0, 2^32): below percent % of the range means held out.
  return digest.readUInt32BE(0) < (percent / 100) * 2 ** 32;
}
