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
  #triggers = new Map<string, CompiledAutomation[]>();
  #cancels = new Map<string, CompiledAutomation[]>();

  put(automation: CompiledAutomation): void {
    this.#byKey.set(`${automation.namespace}/${automation.name}`, automation);
    this.#reindex();
  }

  remove(namespace: string, name: string): void {
    this.#byKey.delete(`${namespace}/${name}`);
    this.#reindex();
  }

  /** Every automation, compiled or not. */
  all(): CompiledAutomation[] {
    return [...this.#byKey.values()];
  }

  /** Namespaces with at least one automation: the timer poller visits these. */
  namespaces(): string[] {
    return [...new Set([...this.#byKey.values()].map((automation) => automation.namespace))];
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

  #reindex(): void {
    const triggers = new Map<string, CompiledAutomation[]>();
    const cancels = new Map<string, CompiledAutomation[]>();
    const add = (index: Map<string, CompiledAutomation[]>, key: string, automation: CompiledAutomation) => {
      const list = index.get(key) ?? [];
      if (!list.includes(automation)) list.push(automation);
      index.set(key, list);
    };
    for (const automation of this.#byKey.values()) {
      if (automation.problems.length > 0) continue;
      add(triggers, `${automation.namespace}/${automation.spec.trigger.event}`, automation);
      for (const cancel of automation.cancels) add(cancels, `${automation.namespace}/${cancel.event}`, automation);
    }
    this.#triggers = triggers;
    this.#cancels = cancels;
  }
}
