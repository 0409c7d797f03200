// Email over SMTP with nodemailer: a pooled transport (maxConnections), the TLS mode the Sender
// asks for, DKIM signing. SMTP replies are classified: 4xx transient, 5xx permanent (a 5xx on the
// recipient is a hard bounce), with the enhanced status code kept in the reason.
import nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";
import type { Channel, RenderedEmail, SendResult } from "../../channel.ts";

export interface SmtpOptions {
  host: string;
  port: number;
  tls: "none" | "starttls" | "implicit";
  maxConnections: number;
  auth?: { user: string; pass: string } | undefined;
  dkim?: { domainName: string; keySelector: string; privateKey: string } | undefined;
  /** Extra CA certificates (PEM) to trust, e.g. a private relay's. */
  ca?: string | undefined;
  timeoutMs?: number;
}

interface SmtpError {
  code?: string;
  responseCode?: number;
  response?: string;
  message: string;
}

/** "550 5.1.1 <x>: user unknown" -> "5.1.1" */
export function enhancedStatus(response: string | undefined): string | undefined {
  return /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(response ?? "")?.[1];
}

export function classifySmtpError(error: SmtpError): SendResult {
  const status = error.responseCode;
  const detail = [status, enhancedStatus(error.response)].filter((part) => part !== undefined).join(" ");
  const reason = `smtp ${detail || (error.code ?? "error")}`.trim();
  if (status !== undefined && status >= 500) {
    // A bad credential is the Sender's problem, not the recipient's: never suppress for it.
    if (error.code === "EAUTH") return { kind: "transient", reason };
    return {
      kind: "permanent",
      reason,
      bounce: error.code === "EENVELOPE" || (enhancedStatus(error.response)?.startsWith("5.1.") ?? false),
    };
  }
  return { kind: "transient", reason };
}

export function smtpChannel(options: SmtpOptions): Channel {
  const transport = nodemailer.createTransport({
    host: options.host,
    port: options.port,
    secure: options.tls === "implicit",
    requireTLS: options.tls === "starttls",
    ignoreTLS: options.tls === "none",
    pool: true,
    maxConnections: options.maxConnections,
    maxMessages: 1000,
    connectionTimeout: options.timeoutMs ?? 10_000,
    greetingTimeout: options.timeoutMs ?? 10_000,
    socketTimeout: options.timeoutMs ?? 30_000,
    ...(options.auth !== undefined && { auth: options.auth }),
    ...(options.dkim !== undefined && { dkim: options.dkim }),
    ...(options.ca !== undefined && { tls: { ca: options.ca } }),
  });
  return {
    async send(message) {
      if (message.kind !== "email")
        return { kind: "permanent", reason: "smtp channel sends email only", bounce: false };
      return sendMail(transport, message);
    },
    async close() {
      transport.close();
    },
  };
}

async function sendMail(transport: Transporter, message: RenderedEmail): Promise<SendResult> {
  try {
    const info = (await transport.sendMail({
      from:
        message.from.name === undefined
          ? message.from.address
          : { name: message.from.name, address: message.from.address },
      ...(message.replyTo !== undefined && { replyTo: message.replyTo.address }),
      to: message.to,
      subject: message.subject,
      html: message.html,
      text: message.text,
      headers: message.headers,
      messageId: message.headers["Message-ID"],
    })) as { messageId?: string };
    return { kind: "sent", providerId: info.messageId };
  } catch (error) {
    return classifySmtpError(error as SmtpError);
  }
}
