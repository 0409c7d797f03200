// A real SMTP server on loopback for tests: it records every message it accepts, verifies its
// DKIM signatures against keys the test supplies (no DNS), checks AUTH when asked to, and can be
// told to refuse recipients with a chosen reply, as a receiving MTA would.
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { promisify } from "node:util";
import { simpleParser } from "mailparser";
import type { AddressObject, EmailAddress, ParsedMail } from "mailparser";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { SMTPServer } from "smtp-server";
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerError,
  SMTPServerOptions,
  SMTPServerSession,
} from "smtp-server";
import { toolPath } from "./tools.ts";

const run = promisify(execFile);

export type SmtpTlsMode = "none" | "starttls" | "implicit";
export type DkimResult = "pass" | "fail" | "none" | "neutral" | "temperror" | "permerror";

export interface ReceivedMail {
  envelope: { from: string; to: string[] };
  /** Address of the From header. */
  from: string | undefined;
  /** Addresses of the To header(s), group members included. */
  to: string[];
  subject: string | undefined;
  html: string | undefined;
  text: string | undefined;
  /** Lower-case names; the raw (not MIME-decoded, unfolded) value of each, first occurrence. */
  headers: Record<string, string>;
  /** The whole message as received (UTF-8). */
  raw: string;
  /** The first passing signature, else the first signature; "none" for an unsigned message. */
  dkim: { result: DkimResult; domain: string | undefined; selector: string | undefined };
  authenticatedUser: string | undefined;
}

export interface SmtpSink {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly tls: SmtpTlsMode;
  /** PEM of the self-signed CA/cert the server uses, so a client can trust it (tls.ca). */
  readonly certificatePem: string | undefined;
  readonly received: ReceivedMail[];
  /** Errors the server reported (client resets, failed handshakes, messages it could not read). */
  readonly errors: readonly Error[];
  /**
   * The next `times` (default all) RCPT TO for this address are answered with `code` and
   * `message`, e.g. 550 "5.1.1 No such user" (permanent) or 451 "4.3.0 Try again later" (transient).
   */
  rejectRecipient(address: string, code: number, message: string, options?: { times?: number }): void;
  /** Resolves with a copy of all received messages once there are at least `count` (default timeout 5 s). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Connections currently open (to check a client's pool size). */
  readonly openConnections: number;
  readonly maxConcurrentConnections: number;
  stop(): Promise<void>;
}

export interface SmtpSinkOptions {
  tls?: SmtpTlsMode;
  /** When set, AUTH is required and checked. */
  auth?: { user: string; pass: string };
  /**
   * DKIM public keys by "<selector>._domainkey.<domain>" → the TXT record value
   * "v=DKIM1; k=rsa; p=<base64 SPKI DER>", used to verify instead of DNS (no network here).
   */
  dkimKeys?: Record<string, string>;
}

/** A DKIM key pair for tests: PEM private key and the TXT record value of its public key. */
export function generateDkimKey(): { privateKeyPem: string; txtRecord: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  return { privateKeyPem, txtRecord: `v=DKIM1; k=rsa; p=${spki.toString("base64")}` };
}

interface Certificate {
  key: string;
  cert: string;
}

let certificate: Promise<Certificate> | undefined;

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, made once per process. */
function selfSignedCertificate(): Promise<Certificate> {
  certificate ??= createCertificate().catch((error: unknown) => {
    certificate = undefined;
    throw error;
  });
  return certificate;
}

