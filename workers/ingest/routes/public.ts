// Endpoints recipients reach from a message, with no API key: a signed token says who and why.
// GET /u shows a confirmation page and never unsubscribes (link scanners prefetch GETs); POST /u
// is RFC 8058 one-click. Invalid tokens get 404 whatever is wrong with them.
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { FeedbackOutcomes, TokenKinds, verifyToken } from "#runtime";
import type { FeedbackOutcome, TokenKind, TokenPayload } from "#runtime";
import { sendError } from "../http-errors.ts";
import type { IngestMetrics } from "../metrics.ts";
import type { Publisher } from "../publisher.ts";
import type { IngestService } from "../service.ts";

const params = z.strictObject({ token: z.string().min(1).max(8192) });

/** A transparent 1x1 GIF. */
const PIXEL = Buffer.from("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7", "base64");

function page(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
    `<title>${title}</title></head><body style="font-family:sans-serif;max-width:32rem;margin:4rem auto">${body}</body></html>`
  );
}

export interface PublicRouteDeps {
  service: IngestService;
  publisher: Publisher;
  metrics: IngestMetrics;
  tokenSecret: string;
  now?: () => Date;
}

export function publicRoutes(deps: PublicRouteDeps): FastifyPluginAsync {
  const now = deps.now ?? (() => new Date());
  const verify = (token: string, kind: TokenKind): TokenPayload | undefined =>
    verifyToken(deps.tokenSecret, token, kind);
  const notFound = (reply: FastifyReply) => sendError(reply, "RELAIS_HTTP_NOT_FOUND", "this link is not valid");

  /** Publishes the outcome; a lost open or click is better than a failed page, so errors are logged. */
  const report = async (payload: TokenPayload, outcome: FeedbackOutcome, reply: FastifyReply): Promise<void> => {
    deps.metrics.feedback.inc({ namespace: payload.namespace, outcome });
    await deps.publisher
      .feedback({
        namespace: payload.namespace,
        outcome,
        profileId: payload.profileId,
        ...(payload.messageId !== undefined && { messageId: payload.messageId }),
        ...(payload.url !== undefined && { url: payload.url }),
        channel: "email",
        at: now().toISOString(),
      })
      .catch((error: unknown) => {
        reply.log.warn({ err: error, outcome }, "feedback not published");
      });
  };

  return async (app) => {
    // RFC 8058 clients POST "List-Unsubscribe=One-Click" as a form; its content is not needed.
    app.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: 4096 },
      (_req, _body, done) => {
        done(null, {});
      },
    );
    const routes = app.withTypeProvider<ZodTypeProvider>();

    routes.get("/u/:token", { schema: { hide: true, params } }, async (request, reply) => {
      if (verify(request.params.token, TokenKinds.unsubscribe) === undefined) return notFound(reply);
      return reply
        .type("text/html; charset=utf-8")
        .send(
          page(
            "Unsubscribe",
            `<h1>Unsubscribe</h1><p>You will no longer receive these emails.</p>` +
              `<form method="post"><button type="submit">Unsubscribe</button></form>`,
          ),
        );
    });

    routes.post("/u/:token", { schema: { hide: true, params } }, async (request, reply) => {
      const payload = verify(request.params.token, TokenKinds.unsubscribe);
      if (payload === undefined) return notFound(reply);
      const result = await deps.service.unsubscribe(payload.namespace, payload.profileId, "one-click");
      if (result.kind === "unavailable") {
        return sendError(reply.header("retry-after", "5"), "RELAIS_HTTP_UNAVAILABLE", "please try again in a moment");
      }
      if (result.kind === "done") await report(payload, FeedbackOutcomes.unsubscribed, reply);
      return reply.type("text/html; charset=utf-8").send(page("Unsubscribed", "<h1>You are unsubscribed</h1>"));
    });

    routes.get("/o/:token", { schema: { hide: true, params } }, async (request, reply) => {
      const payload = verify(request.params.token, TokenKinds.open);
      if (payload !== undefined) await report(payload, FeedbackOutcomes.opened, reply);
      // The pixel is served either way: a mail client shows no broken image.
      return reply.type("image/gif").header("cache-control", "no-store").send(PIXEL);
    });

    routes.get("/c/:token", { schema: { hide: true, params } }, async (request, reply) => {
      const payload = verify(request.params.token, TokenKinds.click);
      const signed = payload?.url;
      const target =
        signed !== undefined && /^https?:\/\//i.test(signed) && URL.canParse(signed) ? new URL(signed) : undefined;
      if (payload === undefined || target === undefined || !["http:", "https:"].includes(target.protocol))
        return notFound(reply);
      await report(payload, FeedbackOutcomes.clicked, reply);
      // href is the URL serialised with percent-encoding: no control or non-Latin-1 character in Location.
      return reply.header("cache-control", "no-store").redirect(target.href, 302);
    });
  };
}
