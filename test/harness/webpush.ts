// A real Web Push service on loopback, the side a browser's push service plays: it hands out
// browser-like subscriptions, checks each POST as RFC 8030 (TTL, Urgency, Topic), RFC 8292 (VAPID)
// and RFC 8291 (aes128gcm message encryption) require, and records the decrypted notifications.
//
// It serves HTTPS by default because web-push's sendNotification always speaks TLS (https.request),
// whatever the endpoint's scheme: senders trust `ca`, e.g. `agent: endpoint.agent`, or
// NODE_EXTRA_CA_CERTS pointing at a file holding `ca` for a worker process.
import { execFile } from "node:child_process";
import { createECDH, createPublicKey, randomBytes, randomUUID, verify } from "node:crypto";
import type { ECDH } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { Agent, createServer as createHttpsServer } from "node:https";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { toolPath } from "./tools.ts";

/** http_ece ships no types; the part of its API a receiver uses. */
interface HttpEce {
  decrypt(buffer: Buffer, params: { version: "aes128gcm"; privateKey: ECDH; authSecret: Buffer }): Buffer;
}
const ece = createRequire(import.meta.url)("http_ece") as HttpEce;

/** Largest encrypted body accepted; push services take at least 4096 bytes (RFC 8030 §7.2) and refuse more with 413. */
export const maxPushBodyBytes = 4096;
const urgencies = new Set(["very-low", "low", "normal", "high"]);
const maxVapidLifetimeSeconds = 24 * 60 * 60;

export interface ReceivedPush {
  endpoint: string;
  /** The decrypted message as UTF-8; "" for a push without payload. */
  payload: string;
  ttl: number;
  urgency: string | undefined;
  topic: string | undefined;
  vapid: { subject: string; audience: string; expiresAt: number; publicKey: string };
}

/** Every POST the endpoint answered, accepted or not. */
export interface PushAttempt {
  endpoint: string;
  status: number;
  /** Why a push was refused (absent for accepted and programmed answers). */
  reason?: string;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface PushSubscriptionJson {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface WebPushEndpoint {
  /** https://127.0.0.1:<port> (http:// with `tls: false`). */
  readonly url: string;
  /** PEM of the self-signed certificate the endpoint serves (empty with `tls: false`). */
  readonly ca: string;
  /** An HTTPS agent trusting `ca`, for web-push's `agent` option. */
  readonly agent: Agent;
  /** A new browser-like subscription: endpoint URL on this server and its public keys (base64url). */
  createSubscription(): PushSubscriptionJson;
  /** Decrypted notifications received so far, oldest first. */
  readonly received: readonly ReceivedPush[];
  /** Every push request answered so far, oldest first, with its status. */
  readonly attempts: readonly PushAttempt[];
  /**
   * Makes the next `times` (default: all future) pushes to this endpoint answer `status` (e.g. 410,
   * 404, 413, 429) with optional headers such as Retry-After, before any other check and without
   * recording a notification. Calls queue up: each programmed answer is used `times`, then the next.
   */
  respondWith(endpoint: string, status: number, options?: { times?: number; headers?: Record<string, string> }): void;
  /** Resolves with the notifications once `count` have been received, or rejects after timeoutMs (default 5000). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedPush[]>;
  stop(): Promise<void>;
}

export interface WebPushEndpointOptions {
  /** VAPID public keys (base64url) accepted; when set, any other key gets 403. */
  acceptedVapidKeys?: string[];
  /** Serve HTTPS (default). Plain HTTP suits senders that build requests themselves (generateRequestDetails + fetch). */
  tls?: boolean;
}

interface Subscription {
  endpoint: string;
  ecdh: ECDH;
  authSecret: Buffer;
  programmed: { status: number; headers: Record<string, string>; remaining: number }[];
}

/** A refusal: the status and reason a push service would answer. */
class Refusal extends Error {
  readonly status: number;
  constructor(status: number, reason: string) {
    super(reason);
    this.status = status;
  }
}

function refuse(status: number, reason: string): never {
  throw new Refusal(status, reason);
}

let certificate: Promise<{ key: string; cert: string }> | undefined;

/** One self-signed P-256 certificate for 127.0.0.1 per process, made with openssl. */
function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  certificate ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "relais-webpush-"));
    try {
      await promisify(execFile)(
        toolPath("openssl"),
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          "key.pem",
          "-out",
          "cert.pem",
          "-days",
          "2",
          "-subj",
          "/CN=relais-webpush",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
        ],
        { cwd: dir },
      );
      return { key: await readFile(join(dir, "key.pem"), "utf8"), cert: await readFile(join(dir, "cert.pem"), "utf8") };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return certificate;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      resolve(Buffer.concat(chunks));
    });
    request.on("error", reject);
  });
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

