// The delivery pipeline of one Sender's pool: fetch a batch (pool.concurrency jobs), claim and read
// profiles (1 Redis round trip), render, take rate-limit tokens (1 round trip per attempt), send
// concurrently, record outcomes, report them, then ack. A send is marked done in Redis as soon as
// its channel answers (marks that land in the same tick share one round trip), before its message
// is acked: a redelivery after a crash is recognised and not sent again, and the only window for
// a duplicate is a crash between a channel accepting a message and its mark.
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { delay, sendJobSchema } from "#runtime";
import type { FeedbackMessage, FeedbackOutcome, Logger, Runnable, SendJob } from "#runtime";
import type { RenderedMessage, SendResult } from "./channel.ts";
import type { ConfigView, SenderState, TemplateLookup } from "./config-view.ts";
import { decide } from "./decide.ts";
import type { Recipient } from "./decide.ts";
import type { DeliverMetrics, DeliverOutcome, SkipReason } from "./metrics.ts";
import { durationSeconds, renderEmail, renderPush } from "./render.ts";
import type { LinkOptions } from "./render.ts";
import { Intake } from "./intake.ts";
import type { PolicyStage } from "./policy/stage.ts";
import { ACK_WAIT_MS } from "./consumer.ts";
import type { DeliverStore } from "./store.ts";
import { CLAIM_TTL_MS } from "./store.ts";

export interface PipelineDeps {
  namespace: string;
  sender: string;
  consumer: Consumer;
  store: DeliverStore;
  config: ConfigView;
  metrics: DeliverMetrics;
  log: Logger;
  links: LinkOptions;
  /** Publishes an outcome; rejections are logged, never fatal. */
  feedback: (message: FeedbackMessage, messageId: string) => Promise<void>;
  /** The send-policy stage; every claimed send passes it before rendering. */
  policy?: PolicyStage;
  now?: () => Date;
}

/** One fetched job on its way through the pipeline. */
interface Item {
  /** Its outcome is recorded, reported and settled already (sent items finish one by one). */
  finished?: boolean;
  /** Its outcome could not be published on RELAIS_FEEDBACK. */
  unreported?: boolean;
  message: JsMsg;
  job: SendJob;
  template?: TemplateLookup;
  recipient?: Recipient;
  rendered?: RenderedMessage;
  result?: Final;
}

/** How an item ends this attempt. */
type Final =
  | { kind: "outcome"; outcome: "sent" | "failed" | "bounced" | "expired"; reason?: string; address?: string }
  | { kind: "skip"; reason: SkipReason }
  | { kind: "retry"; delayMs: number; reason: string }
  | { kind: "hold"; delayMs: number; reason: string }
  /** Its record is done already: `outcome` is what it says ("sent", "skipped:<reason>", ...). */
  | { kind: "duplicate"; outcome: string }
  | { kind: "busy"; remainingMs: number };

const MISSING_CONFIG_RETRY_MS = 5000;
/** When a send whose outcome could not be published comes back to publish it again. */
const FEEDBACK_RETRY_MS = 2000;

const RECORDED_OUTCOMES: ReadonlySet<string> = new Set<FeedbackOutcome>([
  "sent",
  "failed",
  "bounced",
  "expired",
  "skipped",
]);

/** The outcome an item reports on RELAIS_FEEDBACK, if any. */
function feedbackOf(
  result: Final | undefined,
): { outcome: FeedbackOutcome; reason?: string; address?: string } | undefined {
  if (result?.kind === "outcome") return result;
  if (result?.kind === "skip") return { outcome: "skipped", reason: result.reason };
  if (result?.kind !== "duplicate") return undefined;
  // The record says "<outcome>" or "skipped:<reason>"; the address was not kept.
  const [outcome = "", ...rest] = result.outcome.split(":");
  if (!RECORDED_OUTCOMES.has(outcome)) return undefined;
  return { outcome: outcome as FeedbackOutcome, ...(rest.length > 0 && { reason: rest.join(":") }) };
}

const MAX_BATCHES_IN_FLIGHT = 2;
/** How often a batch still sending tells JetStream and Redis it is alive. */
const HEARTBEAT_MS = 20_000;
const MISSING_CONFIG_MAX_DELIVERIES = 60;

