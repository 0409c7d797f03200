// What every Relais kind declares: its names, its spec and status schemas, and how kubectl shows it.
import { z } from "zod";

export const GROUP = "relais.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const CATEGORY = "relais";

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
}

export interface KindDefinition<
  Kind extends string = string,
  Spec extends z.ZodType = z.ZodType,
  Status extends z.ZodType = z.ZodType,
> {
  kind: Kind;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  description: string;
  spec: Spec;
  status: Status;
  printerColumns: readonly PrinterColumn[];
  /** The scale subresource, so kubectl scale and autoscalers can drive the kind. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string };
}

export const readyColumn: PrinterColumn = {
  name: "Ready",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: "Whether the resource is valid and working.",
};

export const ageColumn: PrinterColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since creation.",
};

const metadataSchema = z.looseObject({
  name: z.string().min(1).max(253),
  namespace: z.string().min(1).max(63).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** The whole object (apiVersion, kind, metadata, spec, status) as local mode reads it from a file. */
export function resourceSchema<Kind extends string, Spec extends z.ZodType, Status extends z.ZodType>(
  definition: KindDefinition<Kind, Spec, Status>,
) {
  return z.strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(definition.kind),
    metadata: metadataSchema,
    spec: definition.spec,
    status: definition.status.optional(),
  });
}
