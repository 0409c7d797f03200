// A channel that sends nowhere and always succeeds: benchmarks measure the pool itself with it.
import type { Channel } from "../channel.ts";

export function nullChannel(): Channel {
  return { send: async () => ({ kind: "sent" }), close: async () => {} };
}
