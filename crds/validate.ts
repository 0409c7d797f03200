// Local mode reads manifests from files: they are validated here by the same schemas (and the same
// CEL rules) the API server enforces, with issues named by field path as kubectl shows them.
import type { z } from "zod";
import { automationKind } from "./automation.ts";
import { campaignKind } from "./campaign.ts";
import { API_VERSION, resourceSchema } from "./kind.ts";
import { sendPolicyKind } from "./sendpolicy.ts";
import { senderKind } from "./sender.ts";

export const senderSchema = resourceSchema(senderKind);
export const campaignSchema = resourceSchema(campaignKind);
export const automationSchema = resourceSchema(automationKind);
export const sendPolicySchema = resourceSchema(sendPolicyKind);

export type Sender = z.infer<typeof senderSchema>;
export type Campaign = z.infer<typeof campaignSchema>;
export type Automation = z.infer<typeof automationSchema>;
export type SendPolicy = z.infer<typeof sendPolicySchema>;
export type RelaisResource = Sender | Campaign | Automation | SendPolicy;

const schemas = {
  Sender: senderSchema,
  Campaign: campaignSchema,
  Automation: automationSchema,
  SendPolicy: sendPolicySchema,
} as const;
type KindName = keyof typeof schemas;

export interface ValidationIssue {
  /** Where, as kubectl prints it: "spec.pool.maxReplicas", "spec.cancelOn[0].event". */
  path: string;
  message: string;
}

export type ValidationResult =
  { kind: "valid"; resource: RelaisResource } | { kind: "invalid"; issues: ValidationIssue[] };

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) =>
      typeof segment === "number" ? `[${segment}]` : `${index === 0 ? "" : "."}${String(segment)}`,
    )
    .join("");
}

function isKind(kind: unknown): kind is KindName {
  return typeof kind === "string" && Object.hasOwn(schemas, kind);
}

/**
 * Validates one parsed manifest and applies the schema's defaults. Never throws on bad input:
 * every problem is an issue naming its field.
 */
export function validateManifest(manifest: unknown): ValidationResult {
  const object = typeof manifest === "object" && manifest !== null ? (manifest as Record<string, unknown>) : {};
  if (object.apiVersion !== API_VERSION) {
    return { kind: "invalid", issues: [{ path: "apiVersion", message: `must be ${API_VERSION}` }] };
  }
  if (!isKind(object.kind)) {
    return {
      kind: "invalid",
      issues: [{ path: "kind", message: `must be one of ${Object.keys(schemas).join(", ")}` }],
    };
  }
  const parsed = schemas[object.kind].safeParse(manifest);
  if (parsed.success) return { kind: "valid", resource: parsed.data };
  return { kind: "invalid", issues: parsed.error.issues.flatMap(toIssues) };
}

function toIssues(issue: z.core.$ZodIssue): ValidationIssue[] {
  // One issue per unknown field, named as the API server names it.
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      message: "field not declared in schema",
    }));
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}
