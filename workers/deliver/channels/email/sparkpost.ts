// Email through an HTTP relay speaking SparkPost's Transmissions API (POST /api/v1/transmissions,
// the key as the Authorization header). 420 (SparkPost's sending limit, code 2101), 429 and 5xx
// are transient; other 4xx are permanent.
// Relais renders and tracks itself, so the relay's own tracking is turned off.
import type { Channel, RenderedEmail, SendResult } from "../../channel.ts";

export interface SparkPostOptions {
  endpoint: string;
  apiKey: string;
  transactional: boolean;
  timeoutMs?: number;
}

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function transmission(message: RenderedEmail, transactional: boolean) {
  const { "Message-ID": _messageId, ...headers } = message.headers;
  return {
    recipients: [{ address: { email: message.to } }],
    content: {
      from: { email: message.from.address, ...(message.from.name !== undefined && { name: message.from.name }) },
      ...(message.replyTo !== undefined && { reply_to: message.replyTo.address }),
      subject: message.subject,
      html: message.html,
      text: message.text,
      headers,
    },
    options: { open_tracking: false, click_tracking: false, transactional },
    metadata: { relais_message: message.headers["X-Relais-Message"] ?? "" },
  };
}

interface TransmissionReply {
  results?: { id?: string; total_rejected_recipients?: number };
  errors?: { code?: string }[];
}

function interpret(response: Response, body: TransmissionReply): SendResult {
  if (response.ok) {
    if ((body.results?.total_rejected_recipients ?? 0) > 0)
      return { kind: "permanent", reason: "sparkpost recipient rejected", bounce: false };
    return { kind: "sent", providerId: body.results?.id };
  }
  const code = body.errors?.[0]?.code;
  const reason = `sparkpost ${response.status}${code === undefined ? "" : ` ${code}`}`;
  if (response.status === 420 || response.status === 429 || response.status >= 500) {
    return { kind: "transient", reason, retryAfterMs: retryAfterMs(response.headers.get("retry-after")) };
  }
  return { kind: "permanent", reason, bounce: false };
}

export function sparkPostChannel(options: SparkPostOptions): Channel {
  const url = `${options.endpoint.replace(/\/$/, "")}/api/v1/transmissions`;
  return {
    async send(message): Promise<SendResult> {
      if (message.kind !== "email")
        return { kind: "permanent", reason: "sparkpost channel sends email only", bounce: false };
      let response: Response;
      try {
        response = await fetch(url, {
          method: "POST",
          headers: { authorization: options.apiKey, "content-type": "application/json" },
          body: JSON.stringify(transmission(message, options.transactional)),
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
      } catch (error) {
        return { kind: "transient", reason: `sparkpost ${error instanceof Error ? error.name : "network error"}` };
      }
      return interpret(response, (await response.json().catch(() => ({}))) as TransmissionReply);
    },
    async close() {},
  };
}
