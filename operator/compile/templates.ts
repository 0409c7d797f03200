// Templates are compiled when a Campaign or Automation is applied, so a mistake shows in its
// status with a position instead of failing every message in the delivery pool. The same engines
// and options as the deliver pool's renderer (strictFilters: a misspelt filter is an error).
import { Liquid } from "liquidjs";
import mjml2html from "mjml";
import type { Message } from "#crds";

export interface TemplateProblem {
  /** The field, as kubectl names it: "spec.message.email.subject". */
  field: string;
  message: string;
  line: number | undefined;
  column: number | undefined;
}

const engine = new Liquid({ ownPropertyOnly: true, strictFilters: true });

interface LiquidError {
  message: string;
  token?: { getPosition?: () => [number, number] };
}

function liquidProblem(field: string, template: string): TemplateProblem | undefined {
  try {
    engine.parse(template);
    return undefined;
  } catch (error) {
    const liquid = error as LiquidError;
    const [line, column] = liquid.token?.getPosition?.() ?? [undefined, undefined];
    // The library appends ", line:1, col:7"; the position is reported in its own fields.
    const message = liquid.message.replace(/, line:\d+, col:\d+$/, "");
    return { field, message, line, column };
  }
}

async function mjmlProblems(field: string, source: string): Promise<TemplateProblem[]> {
  try {
    const result = await mjml2html(source, { validationLevel: "soft", minify: false });
    return result.errors.map((error) => ({ field, message: error.message, line: error.line, column: undefined }));
  } catch (error) {
    return [
      { field, message: error instanceof Error ? error.message : String(error), line: undefined, column: undefined },
    ];
  }
}

/** Every problem in the message's templates; an empty list when all compile. Never throws. */
export async function checkMessage(message: Message, path = "spec.message"): Promise<TemplateProblem[]> {
  const texts: [string, string | undefined][] = [];
  const problems: TemplateProblem[] = [];
  if (message.email !== undefined) {
    const email = message.email;
    texts.push(
      [`${path}.email.subject`, email.subject],
      [`${path}.email.preheader`, email.preheader],
      [`${path}.email.html`, email.html],
      [`${path}.email.text`, email.text],
      [`${path}.email.mjml`, email.mjml],
    );
    if (email.mjml !== undefined) problems.push(...(await mjmlProblems(`${path}.email.mjml`, email.mjml)));
  }
  if (message.webpush !== undefined) {
    const push = message.webpush;
    texts.push(
      [`${path}.webpush.title`, push.title],
      [`${path}.webpush.body`, push.body],
      [`${path}.webpush.url`, push.url],
    );
    for (const [index, action] of (push.actions ?? []).entries()) {
      texts.push(
        [`${path}.webpush.actions[${index}].title`, action.title],
        [`${path}.webpush.actions[${index}].url`, action.url],
      );
    }
  }
  for (const [field, text] of texts) {
    const problem = text === undefined ? undefined : liquidProblem(field, text);
    if (problem !== undefined) problems.push(problem);
  }
  return problems;
}

/** "spec.message.email.subject line 1, column 7: undefined filter: nofilter" */
export function describeProblem(problem: {
  field: string;
  message: string;
  line: number | undefined;
  column: number | undefined;
}): string {
  const where =
    problem.line === undefined
      ? problem.field
      : `${problem.field} line ${problem.line}${problem.column === undefined ? "" : `, column ${problem.column}`}`;
  return `${where}: ${problem.message}`;
}