function backoffMs(spec: SenderState["spec"], attempt: number): number {
  const initial = durationSeconds(spec.retry.initialBackoff) * 1000;
  const max = durationSeconds(spec.retry.maxBackoff) * 1000;
  const base = Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

function channelOf(spec: SenderState["spec"]): "email" | "webpush" {
  return spec.channel;
}

export class DeliveryPipeline implements Runnable {
  readonly #deps: PipelineDeps;
  readonly #labels: { namespace: string; sender: string };
  readonly #marks: Coalescer<{ id: string; outcome: string | undefined } | undefined>;
  readonly #intake: Intake;
  #ready = false;

  constructor(deps: PipelineDeps) {
    this.#deps = deps;
    this.#intake = new Intake(deps.consumer);
    this.#labels = { namespace: deps.namespace, sender: deps.sender };
    this.#marks = new Coalescer(async (records) => {
      await deps.store.complete(
        deps.namespace,
        records.filter((record) => record !== undefined),
      );
    });
  }

  /** True while the Sender's config and channel are in place and batches are being fetched. */
  get ready(): boolean {
    return this.#ready;
  }

  async run(signal: AbortSignal): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    while (!signal.aborted) {
      const sender = await this.#deps.config.sender();
      if (sender?.channel.kind !== "built") {
        this.#ready = false;
        await delay(1000, signal);
        continue;
      }
      this.#ready = true;
      // Two batches overlap: one waits on Redis, NATS or the channel while the other is taken
      // and prepared. Each holds at most pool.concurrency messages.
      while (inFlight.size >= MAX_BATCHES_IN_FLIGHT) await Promise.race(inFlight);
      const messages = await this.#intake.take(sender.spec.pool.concurrency, signal);
      if (messages.length === 0) continue;
      // A taken batch is finished even when the signal aborts meanwhile: that is the drain.
      const batch = this.processBatch(sender, messages, signal).catch((error: unknown) => {
        this.#deps.log.error({ err: error }, "batch failed; its messages are redelivered");
      });
      inFlight.add(batch);
      void batch.finally(() => inFlight.delete(batch));
    }
    await Promise.all(inFlight);
    this.#ready = false;
    await this.#intake.close();
  }

  /** Processes one batch to the end: every message is acked, naked or terminated. */
  async processBatch(sender: SenderState, messages: JsMsg[], signal: AbortSignal): Promise<void> {
    const { metrics } = this.#deps;
    metrics.inflight.inc(this.#labels, messages.length);
    try {
      const items = this.#parse(messages);
      await this.#attachTemplates(items);
      await this.#claim(items, channelOf(sender.spec));
      await this.#applyPolicies(items, sender);
      await this.#render(items, sender);
      await this.#sendAll(items, sender, signal);
      await this.#finish(items, sender);
      await this.#observeOutcomes(items, sender);
    } finally {
      metrics.inflight.dec(this.#labels, messages.length);
    }
  }

  #parse(messages: JsMsg[]): Item[] {
    const items: Item[] = [];
    for (const message of messages) {
      const parsed = sendJobSchema.safeParse(safeJson(message));
      if (parsed.success) {
        items.push({ message, job: parsed.data });
        continue;
      }
      this.#deps.log.error({ subject: message.subject, seq: message.seq }, "malformed send job terminated");
      this.#count("failed");
      message.term("malformed send job");
    }
    return items;
  }

  async #attachTemplates(items: Item[]): Promise<void> {
    for (const item of items) {
      item.template = await this.#deps.config.template(item.job.source.kind, item.job.source.name);
      if (item.template.kind === "missing") {
        item.result =
          item.message.info.deliveryCount >= MISSING_CONFIG_MAX_DELIVERIES
            ? { kind: "outcome", outcome: "failed", reason: "config_missing" }
            : { kind: "retry", delayMs: MISSING_CONFIG_RETRY_MS, reason: "template not published yet" };
      } else if (item.template.compiled.kind === "invalid") {
        item.result = { kind: "outcome", outcome: "failed", reason: item.template.compiled.reason };
      }
    }
  }

  async #claim(items: Item[], channel: "email" | "webpush"): Promise<void> {
    const open = items.filter((item) => item.result === undefined);
    const claims = await this.#deps.store.prepare(
      this.#deps.namespace,
      open.map((item) => item.job),
    );
    open.forEach((item, index) => {
      const claim = claims[index];
      if (claim === undefined) item.result = { kind: "busy", remainingMs: CLAIM_TTL_MS };
      else if (claim.state === "busy") item.result = { kind: "busy", remainingMs: claim.remainingMs };
      else if (claim.state === "done") item.result = { kind: "duplicate", outcome: claim.outcome };
      else {
        const decision = decide(item.job, channel, claim);
        if (decision.kind === "skip") item.result = { kind: "skip", reason: decision.reason };
        else item.recipient = decision.recipient;
      }
    });
  }

  /** Send policies decide, for every claimed send with a recipient: pass, hold or skip. */
  async #applyPolicies(items: Item[], sender: SenderState): Promise<void> {
    const stage = this.#deps.policy;
    if (stage === undefined) return;
    const policies = await this.#deps.config.policies();
    const open = items.filter((item) => item.result === undefined && item.recipient !== undefined);
    const hasHoldout = open.some(
      (item) => item.template?.kind === "found" && item.template.holdoutPercent !== undefined,
    );
    // Without policies or holdouts there is nothing to decide, and no round trip (pauses lapse
    // with the policies that set them).
    if (open.length === 0 || (policies.length === 0 && !hasHoldout)) return;
    const verdicts = await stage.evaluate(
      open.map((item) => {
        const template = item.template?.kind === "found" ? item.template : undefined;
        return {
          job: item.job,
          channel: channelOf(sender.spec),
          timezone: item.recipient?.profile.timezone ?? null,
          sourceLabels: template?.labels ?? {},
          holdoutPercent: template?.holdoutPercent,
        };
      }),
      policies,
    );
    open.forEach((item, index) => {
      const verdict = verdicts[index];
      if (verdict?.kind === "hold") item.result = { kind: "hold", delayMs: verdict.delayMs, reason: verdict.reason };
      else if (verdict?.kind === "skip") item.result = { kind: "skip", reason: verdict.reason };
    });
  }

  /** Feeds the batch's outcomes to auto-pause; a failure here never fails the batch. */
  async #observeOutcomes(items: Item[], sender: SenderState): Promise<void> {
    const stage = this.#deps.policy;
    if (stage === undefined) return;
    const outcomes = items.flatMap((item) =>
      item.result?.kind === "outcome" &&
      (item.result.outcome === "sent" || item.result.outcome === "bounced" || item.result.outcome === "failed")
        ? [{ job: item.job, outcome: item.result.outcome }]
        : [],
    );
    try {
      const policies = await this.#deps.config.policies();
      const paused = await stage.observe(outcomes, policies, sender.labels);
      for (const target of paused) this.#deps.log.warn({ target }, "paused by a send policy: held until resumed");
    } catch (error) {
      this.#deps.log.warn({ err: error }, "auto-pause not evaluated for this batch");
    }
  }

  async #render(items: Item[], sender: SenderState): Promise<void> {
    for (const item of items) {
      if (item.result !== undefined || item.recipient === undefined || item.template?.kind !== "found") continue;
      const context = {
        namespace: this.#deps.namespace,
        messageId: item.job.id,
        profile: item.recipient.profile,
        event: item.job.event,
      };
      const compiled = item.template.compiled;
      let rendered;
      if (compiled.kind === "email" && item.recipient.kind === "email" && sender.spec.email !== undefined) {
        rendered = await renderEmail({
          compiled: compiled.template,
          sender: sender.spec.email,
          to: item.recipient.address,
          context,
          links: this.#deps.links,
        });
      } else if (
        compiled.kind === "webpush" &&
        item.recipient.kind === "webpush" &&
        sender.spec.webpush !== undefined
      ) {
        rendered = await renderPush({
          compiled: compiled.template,
          sender: sender.spec.webpush,
          subscription: item.recipient.subscription,
          context,
        });
      } else {
        item.result = { kind: "outcome", outcome: "failed", reason: "message does not match the Sender's channel" };
        continue;
      }
      if (rendered.kind === "templateError")
        item.result = { kind: "outcome", outcome: "failed", reason: rendered.reason };
      else item.rendered = rendered.message;
    }
  }

  /** Takes tokens for every renderable item (waiting as the limits say), then sends them together. */
  async #sendAll(items: Item[], sender: SenderState, signal: AbortSignal): Promise<void> {
    const pending = items.filter((item) => item.result === undefined && item.rendered !== undefined);
    const sends: Promise<void>[] = [];
    // A slow channel must not let JetStream redeliver, nor the claim lapse, while still sending.
    const heartbeat = setInterval(() => {
      const open = items.filter((item) => item.finished !== true && item.recipient !== undefined);
      for (const item of open) item.message.working();
      void this.#deps.store
        .extend(
          this.#deps.namespace,
          open.map((item) => item.job.id),
        )
        .catch(() => undefined);
    }, HEARTBEAT_MS);
    try {
      await this.#grantAndSend(pending, sender, signal, sends);
    } finally {
      clearInterval(heartbeat);
    }
  }

  async #grantAndSend(
    initial: Item[],
    sender: SenderState,
    signal: AbortSignal,
    sends: Promise<void>[],
  ): Promise<void> {
    let pending = initial;
    let lastProgress = performance.now();
    while (pending.length > 0) {
      const requests = pending.map((item) => ({ domain: this.#domainThrottle(sender, item) }));
      const limit = sender.spec.rateLimit;
      const limits =
        limit === undefined ? undefined : { perSecond: limit.perSecond, burst: limit.burst ?? limit.perSecond };
      // Nothing limited: grant locally, without a round trip.
      const unlimited = limits === undefined && requests.every((request) => request.domain === undefined);
      const { grants, waitMs } = unlimited
        ? { grants: requests.map(() => true), waitMs: 0 }
        : await this.#deps.store.take(this.#deps.namespace, this.#deps.sender, limits, requests);
      const refused: Item[] = [];
      pending.forEach((item, index) => {
        if (grants[index] === true) sends.push(this.#send(item, sender));
        else refused.push(item);
      });
      pending = refused;
      if (pending.length === 0) break;
      if (signal.aborted) {
        for (const item of pending) item.result = { kind: "retry", delayMs: 1000, reason: "draining" };
        break;
      }
      const started = performance.now();
      if (started - lastProgress > ACK_WAIT_MS / 3) {
        for (const item of pending) item.message.working();
        lastProgress = started;
      }
      // Ask again when about half of the remaining tokens are due, not at every single token.
      const perToken = limits === undefined ? 0 : 1000 / limits.perSecond;
      await delay(Math.max(waitMs, Math.min(1000, (pending.length / 2) * perToken)), signal);
      this.#deps.metrics.rateLimitWait.inc(this.#labels, (performance.now() - started) / 1000);
    }
    await Promise.all(sends);
  }

  #domainThrottle(sender: SenderState, item: Item): { name: string; perSecond: number } | undefined {
    if (item.recipient?.kind !== "email") return undefined;
    const domain = item.recipient.address.split("@")[1]?.toLowerCase();
    const throttle = sender.spec.email?.domainThrottles?.find((entry) => entry.domain.toLowerCase() === domain);
    return throttle === undefined || domain === undefined ? undefined : { name: domain, perSecond: throttle.perSecond };
  }

  async #send(item: Item, sender: SenderState): Promise<void> {
    if (item.rendered === undefined || sender.channel.kind !== "built") return;
    const channel = channelOf(sender.spec);
    const stop = this.#deps.metrics.sendDuration.startTimer({ ...this.#labels, channel });
    const result = await sender.channel.channel.send(item.rendered);
    stop();
    item.result = this.#classify(item, result, sender);
    // Record at once: the longer a sent message stays unmarked, the more a crash would resend.
    await this.#marks.add(this.#record(item));
    item.finished = true;
    item.unreported = !(await this.#report(item, sender));
    this.#settle(item);
  }

  /** The Redis record of an item's result; undefined outcome releases its claim. */
  #record(item: Item): { id: string; outcome: string | undefined } | undefined {
    const result = item.result ?? { kind: "retry", delayMs: 1000, reason: "not processed" };
    if (result.kind === "outcome") return { id: item.job.id, outcome: result.outcome };
    if (result.kind === "skip") return { id: item.job.id, outcome: `skipped:${result.reason}` };
    if ((result.kind === "retry" || result.kind === "hold") && item.recipient !== undefined)
      return { id: item.job.id, outcome: undefined };
    return undefined;
  }

  #classify(item: Item, result: SendResult, sender: SenderState): Final {
    const address = item.recipient?.kind === "email" ? item.recipient.address : item.recipient?.subscription.endpoint;
    switch (result.kind) {
      case "sent":
        return { kind: "outcome", outcome: "sent" };
      case "expired":
        return {
          kind: "outcome",
          outcome: "expired",
          reason: result.reason,
          ...(address !== undefined && { address }),
        };
      case "permanent":
        return {
          kind: "outcome",
          outcome: result.bounce ? "bounced" : "failed",
          reason: result.reason,
          ...(address !== undefined && { address }),
        };
      case "transient": {
        const attempt = item.message.info.deliveryCount;
        if (attempt >= sender.spec.retry.maxAttempts)
          return { kind: "outcome", outcome: "failed", reason: `${result.reason} (after ${attempt} attempts)` };
        return {
          kind: "retry",
          delayMs: result.retryAfterMs ?? backoffMs(sender.spec, attempt),
          reason: result.reason,
        };
      }
    }
  }

  /** Records, reports and settles the items not finished one by one (never sent). */
  async #finish(items: Item[], sender: SenderState): Promise<void> {
    const rest = items.filter((item) => item.finished !== true);
    const records = rest.map((item) => this.#record(item)).filter((record) => record !== undefined);
    await this.#deps.store.complete(this.#deps.namespace, records);
    await Promise.all(
      rest.map(async (item) => {
        item.unreported = !(await this.#report(item, sender));
      }),
    );
    for (const item of rest) this.#settle(item);
  }

  /**
   * Publishes the item's outcome on RELAIS_FEEDBACK; resolves false when that failed (the item is
   * then naked, not acked, so its redelivery publishes it again). A duplicate publishes its
   * recorded outcome again under the same Nats-Msg-Id: JetStream drops it when the first one got
   * through, and otherwise the reports get the outcome a crash or a NATS outage took away (after
   * the stream's one-hour duplicate window, a report may count it twice).
   */
  async #report(item: Item, sender: SenderState): Promise<boolean> {
    const feedback = feedbackOf(item.result);
    if (feedback === undefined) return true;
    const { outcome, reason, address } = feedback;
    const message: FeedbackMessage = {
      namespace: this.#deps.namespace,
      outcome,
      profileId: item.job.profileId,
      messageId: item.job.id,
      channel: channelOf(sender.spec),
      at: (this.#deps.now?.() ?? new Date()).toISOString(),
      ...(reason !== undefined && { reason }),
      ...(address !== undefined && { address }),
    };
    return this.#deps.feedback(message, `${item.job.id}:${outcome}`).then(
      () => true,
      (error: unknown) => {
        this.#deps.log.warn({ err: error, outcome }, "feedback not published");
        return false;
      },
    );
  }

  #settle(item: Item): void {
    const result = item.result ?? { kind: "retry", delayMs: 1000, reason: "not processed" };
    if (item.unreported === true) {
      // Done, but its outcome is not on RELAIS_FEEDBACK: the redelivery finds the record done and
      // publishes it again (see #report).
      this.#count(result.kind === "outcome" ? result.outcome : result.kind === "skip" ? "skipped" : "duplicate");
      item.message.nak(FEEDBACK_RETRY_MS);
      return;
    }
    switch (result.kind) {
      case "outcome":
        this.#count(result.outcome);
        item.message.ack();
        return;
      case "skip":
        this.#count("skipped");
        this.#deps.metrics.skipped.inc({ ...this.#labels, reason: result.reason });
        item.message.ack();
        return;
      case "duplicate":
        this.#count("duplicate");
        item.message.ack();
        return;
      case "busy":
        // Another replica holds it, or held it and died: look again when its claim lapses.
        item.message.nak(result.remainingMs + Math.round(Math.random() * 1000));
        return;
      case "retry":
        this.#count("retried");
        item.message.nak(result.delayMs);
        return;
      case "hold":
        // Back in JetStream until the hold ends: nothing is lost, and no attempt is spent.
        this.#count("held");
        item.message.nak(result.delayMs);
        return;
    }
  }

  #count(outcome: DeliverOutcome): void {
    this.#deps.metrics.messages.inc({ ...this.#labels, channel: this.#channelLabel(), outcome });
  }

  #channelLabel(): string {
    return this.#deps.metrics.channel;
  }
}

/**
 * Gathers values added in the same tick and hands them to `flush` together: one Redis round trip
 * for every send that completed at about the same time, without holding any back.
 */
class Coalescer<T> {
  readonly #flush: (values: T[]) => Promise<void>;
  #queue: { value: T; resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(flush: (values: T[]) => Promise<void>) {
    this.#flush = flush;
  }

  add(value: T): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#queue.length === 0) setImmediate(() => void this.#drain());
      this.#queue.push({ value, resolve, reject });
    });
  }

  async #drain(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    try {
      await this.#flush(batch.map((entry) => entry.value));
      for (const entry of batch) entry.resolve();
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  }
}

function safeJson(message: JsMsg): unknown {
  try {
    return message.json();
  } catch {
    return undefined;
  }
}
