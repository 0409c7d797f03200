// Config KV writes that change nothing are skipped, so a periodic resync does not wake every
// worker's watch.
import type { KV } from "@nats-io/kv";

export async function putConfig(kv: KV, key: string, value: unknown): Promise<void> {
  const body = JSON.stringify(value);
  const current = await kv.get(key);
  if (current?.operation === "PUT" && current.string() === body) return;
  await kv.put(key, body);
}