function decodeJson(part: string): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
  return value as Record<string, unknown>;
}

/** The `t` and `k` parameters of `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292 §3). */
function vapidParameters(authorization: string | undefined): { token: string; key: string } {
  const match = /^vapid\s+(.*)$/i.exec(authorization ?? "");
  if (!match?.[1]) refuse(401, "missing vapid Authorization");
  const params = new Map<string, string>();
  for (const part of match[1].split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const token = params.get("t");
  const key = params.get("k");
  if (!token || !key) refuse(401, "vapid Authorization needs t and k");
  return { token, key };
}

/** Verifies the ES256 JWT with the raw uncompressed P-256 key `k`; returns its claims. */
function verifiedClaims(token: string, key: string): Record<string, unknown> {
  const raw = Buffer.from(key, "base64url");
  if (raw.length !== 65 || raw[0] !== 0x04) refuse(401, "k is not an uncompressed P-256 public key");
  const parts = token.split(".");
  const [head, body, signature] = parts;
  if (parts.length !== 3 || !head || !body || !signature) refuse(401, "t is not a JWT");
  try {
    if (decodeJson(head).alg !== "ES256") refuse(401, "JWT alg is not ES256");
    const jwk = {
      kty: "EC",
      crv: "P-256",
      x: raw.subarray(1, 33).toString("base64url"),
      y: raw.subarray(33).toString("base64url"),
    };
    const publicKey = createPublicKey({ key: jwk, format: "jwk" });
    const signed = Buffer.from(`${head}.${body}`);
    const valid = verify(
      "sha256",
      signed,
      { key: publicKey, dsaEncoding: "ieee-p1363" },
      Buffer.from(signature, "base64url"),
    );
    if (!valid) refuse(401, "JWT signature does not verify with k");
    return decodeJson(body);
  } catch (error) {
    if (error instanceof Refusal) throw error;
    return refuse(401, `invalid VAPID: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function checkVapid(
  request: IncomingMessage,
  origin: string,
  accepted: Set<string> | undefined,
): ReceivedPush["vapid"] {
  const { token, key } = vapidParameters(header(request, "authorization"));
  const claims = verifiedClaims(token, key);
  const { aud, exp, sub } = claims;
  if (aud !== origin) refuse(401, `JWT aud ${JSON.stringify(aud)} is not ${origin}`);
  const now = Math.floor(Date.now() / 1000);
  if (typeof exp !== "number" || exp <= now) refuse(401, "JWT exp is missing or past");
  if (exp > now + maxVapidLifetimeSeconds) refuse(401, "JWT exp is more than 24 hours ahead");
  if (typeof sub !== "string" || !/^(mailto:.+|https:\/\/.+)$/.test(sub))
    refuse(401, "JWT sub is not a mailto: or https: URL");
  if (accepted && !accepted.has(key)) refuse(403, "VAPID key is not the subscription's application server key");
  return { subject: sub, audience: aud, expiresAt: exp, publicKey: key };
}

/** TTL, Urgency and Topic as RFC 8030 §5 defines them. */
function deliveryHeaders(request: IncomingMessage): {
  ttl: number;
  urgency: string | undefined;
  topic: string | undefined;
} {
  const ttl = header(request, "ttl");
  if (ttl === undefined || !/^\d+$/.test(ttl.trim())) refuse(400, "TTL header missing or not a number of seconds");
  const urgency = header(request, "urgency");
  if (urgency !== undefined && !urgencies.has(urgency)) refuse(400, `unknown Urgency ${urgency}`);
  const topic = header(request, "topic");
  if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic))
    refuse(400, "Topic must be at most 32 base64url characters");
  return { ttl: Number(ttl.trim()), urgency, topic };
}

function decryptBody(request: IncomingMessage, body: Buffer, subscription: Subscription): string {
  if (body.length === 0) return "";
  if (body.length > maxPushBodyBytes) refuse(413, `body of ${body.length} bytes exceeds ${maxPushBodyBytes}`);
  const encoding = header(request, "content-encoding");
  if (encoding?.toLowerCase() !== "aes128gcm") refuse(400, `Content-Encoding ${encoding ?? "(none)"} is not aes128gcm`);
  try {
    const plain = ece.decrypt(body, {
      version: "aes128gcm",
      privateKey: subscription.ecdh,
      authSecret: subscription.authSecret,
    });
    return plain.toString("utf8");
  } catch (error) {
    return refuse(400, `body does not decrypt: ${error instanceof Error ? error.message : String(error)}`);
  }
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  reason?: string;
}

interface Waiter {
  count: number;
  resolve: (received: ReceivedPush[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export async function startWebPushEndpoint(options: WebPushEndpointOptions = {}): Promise<WebPushEndpoint> {
  const tls = options.tls ?? true;
  const pem = tls ? await selfSignedCertificate() : undefined;
  const accepted = options.acceptedVapidKeys ? new Set(options.acceptedVapidKeys) : undefined;
  const subscriptions = new Map<string, Subscription>();
  const received: ReceivedPush[] = [];
  const attempts: PushAttempt[] = [];
  let waiters: Waiter[] = [];
  let origin = "";

  const settleWaiters = (): void => {
    waiters = waiters.filter((waiter) => {
      if (received.length < waiter.count) return true;
      clearTimeout(waiter.timer);
      waiter.resolve([...received]);
      return false;
    });
  };

  /** Decides the answer to one request, recording the notification when it is accepted. */
  const decide = (request: IncomingMessage, body: Buffer, endpoint: string): Answer => {
    if (request.method !== "POST")
      return { status: 405, headers: { allow: "POST" }, reason: "push endpoints take POST" };
    const subscription = subscriptions.get(endpoint);
    if (!subscription) return { status: 404, reason: "no such subscription" };
    const programmed = subscription.programmed[0];
    if (programmed) {
      if (--programmed.remaining <= 0) subscription.programmed.shift();
      return { status: programmed.status, headers: programmed.headers };
    }
    try {
      const delivery = deliveryHeaders(request);
      const vapid = checkVapid(request, origin, accepted);
      const payload = decryptBody(request, body, subscription);
      received.push({ endpoint, payload, ...delivery, vapid });
      return { status: 201, headers: { location: `${origin}/message/${randomUUID()}` } };
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      return { status: error.status, reason: error.message };
    }
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const at = Date.now();
    const endpoint = `${origin}${request.url ?? ""}`;
    const body = await readBody(request);
    const { status, headers = {}, reason } = decide(request, body, endpoint);
    attempts.push({ endpoint, status, at, ...(reason !== undefined && { reason }) });
    response.writeHead(status, { "content-type": "text/plain", ...headers }).end(reason ?? "");
    settleWaiters();
  };

  const listener = (request: IncomingMessage, response: ServerResponse): void => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500).end(String(error));
    });
  };
  const server: Server = pem
    ? createHttpsServer({ key: pem.key, cert: pem.cert }, listener)
    : createHttpServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  origin = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
  const agent = new Agent(pem ? { ca: pem.cert } : {});
  let stopping: Promise<void> | undefined;

  return {
    url: origin,
    ca: pem?.cert ?? "",
    agent,
    received,
    attempts,
    createSubscription() {
      const ecdh = createECDH("prime256v1");
      ecdh.generateKeys();
      const authSecret = randomBytes(16);
      const endpoint = `${origin}/push/${randomBytes(16).toString("base64url")}`;
      subscriptions.set(endpoint, { endpoint, ecdh, authSecret, programmed: [] });
      return { endpoint, keys: { p256dh: ecdh.getPublicKey("base64url"), auth: authSecret.toString("base64url") } };
    },
    respondWith(endpoint, status, { times = Infinity, headers = {} } = {}) {
      const subscription = subscriptions.get(endpoint);
      if (!subscription) throw new Error(`respondWith: ${endpoint} is not a subscription of ${origin}`);
      if (!Number.isInteger(status) || status < 200 || status > 599)
        throw new Error(`respondWith: bad status ${status}`);
      if (!(times >= 1)) throw new Error(`respondWith: times must be at least 1, got ${times}`);
      subscription.programmed.push({ status, headers, remaining: times });
    },
    waitFor(count, timeoutMs = 5000) {
      if (received.length >= count) return Promise.resolve([...received]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((waiter) => waiter.timer !== timer);
          const recent = attempts.slice(-5).map((a) => `${a.status}${a.reason ? ` (${a.reason})` : ""}`);
          reject(
            new Error(
              `waited ${timeoutMs} ms for ${count} pushes, received ${received.length}; last answers: ${recent.join(", ") || "none"}`,
            ),
          );
        }, timeoutMs);
        waiters.push({ count, resolve, reject, timer });
      });
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        for (const waiter of waiters) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`web push endpoint ${origin} stopped`));
        }
        waiters = [];
        agent.destroy();
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}
