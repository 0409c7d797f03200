// The pool's view of the compiled configuration in NATS KV: its Sender (and the Channel built from
// it) and the templates of the Campaigns and Automations that send through it. A KV watch applies
// changes without a restart: a new Sender generation rebuilds the channel (the old one closes once
// its sends finish), a new template generation is compiled on first use.
import type { KV } from "@nats-io/kv";
import type { Message, SenderSpec } from "#crds";
import { compileEmail, compilePush, ConfigKeys, configSchemas, parseConfigKey } from "#runtime";
import type { Logger, Runnable } from "#runtime";
import type { Channel } from "./channel.ts";
import type { ChannelBuild } from "./channels/build.ts";
import type { NamedPolicy } from "./policy/stage.ts";

export type ChannelFactory = (spec: SenderSpec) => Promise<ChannelBuild>;

export interface SenderState {
  generation: number;
  labels: Readonly<Record<string, string>>;
  spec: SenderSpec;
  channel: ChannelBuild;
}

type Compiled =
  | { kind: "email"; template: Awaited<ReturnType<typeof compileEmail>> }
  | { kind: "webpush"; template: ReturnType<typeof compilePush> }
  | { kind: "invalid"; reason: string };

export type TemplateLookup =
  | {
      kind: "found";
      generation: number;
      compiled: Compiled;
      /** The Automation's or Campaign's labels: SendPolicy selectors match them. */
      labels: Readonly<Record<string, string>>;
      holdoutPercent: number | undefined;
    }
  | { kind: "missing" };

export class ConfigView implements Runnable {
  readonly #kv: KV;
  readonly #namespace: string;
  readonly #sender: string;
  readonly #makeChannel: ChannelFactory;
  readonly #log: Logger;
  #senderState: Promise<SenderState | undefined> | undefined;
  readonly #templates = new Map<string, Promise<TemplateLookup>>();
  #policies: Promise<NamedPolicy[]> | undefined;

  constructor(options: { kv: KV; namespace: string; sender: string; makeChannel: ChannelFactory; log: Logger }) {
    this.#kv = options.kv;
    this.#namespace = options.namespace;
    this.#sender = options.sender;
    this.#makeChannel = options.makeChannel;
    this.#log = options.log;
  }

  /** The Sender's current config and channel; undefined while the operator has not published it. */
  sender(): Promise<SenderState | undefined> {
    this.#senderState ??= this.#loadSender();
    return this.#senderState;
  }

  /** The compiled template of a Campaign or Automation, compiled once per generation. */
  template(kind: "Campaign" | "Automation", name: string): Promise<TemplateLookup> {
    const key = ConfigKeys.of(this.#namespace, kind, name);
    let lookup = this.#templates.get(key);
    if (lookup === undefined) {
      lookup = this.#loadTemplate(kind, key);
      this.#templates.set(key, lookup);
      // A missing template may be published later: forget the miss so the next job looks again.
      void lookup.then((result) => {
        if (result.kind === "missing") this.#templates.delete(key);
      });
    }
    return lookup;
  }

  /** The namespace's SendPolicies, loaded once and again after any of them changes. */
  policies(): Promise<NamedPolicy[]> {
    this.#policies ??= this.#loadPolicies().catch((error: unknown) => {
      this.#policies = undefined;
      throw error;
    });
    return this.#policies;
  }

  async #loadPolicies(): Promise<NamedPolicy[]> {
    const policies: NamedPolicy[] = [];
    for await (const key of await this.#kv.keys(ConfigKeys.of(this.#namespace, "SendPolicy", ">"))) {
      const entry = await this.#kv.get(key);
      const name = parseConfigKey(key)?.name;
      if (entry?.operation !== "PUT" || name === undefined) continue;
      const parsed = configSchemas.SendPolicy.safeParse(entry.json());
      if (parsed.success) policies.push({ name, spec: parsed.data.spec });
      else this.#log.error({ policy: name }, "send policy config in KV is invalid; ignored");
    }
    return policies.sort((a, b) => a.name.localeCompare(b.name));
  }

  async #loadSender(): Promise<SenderState | undefined> {
    const entry = await this.#kv.get(ConfigKeys.of(this.#namespace, "Sender", this.#sender));
    if (entry === null || entry.operation !== "PUT") {
      this.#senderState = undefined;
      return undefined;
    }
    const parsed = configSchemas.Sender.safeParse(entry.json());
    if (!parsed.success) {
      this.#log.error({ issues: parsed.error.issues.length }, "sender config in KV is invalid");
      this.#senderState = undefined;
      return undefined;
    }
    const channel = await this.#makeChannel(parsed.data.spec);
    if (channel.kind === "secretMissing")
      this.#log.warn({ secret: channel.secret, key: channel.key }, "sender secret missing");
    return { generation: parsed.data.generation, labels: parsed.data.labels ?? {}, spec: parsed.data.spec, channel };
  }

  async #loadTemplate(kind: "Campaign" | "Automation", key: string): Promise<TemplateLookup> {
    const entry = await this.#kv.get(key);
    if (entry === null || entry.operation !== "PUT") return { kind: "missing" };
    const parsed = configSchemas[kind].safeParse(entry.json());
    if (!parsed.success) {
      const compiled: Compiled = { kind: "invalid", reason: "config in KV is invalid" };
      return { kind: "found", generation: -1, compiled, labels: {}, holdoutPercent: undefined };
    }
    const spec = parsed.data.spec;
    return {
      kind: "found",
      generation: parsed.data.generation,
      compiled: await compile(spec.message),
      labels: parsed.data.labels ?? {},
      holdoutPercent: "audience" in spec ? spec.audience.holdoutPercent : spec.holdoutPercent,
    };
  }

  /** Watches the namespace's keys and drops what changed; the next use reloads it. */
  async run(signal: AbortSignal): Promise<void> {
    const watcher = await this.#kv.watch({ key: ConfigKeys.namespace(this.#namespace), include: "updates" });
    signal.addEventListener(
      "abort",
      () => {
        watcher.stop();
      },
      { once: true },
    );
    for await (const entry of watcher) {
      const parsed = parseConfigKey(entry.key);
      if (parsed === undefined) continue;
      if (parsed.kind === "Sender" && parsed.name === this.#sender) {
        const previous = this.#senderState;
        this.#senderState = undefined;
        this.#log.info({ revision: entry.revision }, "sender config changed");
        void retireChannel(previous);
      } else if (parsed.kind === "SendPolicy") {
        this.#policies = undefined;
      } else if (parsed.kind !== "Sender") {
        this.#templates.delete(entry.key);
      }
    }
  }
}

async function compile(message: Message): Promise<Compiled> {
  try {
    if (message.email !== undefined) return { kind: "email", template: await compileEmail(message.email) };
    if (message.webpush !== undefined) return { kind: "webpush", template: compilePush(message.webpush) };
    return { kind: "invalid", reason: "message has neither email nor webpush" };
  } catch (error) {
    return { kind: "invalid", reason: `template: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** Closes a replaced channel after a grace period, so sends already using it can finish. */
async function retireChannel(previous: Promise<SenderState | undefined> | undefined): Promise<void> {
  const state = await previous?.catch(() => undefined);
  if (state?.channel.kind !== "built") return;
  const channel: Channel = state.channel.channel;
  setTimeout(() => void channel.close(), 30_000).unref();
}
