// The channel extension point: how a rendered message leaves. Adding a channel means implementing
// these two methods (see docs/architecture.md, "Adding a channel").

export interface Mailbox {
  address: string;
  name?: string | undefined;
}

export interface RenderedEmail {
  kind: "email";
  from: Mailbox;
  replyTo?: Mailbox | undefined;
  to: string;
  subject: string;
  html: string;
  text: string;
  /** Extra headers: Message-ID, List-Unsubscribe, List-Unsubscribe-Post, X-Relais-*. */
  headers: Record<string, string>;
}

export interface RenderedPush {
  kind: "webpush";
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
  /** The notification as JSON: {title, body, icon, image, url, actions}. */
  payload: string;
  ttlSeconds: number;
  urgency: "very-low" | "low" | "normal" | "high";
  topic?: string | undefined;
}

export type RenderedMessage = RenderedEmail | RenderedPush;

/** What became of one send. Retryability is part of the type. */
export type SendResult =
  | { kind: "sent"; providerId?: string | undefined }
  /** Try again later (SMTP 4xx, timeouts, HTTP 5xx/429). */
  | { kind: "transient"; reason: string; retryAfterMs?: number | undefined }
  /** Never retry. `bounce`: the address is bad (SMTP 5xx on the recipient): suppress it. */
  | { kind: "permanent"; reason: string; bounce: boolean }
  /** The push subscription is gone (404/410): drop it from the profile. */
  | { kind: "expired"; reason: string };

export interface Channel {
  /** Resolves to an outcome; rejects only on a bug. */
  send(message: RenderedMessage): Promise<SendResult>;
  /** Closes pooled connections; pending sends finish first. */
  close(): Promise<void>;
}
