// Turns a kind's zod schemas into a CustomResourceDefinition with a structural OpenAPI v3 schema.
import { z } from "zod";
import { CATEGORY, GROUP, VERSION } from "./kind.ts";
import type { KindDefinition } from "./kind.ts";

type JsonSchema = Record<string, unknown>;

/** Formats the API server validates itself; zod's equivalent regex is dropped for them. */
const KUBERNETES_FORMATS = new Set(["date-time", "email", "uri", "uuid", "hostname"]);
const SAFE_INTEGER = 9007199254740991;

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** int | string unions become Kubernetes' int-or-string, the only union a structural schema allows. */
function intOrString(schema: JsonSchema): JsonSchema | undefined {
  const options = schema.anyOf;
  if (!Array.isArray(options) || options.length !== 2) return undefined;
  const types = options.map((option) => (isSchema(option) ? option.type : undefined)).sort();
  if (types[0] !== "integer" || types[1] !== "string") return undefined;
  const { anyOf: _anyOf, ...rest } = schema;
  return { ...rest, "x-kubernetes-int-or-string": true };
}

/**
 * Makes zod's OpenAPI output structural: no additionalProperties: false beside properties, no
 * unions but int-or-string, no safe-integer bounds, and no regex where a known format validates.
 * Throws when a property has no description, so `kubectl explain` documents every field.
 */
export function toStructural(schema: JsonSchema, path: string, missing: string[]): JsonSchema {
  const converted = intOrString(schema) ?? { ...schema };
  if (converted.additionalProperties === false) delete converted.additionalProperties;
  if (typeof converted.format === "string" && KUBERNETES_FORMATS.has(converted.format)) delete converted.pattern;
  if (converted.minimum === -SAFE_INTEGER) delete converted.minimum;
  if (converted.maximum === SAFE_INTEGER) delete converted.maximum;
  if (Array.isArray(converted.anyOf))
    throw new Error(`${path}: unions are not structural; use optional fields and a CEL rule`);
  if (isSchema(converted.properties)) {
    converted.properties = Object.fromEntries(
      Object.entries(converted.properties).map(([name, property]) => {
        const childPath = `${path}.${name}`;
        if (!isSchema(property)) return [name, property];
        if (typeof property.description !== "string" || property.description === "") missing.push(childPath);
        return [name, toStructural(property, childPath, missing)];
      }),
    );
  }
  if (isSchema(converted.items)) converted.items = toStructural(converted.items, `${path}[]`, missing);
  if (isSchema(converted.additionalProperties)) {
    converted.additionalProperties = toStructural(converted.additionalProperties, `${path}{}`, missing);
  }
  return converted;
}

function openApi(schema: z.ZodType, path: string): JsonSchema {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, { target: "openapi-3.0", io: "input" }) as JsonSchema;
  const missing: string[] = [];
  const structural = toStructural(json, path, missing);
  if (missing.length > 0) throw new Error(`fields without a description: ${missing.join(", ")}`);
  return structural;
}

export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string; labels: Record<string, string> };
  spec: JsonSchema;
}

export function customResourceDefinition(definition: KindDefinition): CustomResourceDefinition {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${definition.plural}.${GROUP}`, labels: { "app.kubernetes.io/part-of": "relais" } },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: definition.kind,
        listKind: `${definition.kind}List`,
        plural: definition.plural,
        singular: definition.singular,
        shortNames: [...definition.shortNames],
        categories: [CATEGORY],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: definition.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string", description: "APIVersion of this object: relais.dev/v1alpha1." },
                kind: { type: "string", description: `Kind of this object: ${definition.kind}.` },
                // The API server forbids anything but type on metadata.
                metadata: { type: "object" },
                spec: openApi(definition.spec, "spec"),
                status: openApi(definition.status, "status"),
              },
            },
          },
          subresources: {
            status: {},
            ...(definition.scale !== undefined && { scale: { ...definition.scale } }),
          },
          additionalPrinterColumns: definition.printerColumns.map((column) => ({ ...column })),
        },
      ],
    },
  };
}
