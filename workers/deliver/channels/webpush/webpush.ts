// Web Push with the Sender's VAPID keys (RFC 8292) and RFC 8291 encryption, through `web-push`.
// 404/410 mean the subscription is gone; 413 is permanent; 429 honours Retry-After; 5xx retry.
import { Agent } from "node:https";
import webpush from "web-push";
import type { Channel, SendResult } from "../../channel.ts";

export interface WebPushOptions {
  subject: string;
  publicKey: string;
  privateKey: string;
  timeoutMs?: number;
  /** PEM of extra CAs to trust (a push service with a private certificate; tests). */
  ca?: string | undefined;
}

interface WebPushFailure {
  statusCode?: number;
  headers?: Record<string, string>;
  message: string;
}

export function classifyPushError(error: WebPushFailure): SendResult {
  const status = error.statusCode;
  if (status === undefined) return { kind: "transient", reason: "webpush network error" };
  const reason = `webpush ${status}`;
  if (status === 404 || status === 410) return { kind: "expired", reason };
  if (status === 429 || status >= 500) {
    const header = error.headers?.["retry-after"];
    const seconds = header === undefined ? Number.NaN : Number(header);
    return { kind: "transient", reason, retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : undefined };
  }
  return { kind: "permanent", reason, bounce: false };
}

export function webPushChannel(options: WebPushOptions): Channel {
  const agent = options.ca === undefined ? undefined : new Agent({ ca: options.ca, keepAlive: true });
  return {
    async send(message) {
      if (message.kind !== "webpush")
        return { kind: "permanent", reason: "webpush channel sends push only", bounce: false };
      try {
        await webpush.sendNotification(message.subscription, message.payload, {
          vapidDetails: { subject: options.subject, publicKey: options.publicKey, privateKey: options.privateKey },
          TTL: message.ttlSeconds,
          urgency: message.urgency,
          ...(message.topic !== undefined && { topic: message.topic }),
          timeout: options.timeoutMs ?? 30_000,
          ...(agent !== undefined && { agent }),
        });
        return { kind: "sent" };
      } catch (error) {
        return classifyPushError(error as WebPushFailure);
      }
    },
    async close() {
      agent?.destroy();
    },
  };
}