async function createCertificate(): Promise<Certificate> {
  const dir = await mkdtemp(join(tmpdir(), "relais-smtp-cert-"));
  try {
    await run(
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
        "smtp.key",
        "-out",
        "smtp.crt",
        "-days",
        "2",
        "-subj",
        "/CN=relais-smtp-sink",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { cwd: dir },
    );
    const [key, cert] = await Promise.all([
      readFile(join(dir, "smtp.key"), "utf8"),
      readFile(join(dir, "smtp.crt"), "utf8"),
    ]);
    return { key, cert };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function smtpError(code: number, message: string): SMTPServerError {
  return Object.assign(new Error(message), { responseCode: code });
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Answers TXT queries for the given "<selector>._domainkey.<domain>" names; ENOTFOUND otherwise. */
function keyResolver(keys: Record<string, string>): (name: string, rrtype: string) => Promise<string[][]> {
  const records = new Map(Object.entries(keys).map(([name, value]) => [name.toLowerCase(), value]));
  return (name, rrtype) => {
    const record = rrtype.toUpperCase() === "TXT" ? records.get(name.toLowerCase()) : undefined;
    if (record === undefined) {
      const error = Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), {
        code: "ENOTFOUND",
        syscall: "queryTxt",
        hostname: name,
      });
      return Promise.reject(error);
    }
    return Promise.resolve([[record]]);
  };
}

function dkimResultOf(status: string): DkimResult {
  switch (status) {
    case "pass":
    case "fail":
    case "none":
    case "neutral":
    case "temperror":
    case "permerror":
      return status;
    case "temperr":
      return "temperror";
    case "policy":
      return "permerror";
    default:
      return "neutral";
  }
}

async function verifyDkim(raw: Buffer, keys: Record<string, string>): Promise<ReceivedMail["dkim"]> {
  const { results } = await dkimVerify(raw, { resolver: keyResolver(keys) });
  const chosen = results.find((result) => result.status.result === "pass") ?? results[0];
  if (chosen === undefined) return { result: "none", domain: undefined, selector: undefined };
  return {
    result: dkimResultOf(chosen.status.result),
    domain: chosen.signingDomain,
    selector: chosen.selector,
  };
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  const flatten = (list: EmailAddress[]): string[] =>
    list.flatMap((entry) => [...(entry.address ? [entry.address] : []), ...flatten(entry.group ?? [])]);
  const objects = field === undefined ? [] : Array.isArray(field) ? field : [field];
  return objects.flatMap((object) => flatten(object.value));
}

function rawHeaders(parsed: ParsedMail): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const { key, line } of parsed.headerLines) {
    if (key in headers) continue;
    const colon = line.indexOf(":");
    headers[key] = line
      .slice(colon + 1)
      .replace(/\r?\n(?=[ \t])/g, "")
      .trim();
  }
  return headers;
}

async function readMail(raw: Buffer, session: SMTPServerSession, keys: Record<string, string>): Promise<ReceivedMail> {
  const [parsed, dkim] = await Promise.all([simpleParser(raw), verifyDkim(raw, keys)]);
  const { mailFrom, rcptTo } = session.envelope;
  const user: unknown = session.user;
  return {
    envelope: { from: mailFrom === false ? "" : mailFrom.address, to: rcptTo.map((rcpt) => rcpt.address) },
    from: addresses(parsed.from)[0],
    to: addresses(parsed.to),
    subject: parsed.subject,
    html: parsed.html === false ? undefined : parsed.html,
    text: parsed.text,
    headers: rawHeaders(parsed),
    raw: raw.toString("utf8"),
    dkim,
    authenticatedUser: typeof user === "string" ? user : undefined,
  };
}

interface Rejection {
  code: number;
  message: string;
  remaining: number;
}

interface Waiter {
  count: number;
  resolve: (mails: ReceivedMail[]) => void;
}

