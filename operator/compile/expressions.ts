// CEL filters and segments are checked when a Campaign or Automation is applied; an error names
// the field and the position, as the engage pool would otherwise meet it on every event.
import { checkExpression, ExpressionContexts } from "#crds";
import type { AutomationSpec, CampaignSpec, ExpressionContext } from "#crds";

export interface ExpressionProblem {
  field: string;
  message: string;
  line: number | undefined;
  column: number | undefined;
}

function check(field: string, expression: string | undefined, context: ExpressionContext): ExpressionProblem[] {
  if (expression === undefined) return [];
  const result = checkExpression(expression, context);
  if (result.kind === "valid") return [];
  return [{ field, message: result.message, line: result.position?.line, column: result.position?.column }];
}

export function checkAutomationExpressions(spec: AutomationSpec): ExpressionProblem[] {
  return [
    ...check("spec.trigger.filter", spec.trigger.filter, ExpressionContexts.triggerFilter),
    ...(spec.cancelOn ?? []).flatMap((cancel, index) =>
      check(`spec.cancelOn[${index}].filter`, cancel.filter, ExpressionContexts.cancelFilter),
    ),
  ];
}

export function checkCampaignExpressions(spec: CampaignSpec): ExpressionProblem[] {
  return check("spec.audience.segment", spec.audience.segment, ExpressionContexts.segment);
}
