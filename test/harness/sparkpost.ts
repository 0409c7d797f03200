// A SparkPost Transmissions API endpoint on loopback, for tests of the email delivery pool.
//
// SparkPost cannot run here, so this speaks its HTTP protocol as documented, validating what a
// client sends the way the real API does and answering in its formats. Sources, cited per rule:
//   [api]    https://developers.sparkpost.com/api/ (content/api/index.apib of SparkPost/developers.sparkpost.com):
//            base path /api/v1, Authorization header, conventions, error table, rate limiting.
//   [tx]     https://developers.sparkpost.com/api/transmissions/ (content/api/transmissions.apib):
//            request body, content kinds, success response, partial acceptance.
//   [rcpt]   https://developers.sparkpost.com/api/recipient-lists/#header-recipient-object
//            (content/api/recipient-lists.apib): recipient and address objects.
//   [codes]  https://support.sparkpost.com/docs/tech-resources/extended-error-codes: code -> HTTP status.
//   [errors] SparkPost's "Deprecation of API Extended Error Codes" page: the exact error bodies, per
//            field ("Current" column: message + description + code).
//   [async]  https://support.sparkpost.com/docs/tech-resources/transmissions-breaking-changes:
//            content.from missing -> 1400 body; template syntax / generation errors are asynchronous.
//   [observed] https://github.com/the-refinery/sparkpost_rails/issues/47: a 401 body is
//            {"errors":[{"message":"Unauthorized."}]} (the docs give no 401 body).
//
// Deliberately not modelled: sending domains (any From domain is accepted), stored templates, A/B
// tests and recipient lists (a template_id or ab_test_id is accepted as is; a list_id does not
// exist), scheduled transmissions (start_time is only syntax-checked), the 1000-byte metadata cap.
import { randomBytes, randomInt } from "node:crypto";
import { STATUS_CODES, createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Request shapes, per [tx] "Request Body" and "Send Inline Content" / "Send a Template" /
// "Send an A/B Test" / "Send RFC822 Content", and [rcpt] "Recipient Object" / "Address Object".
// Unexpected body fields are ignored [api "API Conventions"], so objects strip unknown keys.

const jsonObject = z.record(z.string(), z.unknown());

const addressObjectSchema = z.object({
  email: z.string(),
  name: z.string().optional(),
  header_to: z.string().optional(),
});

const recipientFieldsSchema = z.object({
  return_path: z.string().optional(),
  tags: z.array(z.string()).optional(),
  metadata: jsonObject.optional(),
  substitution_data: jsonObject.optional(),
});

const fromObjectSchema = z.object({ email: z.string(), name: z.string().optional() });

// [tx] "Attachment Object" / "Inline Image Object": name (max 255 bytes), type and base64 data.
const fileSchema = z.object({ name: z.string().max(255), type: z.string(), data: z.string() });

const inlineContentSchema = z.object({
  subject: z.string(),
  html: z.string().optional(),
  text: z.string().optional(),
  amp_html: z.string().optional(),
  reply_to: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  attachments: z.array(fileSchema).optional(),
  inline_images: z.array(fileSchema).optional(),
});

const templateContentSchema = z.object({
  template_id: z.string(),
  use_draft_template: z.boolean().optional(),
});

const abTestContentSchema = z.object({ ab_test_id: z.string() });

const rfc822ContentSchema = z.object({ email_rfc822: z.string() });

const optionsSchema = z.object({
  start_time: z.string().optional(),
  open_tracking: z.boolean().optional(),
  click_tracking: z.boolean().optional(),
  transactional: z.boolean().optional(),
  sandbox: z.boolean().optional(),
  skip_suppression: z.boolean().optional(),
  smart_send: z.boolean().optional(),
  ip_pool: z.string().optional(),
  inline_css: z.boolean().optional(),
});

const topLevelSchema = z.object({
  options: optionsSchema.optional(),
  campaign_id: z.string().optional(),
  description: z.string().optional(),
  metadata: jsonObject.optional(),
  substitution_data: jsonObject.optional(),
  return_path: z.string().optional(),
});

/** [rcpt] "Address Object": a bare email address, or an object. */
export type Address = string | z.output<typeof addressObjectSchema>;
/** [rcpt] "Recipient Object". */
export type Recipient = { address: Address } & z.output<typeof recipientFieldsSchema>;
/** [tx] "Send Inline Content": from is an address string or { email, name? }. */
export type InlineContent = { from: string | z.output<typeof fromObjectSchema> } & z.output<typeof inlineContentSchema>;
export type TemplateContent = z.output<typeof templateContentSchema>;
export type AbTestContent = z.output<typeof abTestContentSchema>;
export type Rfc822Content = z.output<typeof rfc822ContentSchema>;
export type TransmissionContent = InlineContent | TemplateContent | AbTestContent | Rfc822Content;
export type TransmissionOptions = z.output<typeof optionsSchema>;
/**
 * A transmission as the endpoint understood it: the documented fields only (unknown ones are
 * ignored, as SparkPost does) and the recipients it accepted.
 */
export type TransmissionRequest = z.output<typeof topLevelSchema> & {
  recipients: Recipient[];
  content: TransmissionContent;
};

/** One entry of an `errors` array [api "Errors"]. `code` and `description` may be absent [errors]. */
export interface SparkPostError {
  message: string;
  code?: string;
  description?: string;
}
export interface ErrorResponse {
  errors: SparkPostError[];
}
/** [tx] 200 response; `errors` and `rcpt_to_errors` only when some recipients were rejected. */
export interface TransmissionResponse {
  errors?: SparkPostError[];
  results: {
    rcpt_to_errors?: SparkPostError[];
    total_rejected_recipients: number;
    total_accepted_recipients: number;
    id: string;
  };
}

export interface ReceivedTransmission {
  id: string;
  body: TransmissionRequest;
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
}

export interface SparkPostEndpoint {
  /** Base URL, http://127.0.0.1:<port>: a Sender's `endpoint`. Transmissions are POSTed to <url>/api/v1/transmissions. */
  readonly url: string;
  /** The only API key accepted, raw or as Basic credentials with an empty password. */
  readonly apiKey: string;
  /** Accepted transmissions, oldest first. */
  readonly transmissions: ReceivedTransmission[];
  /**
   * The next `times` (default: all) requests get this status and `{ errors }` body, before any
   * other check (e.g. 429 with a Retry-After header, 503, or a 422 with a given error code).
   * Calls queue: failNext(429, { times: 1 }); failNext(503, { times: 1 }) fails twice, then serves.
   */
  failNext(
    status: number,
    options?: {
      times?: number;
      headers?: Record<string, string>;
      errors?: { message: string; code: string; description?: string }[];
    },
  ): void;
  /** Resolves with all transmissions so far once at least `count` were accepted (default 5 s timeout). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedTransmission[]>;
  /** Closes the server and its connections; pending waitFor calls reject. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Validation. Each check yields a value or the status and error SparkPost answers with.

type Rejection = { ok: false; status: number; error: SparkPostError };
type Checked<T> = { ok: true; value: T } | Rejection;

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const reject = (status: number, error: SparkPostError): Rejection => ({ ok: false, status, error });
// [codes] 1400 "Required field is missing" -> 422; wording per [errors] "Reponse Missing Field".
const missing = (description: string): Rejection =>
  reject(422, { message: "required field is missing", description, code: "1400" });
// [codes] 1300 "invalid data format/type/length" -> 422; wording per [errors] "Reponse type validation".
const invalid = (description: string): Rejection =>
  reject(422, { message: "invalid data format/type", description, code: "1300" });
// [codes] 1301 "Invalid combination of fields" -> 422; wording per [errors] "invalid combination of fields".
const combination = (description: string): Rejection =>
  reject(422, { message: "invalid combination of fields", description, code: "1301" });

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "json_array";
  if (typeof value === "object") return "json_object";
  if (typeof value === "number" && Number.isInteger(value)) return "integer";
  return typeof value;
}

const expectedNames: Record<string, string> = { object: "json_object", record: "json_object", array: "json_array" };

const typeMismatch = (field: string, value: unknown, expected: string): Rejection =>
  invalid(`field '${field}' is of type '${jsonType(value)}', but needs to be of type '${expected}'`);

/** Turns the first zod issue into SparkPost's error for it, naming the field from `prefix`. */
function fromIssue(error: z.ZodError, prefix: string): Rejection {
  const issue = error.issues[0];
  if (issue === undefined) return invalid(prefix);
  const field = [prefix, ...issue.path.map(String)].filter((part) => part !== "").join(".");
  if (issue.code === "invalid_type") {
    if (issue.input === undefined) return missing(`${field} is a required field`);
    return typeMismatch(field, issue.input, expectedNames[issue.expected] ?? issue.expected);
  }
  if (issue.code === "too_big") {
    const length = typeof issue.input === "string" ? issue.input.length : 0;
    return invalid(
      `field '${field}' is of length '${length}', but needs to be of max length '${String(issue.maximum)}'`,
    );
  }
  return invalid(`${field}: ${issue.message}`);
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, prefix: string): Checked<T> {
  const result = schema.safeParse(value, { reportInput: true });
  return result.success ? ok(result.data) : fromIssue(result.error, prefix);
}

// A plain addr-spec with a dotted domain. Addresses holding substitution syntax ({{...}}) cannot be
// checked before generation [tx: "Substitution syntax is supported in from ..."] and pass.
const emailPattern =
  /^[^\s@<>()[\]\\,;:"]+@[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)+$/;
const isEmail = (value: string): boolean => value.includes("{{") || emailPattern.test(value);

function checkAddress(address: unknown): Checked<{ address: Address; email: string; field: string }> {
  // [rcpt] "If the address attribute is a string, it is interpreted as the email address."
  if (typeof address === "string") return ok({ address, email: address, field: "" });
  // [errors] "Reponse invalid recipient address": "address %value% is not JSON".
  if (!isObject(address)) return invalid(`address ${JSON.stringify(address)} is not JSON`);
  if (address.email === undefined) return missing("address.email is required for each recipient");
  const parsed = parseWith(addressObjectSchema, address, "address");
  if (!parsed.ok) return parsed;
  const headerTo = parsed.value.header_to;
  // [errors] "invalid recipient address.%field%: %address%" for a bad address.header_to.
  if (headerTo !== undefined && !isEmail(headerTo)) return invalid(`invalid recipient address.header_to: ${headerTo}`);
  return ok({ address: parsed.value, email: parsed.value.email, field: ".email" });
}

function checkRecipient(raw: unknown, index: number): Checked<Recipient> {
  if (!isObject(raw)) return typeMismatch(`recipients[${index}]`, raw, "json_object");
  // [errors] "Reponse Missing Field" of the recipient API: "address.email is required for each recipient".
  if (raw.address === undefined) return missing("address.email is required for each recipient");
  const address = checkAddress(raw.address);
  if (!address.ok) return address;
  const { email, field } = address.value;
  // [errors] "Reponse invalid recipient address": "invalid recipient address(.email): %address%".
  if (!isEmail(email)) return invalid(`invalid recipient address${field}: ${email}`);
  const fields = parseWith(recipientFieldsSchema, raw, "");
  return fields.ok ? ok({ address: address.value.address, ...fields.value }) : fields;
}

interface CheckedRecipients {
  accepted: Recipient[];
  errors: SparkPostError[];
}

/**
 * [tx] "Send a Template" 200 example: invalid recipients are rejected one by one and reported in
 * results.rcpt_to_errors; [errors] "Resonse no valid recipients": none valid -> 400, code 5002.
 */
function checkRecipients(recipients: unknown[]): Checked<CheckedRecipients> {
  const accepted: Recipient[] = [];
  const errors: SparkPostError[] = [];
  recipients.forEach((raw, index) => {
    const checked = checkRecipient(raw, index);
    if (checked.ok) accepted.push(checked.value);
    else errors.push(checked.error);
  });
  if (accepted.length === 0) return reject(400, { message: "At least one valid recipient is required", code: "5002" });
  return ok({ accepted, errors });
}

function checkRecipientsField(recipients: unknown): Checked<unknown[]> {
  // [errors] "Reponse for no recipeints": 422, 1400, "recipients or list_id required".
  if (recipients === undefined) return missing("recipients or list_id required");
  if (Array.isArray(recipients)) return ok(recipients);
  // [errors] "Response improper `recipients` type".
  if (!isObject(recipients)) return invalid("Invalid recipients type - needs to be json_array or json_object");
  // [tx] "Stored Recipient List": { list_id }. This endpoint stores no lists, so none exists:
  // [errors] "Response recipient list not found": 422, 1603.
  if (typeof recipients.list_id !== "string") return missing("recipients or list_id required");
  return reject(422, {
    message: "Subresource not found",
    description: `Recipient list '${recipients.list_id}' does not exist`,
    code: "1603",
  });
}

const inlineFields = [
  "from",
  "subject",
  "html",
  "text",
  "amp_html",
  "reply_to",
  "headers",
  "attachments",
  "inline_images",
] as const;

// [tx] "Header Notes": Content-Type and Content-Transfer-Encoding are not allowed, To is generated
// from each recipient, and the object holds headers other than Subject, From, To and Reply-To.
const reservedHeaders = new Set(["content-type", "content-transfer-encoding", "to", "subject", "from", "reply-to"]);

function headerProblem(name: string, value: string): string | undefined {
  // RFC 5322 field-name: printable US-ASCII except colon.
  if (!/^[!-9;-~]+$/.test(name)) return "Invalid header name";
  if (reservedHeaders.has(name.toLowerCase())) return "Header not allowed";
  if (value === "") return "Missing header content";
  if (value.trim() === "") return "Header content all whitespace";
  if (/[\r\n]/.test(value)) return "Invalid header content";
  return undefined;
}

/** [errors] "Invalid header" responses: 422, code 3002 ("Invalid header" in [codes]). */
function checkHeaders(headers: Record<string, string> | undefined): Rejection | undefined {
  for (const [name, value] of Object.entries(headers ?? {})) {
    const problem = headerProblem(name, value);
    if (problem !== undefined) {
      return reject(422, {
        message: "Invalid header",
        description: `Error while validating header ${name}: ${problem}`,
        code: "3002",
      });
    }
  }
  return undefined;
}

function checkFrom(from: unknown): Checked<InlineContent["from"]> {
  // [async] "Removal of Description Field" example and [errors]: "content.from is a required field".
  if (from === undefined) return missing("content.from is a required field");
  let parsed: InlineContent["from"];
  let email: string;
  if (typeof from === "string") {
    parsed = from;
    email = from;
  } else if (isObject(from)) {
    const object = parseWith(fromObjectSchema, from, "content.from");
    if (!object.ok) return object;
    parsed = object.value;
    email = object.value.email;
  } else {
    return typeMismatch("content.from", from, "string or json_object");
  }
  // [errors] "Template Content and Templates API", "Reponse invalid from email address": 400, 1307.
  if (!isEmail(email)) {
    return reject(400, {
      message: "failed to update database",
      description: `content.from.email: "${email}" isn't a valid email format.`,
      code: "1307",
    });
  }
  return ok(parsed);
}

/** The rules of [tx] "Send Inline Content", with the bodies of [errors]. */
function checkInline(content: Record<string, unknown>): Checked<InlineContent> {
  const from = checkFrom(content.from);
  if (!from.ok) return from;
  const rest = parseWith(inlineContentSchema, content, "content");
  if (!rest.ok) return rest;
  const { html, text, amp_html: amp, inline_images: images } = rest.value;
  // [tx] "At a minimum, html or text is required."; [errors] "Response no valid fields with AMP".
  if (html === undefined && text === undefined) {
    return missing(
      amp === undefined
        ? "At least one of 'text' or 'html' needs to exist in 'content'"
        : "content.amp_html requires content.html or content.text",
    );
  }
  if (images !== undefined && images.length > 0 && html === undefined) {
    return missing("content.inline_images requires content.html");
  }
  return checkHeaders(rest.value.headers) ?? ok({ from: from.value, ...rest.value });
}

/** [tx] "Send RFC822 Content": email_rfc822 alone; its MIME is parsed after the 200 [async]. */
function checkRfc822(content: Record<string, unknown>): Checked<Rfc822Content> {
  const clash = [...inlineFields, "template_id", "ab_test_id"].find((field) => content[field] !== undefined);
  // [errors] "Response invalid combination of fields": "content.email_rfc822 and content.subject are mutually exclusive".
  if (clash !== undefined) return combination(`content.email_rfc822 and content.${clash} are mutually exclusive`);
  const parsed = parseWith(rfc822ContentSchema, content, "content");
  if (parsed.ok && parsed.value.email_rfc822 === "") return missing("No valid fields exist in the 'content' object");
  return parsed;
}

/** [tx] "Send a Template" / "Send an A/B Test". Stored templates and tests are not modelled. */
function checkStored(content: Record<string, unknown>): Checked<TemplateContent | AbTestContent> {
  // [errors] "Reponse not specify template_id and ab_test_id".
  if (content.template_id !== undefined && content.ab_test_id !== undefined) {
    return combination("You may not specify both template_id and ab_test_id");
  }
  if (content.template_id !== undefined) return parseWith(templateContentSchema, content, "content");
  return parseWith(abTestContentSchema, content, "content");
}

function checkContent(content: unknown): Checked<TransmissionContent> {
  // [api] "Example Error": 422, 1400, "content object or template_id required".
  if (content === undefined) return missing("content object or template_id required");
  if (!isObject(content)) return typeMismatch("content", content, "json_object");
  if (content.email_rfc822 !== undefined) return checkRfc822(content);
  if (content.template_id !== undefined || content.ab_test_id !== undefined) return checkStored(content);
  // [errors] "Response no valid content fields".
  if (!inlineFields.some((field) => content[field] !== undefined)) {
    return missing("No valid fields exist in the 'content' object");
  }
  return checkInline(content);
}

const byteLength = (value: string | undefined): number => (value === undefined ? 0 : Buffer.byteLength(value));

/** [tx] "The transmission content (text + html + attachments + inline images) is limited to 20 MBs." */
function contentBytes(content: TransmissionContent): number {
  if ("email_rfc822" in content) return byteLength(content.email_rfc822);
  if (!("from" in content)) return 0;
  const files = [...(content.attachments ?? []), ...(content.inline_images ?? [])];
  const fileBytes = files.reduce((sum, file) => sum + Math.floor((file.data.length * 3) / 4), 0);
  return byteLength(content.html) + byteLength(content.text) + byteLength(content.amp_html) + fileBytes;
}

const maxContentBytes = 20 * 1024 * 1024;
const maxSubstitutionBytes = 100_000;

/** Checks that need the parsed fields: sizes, lengths in bytes, start_time, return_path. */
function checkLimits(top: z.output<typeof topLevelSchema>, content: TransmissionContent): Rejection | undefined {
  // [tx] campaign_id "Maximum length - 64 bytes", description "Maximum length - 1024 bytes".
  for (const [field, max] of [
    ["campaign_id", 64],
    ["description", 1024],
  ] as const) {
    const length = byteLength(top[field]);
    if (length > max)
      return invalid(`field '${field}' is of length '${length}', but needs to be of max length '${max}'`);
  }
  // [errors] "Response error parsing start time"; [tx] start_time "Default: now".
  const start = top.options?.start_time;
  if (start !== undefined && start !== "now" && Number.isNaN(Date.parse(start))) {
    return invalid("Error parsing scheduled start_time");
  }
  // [errors] "Response for invalid return path".
  if (top.return_path !== undefined && !isEmail(top.return_path)) {
    return invalid(`return_path '${top.return_path}' is not a valid email address`);
  }
  // [errors] "Response for subsitution data too large": 422, 2002.
  if (
    top.substitution_data !== undefined &&
    byteLength(JSON.stringify(top.substitution_data)) >= maxSubstitutionBytes
  ) {
    return reject(422, {
      message: "Substitution data too large",
      description: `Transmission-level substitution data must be less than ${maxSubstitutionBytes} bytes`,
      code: "2002",
    });
  }
  // [errors] "Response content size is too big".
  if (contentBytes(content) > maxContentBytes) {
    return invalid("The estimated message size is above the 20 MB message size limit");
  }
  return undefined;
}

interface CheckedTransmission {
  request: TransmissionRequest;
  rejected: SparkPostError[];
}

function checkTransmission(body: unknown): Checked<CheckedTransmission> {
  // [errors] "Response JSON object expected".
  if (!isObject(body)) return invalid("JSON object expected");
  const recipients = checkRecipientsField(body.recipients);
  if (!recipients.ok) return recipients;
  const content = checkContent(body.content);
  if (!content.ok) return content;
  const top = parseWith(topLevelSchema, body, "");
  if (!top.ok) return top;
  const limits = checkLimits(top.value, content.value);
  if (limits !== undefined) return limits;
  const checked = checkRecipients(recipients.value);
  if (!checked.ok) return checked;
  const request = { ...top.value, recipients: checked.value.accepted, content: content.value };
  return ok({ request, rejected: checked.value.errors });
}

// ---------------------------------------------------------------------------------------------
// HTTP.

const transmissionsPath = "/api/v1/transmissions";
const maxBodyBytes = 30 * 1024 * 1024;

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

const errorAnswer = (status: number, error: SparkPostError, headers?: Record<string, string>): Answer => ({
  status,
  body: { errors: [error] } satisfies ErrorResponse,
  ...(headers !== undefined && { headers }),
});

/**
 * [api] "Authentication": the raw API key, or Basic credentials whose username is the key and
 * whose password is empty. Anything else (e.g. "Bearer <key>") is unauthorized.
 */
function authorized(header: string | undefined, apiKey: string): boolean {
  if (header === undefined) return false;
  if (header === apiKey) return true;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
  return basic?.[1] !== undefined && Buffer.from(basic[1], "base64").toString("utf8") === `${apiKey}:`;
}

function lowerCaseHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

/** Decodes and parses the body, or the error SparkPost gives for it. */
function parseBody(raw: Buffer): Checked<unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    // [errors] "Response Invalid UTF8 found in json"; [codes] 1305 -> 400.
    return reject(400, { message: "invalid UTF-8", description: "Non-UTF-8 data found in json", code: "1305" });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    return ok(parsed);
  } catch {
    // [errors] "Response invalid json": 422, 1300.
    return invalid("Problems parsing request as json");
  }
}

/** [tx] num_rcpt_errors: a number; [errors] "Reponse invalid query param": 400, 1200. */
function parseNumRcptErrors(value: string | null): Checked<number> {
  if (value === null) return ok(Number.POSITIVE_INFINITY);
  if (!/^\d+$/.test(value)) {
    return reject(400, {
      message: "invalid params",
      description: "param 'num_rcpt_errors' must be an integer",
      code: "1200",
    });
  }
  return ok(Number(value));
}

interface FailurePlan {
  status: number;
  remaining: number;
  headers: Record<string, string>;
  errors: SparkPostError[];
}

interface Waiter {
  count: number;
  resolve: (transmissions: ReceivedTransmission[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** The default `errors` of a failNext status: [codes] and [api] "Error Table". */
function defaultErrors(status: number): SparkPostError[] {
  if (status === 420) return [{ message: "Exceed Sending Limit (hourly)", code: "2101" }];
  if (status === 429) return [{ message: "Too many requests" }];
  return [{ message: STATUS_CODES[status] ?? `HTTP ${status}` }];
}

function send(response: ServerResponse, answer: Answer): void {
  const text = JSON.stringify(answer.body);
  // 420 has no reason phrase in Node; [api] "Error Table" names it.
  const reason = answer.status === 420 ? "Exceed Sending Limit" : (STATUS_CODES[answer.status] ?? "Unknown");
  response.writeHead(answer.status, reason, {
    ...answer.headers,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
  });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= maxBodyBytes) chunks.push(chunk);
  }
  return size <= maxBodyBytes ? Buffer.concat(chunks) : undefined;
}

/** A numeric id like SparkPost's ("11668787484950529" in [tx]), unique per endpoint. */
function idGenerator(): () => string {
  let next = BigInt(Date.now()) * 100_000n + BigInt(randomInt(0, 100_000));
  return () => String(next++);
}

class EndpointState {
  readonly apiKey: string;
  readonly transmissions: ReceivedTransmission[] = [];
  readonly failures: FailurePlan[] = [];
  readonly waiters = new Set<Waiter>();
  readonly nextId = idGenerator();
  stopped = false;

  constructor(apiKey: string) {
    this.apiKey = apiKey;
  }

  takeFailure(): FailurePlan | undefined {
    const plan = this.failures[0];
    if (plan === undefined) return undefined;
    plan.remaining -= 1;
    if (plan.remaining <= 0) this.failures.shift();
    return plan;
  }

  record(transmission: ReceivedTransmission): void {
    this.transmissions.push(transmission);
    for (const waiter of this.waiters) {
      if (this.transmissions.length >= waiter.count) {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        waiter.resolve([...this.transmissions]);
      }
    }
  }

  /** Everything up to the body checks: auth, path, method, query, media type, size, JSON. */
  precheck(request: IncomingMessage, raw: Buffer | undefined): Checked<{ body: unknown; numRcptErrors: number }> {
    // [observed] 401 body; [api] "Error Table": 401 Unauthorized.
    if (!authorized(request.headers.authorization, this.apiKey)) return reject(401, { message: "Unauthorized." });
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    // [api] "Trailing slashes are ignored"; [codes] 1101 "invalid URI" -> 404.
    if (url.pathname.replace(/\/+$/, "") !== transmissionsPath)
      return reject(404, { message: "invalid URI", code: "1101" });
    // [errors] "Response invalid HTTP method": 405, 1102. Only creating a transmission is modelled.
    if (request.method !== "POST") {
      return reject(405, {
        message: "invalid http method",
        description: `${request.method ?? "?"} is not supported on ${transmissionsPath}`,
        code: "1102",
      });
    }
    const numRcptErrors = parseNumRcptErrors(url.searchParams.get("num_rcpt_errors"));
    if (!numRcptErrors.ok) return numRcptErrors;
    // [codes] 1700 "Unsupported Content-Type header" -> 415; [tx] "Request (application/json)".
    if (!/^application\/json\s*(;|$)/i.test(request.headers["content-type"] ?? "")) {
      return reject(415, { message: "Unsupported Content-Type header", code: "1700" });
    }
    // [api] "Error Table": 413 Request Entity Too Large.
    if (raw === undefined) return reject(413, { message: "Request Entity Too Large" });
    const body = parseBody(raw);
    return body.ok ? ok({ body: body.value, numRcptErrors: numRcptErrors.value }) : body;
  }

  answer(request: IncomingMessage, raw: Buffer | undefined): Answer {
    const pre = this.precheck(request, raw);
    if (!pre.ok) return errorAnswer(pre.status, pre.error, pre.status === 405 ? { allow: "POST" } : undefined);
    const checked = checkTransmission(pre.value.body);
    if (!checked.ok) return errorAnswer(checked.status, checked.error);
    const { request: body, rejected } = checked.value;
    const id = this.nextId();
    this.record({ id, body, headers: lowerCaseHeaders(request) });
    const counts = {
      total_rejected_recipients: rejected.length,
      total_accepted_recipients: body.recipients.length,
      id,
    };
    if (rejected.length === 0) return { status: 200, body: { results: counts } satisfies TransmissionResponse };
    // [tx] "Send a Template" 200 example; [codes] 2000 "transmission created, but with validation errors".
    const response: TransmissionResponse = {
      errors: [{ message: "transmission created, but with validation errors", code: "2000" }],
      results: { rcpt_to_errors: rejected.slice(0, pre.value.numRcptErrors), ...counts },
    };
    return { status: 200, body: response };
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const raw = await readBody(request);
    const plan = this.takeFailure();
    if (plan !== undefined) {
      send(response, { status: plan.status, body: { errors: plan.errors }, headers: plan.headers });
      return;
    }
    send(response, this.answer(request, raw));
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts a SparkPost Transmissions API on 127.0.0.1 and a free port. Call stop() when done. */
export async function startSparkPostEndpoint(options: { apiKey?: string } = {}): Promise<SparkPostEndpoint> {
  const state = new EndpointState(options.apiKey ?? randomBytes(20).toString("hex"));
  const server = createServer((request, response) => {
    state.handle(request, response).catch((error: unknown) => {
      if (response.headersSent) response.destroy();
      else
        send(response, {
          status: 500,
          body: { errors: [{ message: "Internal Server Error", description: String(error) }] },
        });
    });
  });
  const port = await listen(server);
  let stopping: Promise<void> | undefined;

  const stop = async (): Promise<void> => {
    state.stopped = true;
    for (const waiter of state.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error("SparkPost endpoint stopped"));
    }
    state.waiters.clear();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeAllConnections();
    });
  };

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey: state.apiKey,
    transmissions: state.transmissions,
    failNext(status, failOptions = {}) {
      if (!Number.isInteger(status) || status < 400 || status > 599)
        throw new RangeError(`not an error status: ${status}`);
      const times = failOptions.times ?? Number.POSITIVE_INFINITY;
      if (!(times > 0)) throw new RangeError(`times must be positive: ${times}`);
      state.failures.push({
        status,
        remaining: times,
        headers: failOptions.headers ?? {},
        errors: failOptions.errors ?? defaultErrors(status),
      });
    },
    waitFor(count, timeoutMs = 5000) {
      if (state.transmissions.length >= count) return Promise.resolve([...state.transmissions]);
      if (state.stopped) return Promise.reject(new Error("SparkPost endpoint stopped"));
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          count,
          resolve,
          reject,
          timer: setTimeout(() => {
            state.waiters.delete(waiter);
            reject(new Error(`${state.transmissions.length} of ${count} transmissions arrived within ${timeoutMs} ms`));
          }, timeoutMs),
        };
        state.waiters.add(waiter);
      });
    },
    stop: () => (stopping ??= stop()),
  };
}