/** Starts an SMTP server on 127.0.0.1 and a free port; stop() closes it. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const mode = options.tls ?? "none";
  const auth = options.auth;
  const keys = options.dkimKeys ?? {};
  const pem = mode === "none" ? undefined : await selfSignedCertificate();

  const received: ReceivedMail[] = [];
  const errors: Error[] = [];
  const rejections = new Map<string, Rejection>();
  const waiters = new Set<Waiter>();
  // SMTP sessions from the greeting until their socket closed. The accepted TCP socket would not
  // do: after STARTTLS only the TLS socket on top of it reports that the connection closed.
  const open = new Set<string>();
  let maxOpen = 0;
  let onDrained: (() => void) | undefined;

  const record = (mail: ReceivedMail): void => {
    received.push(mail);
    for (const waiter of waiters) {
      if (received.length >= waiter.count) {
        waiters.delete(waiter);
        waiter.resolve([...received]);
      }
    }
  };

  const serverOptions: SMTPServerOptions = {
    secure: mode === "implicit",
    ...(pem === undefined ? {} : { key: pem.key, cert: pem.cert }),
    disabledCommands: mode === "none" ? ["STARTTLS"] : [],
    authOptional: auth === undefined,
    allowInsecureAuth: mode === "none",
    disableReverseLookup: true,
    logger: false,
    onConnect(session: SMTPServerSession, callback): void {
      open.add(session.id);
      maxOpen = Math.max(maxOpen, open.size);
      callback();
    },
    onClose(session: SMTPServerSession): void {
      open.delete(session.id);
      if (open.size === 0) onDrained?.();
    },
    onAuth(login: SMTPServerAuthentication, _session, callback): void {
      const valid =
        auth !== undefined &&
        login.username === auth.user &&
        (login.method === "CRAM-MD5" ? login.validatePassword(auth.pass) : login.password === auth.pass);
      if (valid) {
        const response: SMTPServerAuthenticationResponse = { user: auth.user };
        callback(null, response);
      } else {
        callback(smtpError(535, "5.7.8 Authentication credentials invalid"));
      }
    },
    onRcptTo(address: SMTPServerAddress, _session, callback): void {
      const key = address.address.toLowerCase();
      const rejection = rejections.get(key);
      if (rejection === undefined) {
        callback();
        return;
      }
      rejection.remaining -= 1;
      if (rejection.remaining <= 0) rejections.delete(key);
      callback(smtpError(rejection.code, rejection.message));
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback): void {
      buffer(stream)
        .then((raw) => readMail(raw, session, keys))
        .then(
          (mail) => {
            record(mail);
            callback(null);
          },
          (error: unknown) => {
            const failure = toError(error);
            errors.push(failure);
            callback(smtpError(451, `4.3.0 Could not read the message: ${failure.message}`));
          },
        );
    },
  };

  const server = new SMTPServer(serverOptions);

  let onStartError: ((error: Error) => void) | undefined;
  server.on("error", (error) => {
    if (onStartError === undefined) errors.push(error);
    else onStartError(error);
  });
  await new Promise<void>((resolve, reject) => {
    onStartError = reject;
    server.listen(0, "127.0.0.1", () => {
      resolve();
    });
  });
  onStartError = undefined;
  const address = server.server.address();
  if (address === null || typeof address === "string") {
    await new Promise<void>((resolve) => {
      server.close(resolve);
    });
    throw new Error(`smtp sink: unexpected listen address ${String(address)}`);
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      // Resolves once every socket closed: the server ends each session gracefully (421, then
      // FIN) and destroys a socket whose client does not close its side within 5 s.
      server.close(() => {
        // smtp-server reports a closed session a few ticks after its socket closed.
        // The listener is closed by now; the fallback only bounds the wait for that report.
        if (open.size === 0) {
          resolve();
          return;
        }
        const fallback = setTimeout(resolve, 1000);
        onDrained = () => {
          clearTimeout(fallback);
          resolve();
        };
      });
      for (const connection of server.connections) {
        connection.send(421, "4.3.2 Server shutting down");
        connection.close();
      }
    });
    return stopping;
  };

  return {
    host: "127.0.0.1",
    port: address.port,
    tls: mode,
    certificatePem: pem?.cert,
    received,
    errors,
    get openConnections(): number {
      return open.size;
    },
    get maxConcurrentConnections(): number {
      return maxOpen;
    },
    rejectRecipient(recipient, code, message, rejectOptions): void {
      const times = rejectOptions?.times ?? Number.POSITIVE_INFINITY;
      if (times <= 0) return;
      rejections.set(recipient.toLowerCase(), { code, message, remaining: times });
    },
    waitFor(count, timeoutMs = 5000): Promise<ReceivedMail[]> {
      if (received.length >= count) return Promise.resolve([...received]);
      return new Promise<ReceivedMail[]>((resolve, reject) => {
        const waiter: Waiter = {
          count,
          resolve: (mails) => {
            clearTimeout(timer);
            resolve(mails);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`smtp sink: ${received.length} of ${count} messages after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    stop,
  };
}
