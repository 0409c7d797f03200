// Tokens in the links recipients click (unsubscribe, open pixel, click redirect). Delivery signs
// them; ingest verifies them. HMAC-SHA256 over the payload binds namespace, profile, message and
// (for clicks) the URL, so a token cannot be forged, pointed elsewhere, or reused for another
// profile. Tokens carry no secret and no email address.
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";

export const TokenKinds = { unsubscribe: "u", open: "o", click: "c" } as const;
export type TokenKind = (typeof TokenKinds)[keyof typeof TokenKinds];

const payloadSchema = z.strictObject({
  k: z.enum(Object.values(TokenKinds)),
  n: z.string().min(1),
  p: z.string().min(1),
  m: z.string().optional(),
  u: z.string().optional(),
});

export interface TokenPayload {
  kind: TokenKind;
  namespace: string;
  profileId: string;
  messageId?: string;
  /** The redirect target of a click token. */
  url?: string;
}

function mac(secret: string, body: string): Buffer {
  return createHmac("sha256", secret).update(body).digest();
}

export function signToken(secret: string, payload: TokenPayload): string {
  const compact = { k: payload.kind, n: payload.namespace, p: payload.profileId, m: payload.messageId, u: payload.url };
  const body = Buffer.from(JSON.stringify(compact)).toString("base64url");
  return `${body}.${mac(secret, body).toString("base64url")}`;
}

/** The payload of a valid token of `kind`, or undefined for anything forged, altered or malformed. */
export function verifyToken(secret: string, token: string, kind: TokenKind): TokenPayload | undefined {
  const [body, signature, extra] = token.split(".");
  if (body === undefined || signature === undefined || extra !== undefined || body.length > 4096) return undefined;
  const expected = mac(secret, body);
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  const parsed = payloadSchema.safeParse(decoded);
  if (!parsed.success || parsed.data.k !== kind) return undefined;
  const { n, p, m, u } = parsed.data;
  return {
    kind,
    namespace: n,
    profileId: p,
    ...(m !== undefined && { messageId: m }),
    ...(u !== undefined && { url: u }),
  };
}
