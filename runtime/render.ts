// Message templates: Liquid over the profile and the triggering event, MJML compiled once per
// template version. One renderer for the deliver pools (which add tracking, headers and the
// channel's envelope around it) and the campaign preview in engage (which renders sample profiles
// before anything is sent), so a preview shows what the pool would send.
import { Liquid } from "liquidjs";
import type { Template } from "liquidjs";
import type { Message } from "#crds";

/** The profile as templates see it (`profile.*`). */
export interface RenderProfile {
  id: string;
  email: string | null;
  language: string | null;
  timezone: string | null;
  attributes: Record<string, unknown>;
}

export interface CompiledEmail {
  subject: Template[];
  preheader: Template[] | undefined;
  html: Template[];
  text: Template[] | undefined;
}

export interface CompiledPush {
  fields: Record<string, Template[] | undefined>;
  actions: { action: string; title: Template[]; url: Template[] | undefined }[];
}

/** What a template renders against. */
export interface TemplateScope {
  profile: RenderProfile;
  event: Record<string, unknown> | undefined;
}

/** An email's rendered content, before tracking and headers. */
export interface RenderedEmailContent {
  subject: string;
  preheader: string | undefined;
  /** The HTML body as the template produced it. */
  html: string;
  /** The plain-text part: the text template, or derived from the HTML. */
  text: string;
}

/** A push notification's rendered fields (title, body, icon, image, url) and actions. */
export interface RenderedPushContent {
  fields: Record<string, string>;
  actions: { action: string; title: string; url?: string }[];
}

// strictFilters: a misspelt filter is a template error at compile time, not silently dropped text.
const htmlEngine = new Liquid({ outputEscape: "escape", ownPropertyOnly: true, strictFilters: true });
const textEngine = new Liquid({ ownPropertyOnly: true, strictFilters: true });

/** Compiles a message once per template version; rejects with the MJML or Liquid error. */
export async function compileEmail(message: NonNullable<Message["email"]>): Promise<CompiledEmail> {
  let html = message.html ?? "";
  if (message.mjml !== undefined) {
    // Loaded on first use: only a process that compiles MJML pays for the library.
    const { default: mjml2html } = await import("mjml");
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

function data(scope: TemplateScope): Record<string, unknown> {
  return { profile: scope.profile, event: scope.event ?? {}, trigger: scope.event ?? {} };
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

/** Renders an email's subject, preheader, HTML and text; rejects with the Liquid error. */
export async function renderEmailContent(compiled: CompiledEmail, scope: TemplateScope): Promise<RenderedEmailContent> {
  const values = data(scope);
  const subject = (await textEngine.render(compiled.subject, values)) as string;
  const preheader =
    compiled.preheader === undefined ? undefined : ((await textEngine.render(compiled.preheader, values)) as string);
  const html = (await htmlEngine.render(compiled.html, values)) as string;
  const text =
    compiled.text === undefined ? htmlToText(html) : ((await textEngine.render(compiled.text, values)) as string);
  return { subject: subject.replace(/[\r\n]+/g, " ").trim(), preheader, html, text };
}

/** Renders a push notification's fields and actions; rejects with the Liquid error. */
export async function renderPushContent(compiled: CompiledPush, scope: TemplateScope): Promise<RenderedPushContent> {
  const values = data(scope);
  const fields: Record<string, string> = {};
  for (const [name, template] of Object.entries(compiled.fields)) {
    if (template !== undefined) fields[name] = (await textEngine.render(template, values)) as string;
  }
  const actions = [];
  for (const action of compiled.actions) {
    actions.push({
      action: action.action,
      title: (await textEngine.render(action.title, values)) as string,
      ...(action.url !== undefined && { url: (await textEngine.render(action.url, values)) as string }),
    });
  }
  return { fields, actions };
}
