// Rendering: Liquid over the profile and the triggering event; MJML compiled once per template
// version, not per message; click tracking, open pixel, preheader and one-click unsubscribe
// headers added here. A template error fails that message with a reason, never the pool.
import { Liquid } from "liquidjs";
import type { Template } from "liquidjs";
import mjml2html from "mjml";
import type { Message, SenderSpec } from "#crds";
import { signToken, TokenKinds } from "#runtime";
import type { Mailbox, RenderedEmail, RenderedPush } from "./channel.ts";

export interface RenderProfile {
  id: string;
  email: string | null;
  language: string | null;
  timezone: string | null;
  attributes: Record<string, unknown>;
}

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

interface CompiledEmail {
  subject: Template[];
  preheader: Template[] | undefined;
  html: Template[];
  text: Template[] | undefined;
}

interface CompiledPush {
  fields: Record<string, Template[] | undefined>;
  actions: { action: string; title: Template[]; url: Template[] | undefined }[];
}

// strictFilters: a misspelt filter is a template error at compile time, not silently dropped text.
const htmlEngine = new Liquid({ outputEscape: "escape", ownPropertyOnly: true, strictFilters: true });
const textEngine = new Liquid({ ownPropertyOnly: true, strictFilters: true });

/** Compiles a message once per template version; rejects with the MJML or Liquid error. */
export async function compileEmail(message: NonNullable<Message["email"]>): Promise<CompiledEmail> {
  let html = message.html ?? "";
  if (message.mjml !== undefined) {
    const compiled = await mjml2html(message.mjml, { validationLevel: "soft", minify: false });
    html = compiled.html;
  }
  return {
    subject: textEngine.parse(message.subject),
    preheader: message.preheader === undefined ? undefined : textEngine.parse(message.preheader),
    html: htmlEngine.parse(html),
    text: message.text === undefined ? undefined : textEngine.parse(message.text),
  };
}

export function compilePush(message: NonNullable<Message["webpush"]>): CompiledPush {
  const parse = (text: string | undefined) => (text === undefined ? undefined : textEngine.parse(text));
  return {
    fields: {
      title: parse(message.title),
      body: parse(message.body),
      icon: parse(message.icon),
      image: parse(message.image),
      url: parse(message.url),
    },
    actions: (message.actions ?? []).map((action) => ({
      action: action.action,
      title: textEngine.parse(action.title),
      url: parse(action.url),
    })),
  };
}

function scope(context: RenderContext): Record<string, unknown> {
  return { profile: context.profile, event: context.event ?? {}, trigger: context.event ?? {} };
}

/** A plain-text part from HTML, for messages whose template has none. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(style|script|head)[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>/gi, "\n")
    .replace(/<\/(p|div|h[1-6]|li|tr)>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&nbsp;/g, " ")
    .replace(/&amp;/g, "&")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/[ \t]+/g, " ")
    .replace(/\n\s*\n+/g, "\n\n")
    .trim();
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
    const data = scope(context);
    const subject = (await textEngine.render(compiled.subject, data)) as string;
    const preheader =
      compiled.preheader === undefined ? undefined : ((await textEngine.render(compiled.preheader, data)) as string);
    const body = (await htmlEngine.render(compiled.html, data)) as string;
    const html = track(withPreheader(body, preheader), sender.tracking, links, context);
    const text =
      compiled.text === undefined ? htmlToText(body) : ((await textEngine.render(compiled.text, data)) as string);
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
        subject: subject.replace(/[\r\n]+/g, " ").trim(),
        html,
        text,
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
    const data = scope(input.context);
    const fields: Record<string, string> = {};
    for (const [name, template] of Object.entries(input.compiled.fields)) {
      if (template !== undefined) fields[name] = (await textEngine.render(template, data)) as string;
    }
    const actions = [];
    for (const action of input.compiled.actions) {
      actions.push({
        action: action.action,
        title: (await textEngine.render(action.title, data)) as string,
        ...(action.url !== undefined && { url: (await textEngine.render(action.url, data)) as string }),
      });
    }
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
