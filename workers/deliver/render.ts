// Rendering: the templates (runtime/render.ts, shared with the campaign preview) rendered against
// the profile and the triggering event; click tracking, open pixel, preheader and one-click
// unsubscribe headers added here. A template error fails that message with a reason, never the pool.
import type { SenderSpec } from "#crds";
import { renderEmailContent, renderPushContent, signToken, TokenKinds } from "#runtime";
import type { CompiledEmail, CompiledPush, RenderProfile } from "#runtime";
import type { Mailbox, RenderedEmail, RenderedPush } from "./channel.ts";

export interface RenderContext {
  namespace: string;
  messageId: string;
  profile: RenderProfile;
  event: Record<string, unknown> | undefined;
}

export type RenderResult<T> = { kind: "rendered"; message: T } | { kind: "templateError"; reason: string };

export interface LinkOptions {
  /** Base URL of the ingest service's public endpoints (/u, /o, /c). */
  publicBaseUrl: string;
  tokenSecret: string;
}

function link(options: LinkOptions, kind: "u" | "o" | "c", context: RenderContext, url?: string): string {
  const token = signToken(options.tokenSecret, {
    kind,
    namespace: context.namespace,
    profileId: context.profile.id,
    messageId: context.messageId,
    ...(url !== undefined && { url }),
  });
  return `${options.publicBaseUrl.replace(/\/$/, "")}/${kind}/${token}`;
}

function track(
  html: string,
  tracking: { opens: boolean; clicks: boolean },
  options: LinkOptions,
  context: RenderContext,
): string {
  let result = html;
  if (tracking.clicks) {
    result = result.replace(
      /(<a\b[^>]*?\bhref=")(https?:\/\/[^"]+)(")/gi,
      (_match, before: string, url: string, after: string) => {
        return `${before}${link(options, TokenKinds.click, context, url.replace(/&amp;/g, "&"))}${after}`;
      },
    );
  }
  if (tracking.opens) {
    const pixel = `<img src="${link(options, TokenKinds.open, context)}" width="1" height="1" alt="" style="display:none">`;
    result = /<\/body>/i.test(result) ? result.replace(/<\/body>/i, `${pixel}</body>`) : result + pixel;
  }
  return result;
}

function withPreheader(html: string, preheader: string | undefined): string {
  if (preheader === undefined || preheader === "") return html;
  const span = `<div style="display:none;max-height:0;overflow:hidden">${preheader}</div>`;
  return /<body[^>]*>/i.test(html) ? html.replace(/(<body[^>]*>)/i, `$1${span}`) : span + html;
}

export interface EmailRenderInput {
  compiled: CompiledEmail;
  sender: NonNullable<SenderSpec["email"]>;
  to: string;
  context: RenderContext;
  links: LinkOptions;
}

export async function renderEmail(input: EmailRenderInput): Promise<RenderResult<RenderedEmail>> {
  const { compiled, sender, context, links } = input;
  try {
    const content = await renderEmailContent(compiled, context);
    const html = track(withPreheader(content.html, content.preheader), sender.tracking, links, context);
    const domain = sender.from.address.split("@")[1] ?? "relais.invalid";
    const headers: Record<string, string> = {
      "Message-ID": `<${encodeURIComponent(context.messageId).replace(/%/g, "=")}@${domain}>`,
      "X-Relais-Message": context.messageId,
    };
    if (sender.listUnsubscribe) {
      headers["List-Unsubscribe"] = `<${link(links, TokenKinds.unsubscribe, context)}>`;
      headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click";
    }
    const from: Mailbox = { address: sender.from.address, name: sender.from.name };
    const replyTo =
      sender.replyTo === undefined ? undefined : { address: sender.replyTo.address, name: sender.replyTo.name };
    return {
      kind: "rendered",
      message: {
        kind: "email",
        from,
        replyTo,
        to: input.to,
        subject: content.subject,
        html,
        text: content.text,
        headers,
      },
    };
  } catch (error) {
    return { kind: "templateError", reason: `template: ${error instanceof Error ? error.message : String(error)}` };
  }
}

export interface PushRenderInput {
  compiled: CompiledPush;
  sender: NonNullable<SenderSpec["webpush"]>;
  subscription: RenderedPush["subscription"];
  context: RenderContext;
}

export function durationSeconds(duration: string): number {
  let total = 0;
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6, µs: 1e-6, ns: 1e-9 };
  for (const [, value, unit] of duration.matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g))
    total += Number(value) * (units[unit ?? "s"] ?? 0);
  return total;
}

export async function renderPush(input: PushRenderInput): Promise<RenderResult<RenderedPush>> {
  try {
    const { fields, actions } = await renderPushContent(input.compiled, input.context);
    const payload = JSON.stringify({
      ...fields,
      ...(actions.length > 0 && { actions }),
      messageId: input.context.messageId,
    });
    return {
      kind: "rendered",
      message: {
        kind: "webpush",
        subscription: input.subscription,
        payload,
        ttlSeconds: Math.round(durationSeconds(input.sender.ttl)),
        urgency: input.sender.urgency,
        topic: input.sender.topic,
      },
    };
  } catch (error) {
    return { kind: "templateError", reason: `template: ${error instanceof Error ? error.message : String(error)}` };
  }
}
