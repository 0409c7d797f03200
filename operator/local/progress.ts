// What local mode prints while it runs: per Sender, Automation and Campaign, the messages planned
// (jobs on RELAIS_SENDS) and their outcomes (RELAIS_FEEDBACK), read with plain NATS
// subscriptions, plus what the SMTP sink and the push endpoint actually received.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { feedbackMessageSchema, sendJobSchema, Subjects } from "#runtime";

interface Tally {
  planned: number;
  outcomes: Map<string, number>;
}

export interface ProgressReport {
  /** "Sender transactional-email" → counts. */
  lines: Map<string, Tally>;
}

export class Progress {
  readonly #jobs = new Map<string, { sender: string; source: string }>();
  readonly #tallies = new Map<string, Tally>();
  #subscriptions: Subscription[] = [];

  /** Starts counting; `stop` ends it. */
  start(nc: NatsConnection): void {
    const sends = nc.subscribe(Subjects.allSends);
    const feedback = nc.subscribe(Subjects.allFeedback);
    this.#subscriptions = [sends, feedback];
    void (async () => {
      for await (const message of sends) this.#onJob(message.json());
    })();
    void (async () => {
      for await (const message of feedback) this.#onFeedback(message.json());
    })();
  }

  stop(): void {
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
  }

  #tally(line: string): Tally {
    let tally = this.#tallies.get(line);
    if (tally === undefined) {
      tally = { planned: 0, outcomes: new Map() };
      this.#tallies.set(line, tally);
    }
    return tally;
  }

  #onJob(value: unknown): void {
    const job = sendJobSchema.safeParse(value);
    if (!job.success) return;
    const sender = `Sender ${job.data.namespace}/${job.data.sender}`;
    const source = `${job.data.source.kind} ${job.data.namespace}/${job.data.source.name}`;
    if (this.#jobs.has(job.data.id)) return;
    this.#jobs.set(job.data.id, { sender, source });
    this.#tally(sender).planned += 1;
    this.#tally(source).planned += 1;
  }

  #onFeedback(value: unknown): void {
    const feedback = feedbackMessageSchema.safeParse(value);
    if (!feedback.success || feedback.data.messageId === undefined) return;
    const job = this.#jobs.get(feedback.data.messageId);
    if (job === undefined) return;
    for (const line of [job.sender, job.source]) {
      const outcomes = this.#tally(line).outcomes;
      outcomes.set(feedback.data.outcome, (outcomes.get(feedback.data.outcome) ?? 0) + 1);
    }
  }

  /** Messages a channel reported as sent, all sources together. */
  get sent(): number {
    let total = 0;
    for (const [line, tally] of this.#tallies) if (line.startsWith("Sender ")) total += tally.outcomes.get("sent") ?? 0;
    return total;
  }

  /** One line per Sender, Automation and Campaign that has planned something. */
  lines(): string[] {
    return [...this.#tallies.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([line, tally]) => {
        const outcomes = [...tally.outcomes.entries()].map(([outcome, count]) => `${count} ${outcome}`);
        return `${line}: ${tally.planned} planned${outcomes.length > 0 ? `, ${outcomes.join(", ")}` : ""}`;
      });
  }
}
