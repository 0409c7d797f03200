// The active Automations of every namespace, compiled once per generation and indexed by the event
// that triggers them and by the events that cancel them, so an event finds its automations without
// a scan. Fed from the config KV (<ns>.Automation.<name>).
import { compileExpression } from "#crds";
import type { AutomationSpec, CompiledExpression } from "#crds";

export interface CompiledAutomation {
  namespace: string;
  name: string;
  generation: number;
  spec: AutomationSpec;
  filter: CompiledExpression | undefined;
  cancels: { event: string; filter: CompiledExpression | undefined }[];
  /** Compile errors, for status; an automation with any never triggers. */
  problems: string[];
}

export function compileAutomation(
  namespace: string,
  name: string,
  generation: number,
  spec: AutomationSpec,
): CompiledAutomation {
  const problems: string[] = [];
  const compile = (expression: string | undefined, context: "triggerFilter" | "cancelFilter", field: string) => {
    if (expression === undefined) return undefined;
    const compiled = compileExpression(expression, context);
    if (compiled.kind === "invalid") {
      const at =
        compiled.position === undefined ? "" : ` at line ${compiled.position.line}, column ${compiled.position.column}`;
      problems.push(`${field}: ${compiled.message}${at}`);
    }
    return compiled;
  };
  return {
    namespace,
    name,
    generation,
    spec,
    filter: compile(spec.trigger.filter, "triggerFilter", "spec.trigger.filter"),
    cancels: (spec.cancelOn ?? []).map((cancel, index) => ({
      event: cancel.event,
      filter: compile(cancel.filter, "cancelFilter", `spec.cancelOn[${index}].filter`),
    })),
    problems,
  };
}

export class AutomationRegistry {
  readonly #byKey = new Map<string, CompiledAutomation>();
  readonly #triggers = new Map<string, CompiledAutomation[]>();
  readonly #cancels = new Map<string, CompiledAutomation[]>();
  /** Automations by namespace, then name: the timer poller visits these. */
  readonly #namespaces = new Map<string, Map<string, CompiledAutomation>>();

  /** Adds or replaces an automation: only its own index entries change. */
  put(automation: CompiledAutomation): void {
    const key = `${automation.namespace}/${automation.name}`;
    const previous = this.#byKey.get(key);
    if (previous !== undefined) this.#unindex(previous);
    let namespace = this.#namespaces.get(automation.namespace);
    if (namespace === undefined) {
      namespace = new Map();
      this.#namespaces.set(automation.namespace, namespace);
    }
    namespace.set(automation.name, automation);
    this.#byKey.set(key, automation);
    this.#index(automation);
  }

  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const previous = this.#byKey.get(key);
    if (previous === undefined) return;
    this.#byKey.delete(key);
    this.#unindex(previous);
    const left = this.#namespaces.get(namespace);
    left?.delete(name);
    if (left?.size === 0) this.#namespaces.delete(namespace);
  }

  /** Every automation, compiled or not. */
  all(): CompiledAutomation[] {
    return [...this.#byKey.values()];
  }

  /** Namespaces with at least one automation: the timer poller visits these. */
  namespaces(): string[] {
    return [...this.#namespaces.keys()];
  }

  /** The automations of `namespace`, compiled or not. */
  inNamespace(namespace: string): Iterable<CompiledAutomation> {
    return this.#namespaces.get(namespace)?.values() ?? [];
  }

  get(namespace: string, name: string): CompiledAutomation | undefined {
    return this.#byKey.get(`${namespace}/${name}`);
  }

  /** Automations of `namespace` triggered by `event` (suspended ones included: they count as held). */
  triggeredBy(namespace: string, event: string): readonly CompiledAutomation[] {
    return this.#triggers.get(`${namespace}/${event}`) ?? [];
  }

  /** Automations of `namespace` with a cancel event named `event`. */
  cancelledBy(namespace: string, event: string): readonly CompiledAutomation[] {
    return this.#cancels.get(`${namespace}/${event}`) ?? [];
  }

  /** The index keys of an automation: its trigger event, and each distinct cancel event. */
  #keys(automation: CompiledAutomation): { triggers: string[]; cancels: string[] } {
    if (automation.problems.length > 0) return { triggers: [], cancels: [] };
    const of = (event: string) => `${automation.namespace}/${event}`;
    return {
      triggers: [of(automation.spec.trigger.event)],
      cancels: [...new Set(automation.cancels.map((cancel) => of(cancel.event)))],
    };
  }

  #index(automation: CompiledAutomation): void {
    const { triggers, cancels } = this.#keys(automation);
    // New arrays, never changed in place: an event being handled keeps the list it got.
    const add = (index: Map<string, CompiledAutomation[]>, key: string) => {
      index.set(key, [...(index.get(key) ?? []), automation]);
    };
    for (const key of triggers) add(this.#triggers, key);
    for (const key of cancels) add(this.#cancels, key);
  }

  #unindex(automation: CompiledAutomation): void {
    const { triggers, cancels } = this.#keys(automation);
    const drop = (index: Map<string, CompiledAutomation[]>, key: string) => {
      const list = (index.get(key) ?? []).filter((entry) => entry !== automation);
      if (list.length === 0) index.delete(key);
      else index.set(key, list);
    };
    for (const key of triggers) drop(this.#triggers, key);
    for (const key of cancels) drop(this.#cancels, key);
  }
}
