// kubeconform's JSON schemas, made offline: the built-in kinds from the real API server's OpenAPI
// document, the custom kinds from their CRDs (ours and the Prometheus Operator's and KEDA's).
// Strict, as kubeconform's published "-strict" schemas are: an unknown field is an error.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runOk } from "./tools.ts";
import type { Manifest } from "./tools.ts";

type Schema = Record<string, unknown>;

interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

const intOrString = { anyOf: [{ type: "integer" }, { type: "string" }] };
const quantity = { anyOf: [{ type: "number" }, { type: "string" }] };

/** Adds `additionalProperties: false` wherever a schema lists properties and allows no others. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (typeof schema !== "object" || schema === null) return schema;
  const source = schema as Schema;
  if (source["x-kubernetes-int-or-string"] === true) return intOrString;
  const out: Schema = {};
  for (const [key, value] of Object.entries(source)) {
    // Property names are data, not schema keywords: never rewrite the map itself.
    out[key] =
      key === "properties" || key === "definitions"
        ? Object.fromEntries(Object.entries(value as Schema).map(([name, sub]) => [name, strict(sub)]))
        : strict(value);
  }
  const open = source["x-kubernetes-preserve-unknown-fields"] === true || "additionalProperties" in source;
  if ("properties" in source && !open) out.additionalProperties = false;
  if (source.nullable === true && typeof source.type === "string") out.type = [source.type, "null"];
  return out;
}

/** The definitions `root` refers to, directly or not (each kind's file carries only those). */
function reachable(root: string, definitions: Record<string, unknown>): Set<string> {
  const found = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
    } else if (typeof node === "object" && node !== null) {
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref" && typeof value === "string") add(value.replace("#/definitions/", ""));
        else visit(value);
      }
    }
  };
  const add = (name: string): void => {
    if (found.has(name)) return;
    found.add(name);
    visit(definitions[name]);
  };
  add(root);
  return found;
}

/** kubeconform's file name for a kind: `deployment-apps-v1.json`, `service-v1.json`. */
function builtinFile(gvk: GroupVersionKind): string {
  const group = gvk.group === "" ? "" : `-${gvk.group.split(".")[0] ?? ""}`;
  return `${gvk.kind.toLowerCase()}${group}-${gvk.version}.json`;
}

/** Writes a schema per built-in kind the API server serves into `dir`. */
async function writeBuiltinSchemas(dir: string, kubeconfig: string): Promise<void> {
  const openapi = JSON.parse(await runOk("kubectl", ["get", "--raw", "/openapi/v2"], { kubeconfig })) as {
    definitions: Record<string, Schema>;
  };
  const definitions: Record<string, unknown> = {};
  for (const [name, definition] of Object.entries(openapi.definitions)) {
    if (name.endsWith(".util.intstr.IntOrString")) definitions[name] = intOrString;
    else if (name.endsWith(".api.resource.Quantity")) definitions[name] = quantity;
    else definitions[name] = strict(definition);
  }
  await mkdir(dir, { recursive: true });
  for (const [name, definition] of Object.entries(openapi.definitions)) {
    const kinds = (definition["x-kubernetes-group-version-kind"] ?? []) as GroupVersionKind[];
    for (const gvk of kinds) {
      const used = Object.fromEntries([...reachable(name, definitions)].map((ref) => [ref, definitions[ref]]));
      const schema = { $ref: `#/definitions/${name}`, definitions: used };
      await writeFile(join(dir, builtinFile(gvk)), JSON.stringify(schema));
    }
  }
}

interface CrdVersion {
  name: string;
  schema?: { openAPIV3Schema?: Schema };
}

/** Writes `<group>/<kind>_<version>.json` for every version of every CRD given. */
async function writeCrdSchemas(dir: string, crds: Manifest[]): Promise<void> {
  for (const crd of crds) {
    const spec = crd.spec as { group: string; names: { kind: string }; versions: CrdVersion[] };
    await mkdir(join(dir, spec.group), { recursive: true });
    for (const version of spec.versions) {
      const schema = strict(version.schema?.openAPIV3Schema ?? {}) as Schema;
      // The API server adds these to every custom resource; CRDs rarely declare them.
      schema.properties = {
        apiVersion: { type: "string" },
        kind: { type: "string" },
        metadata: { type: "object" },
        ...(schema.properties as Schema | undefined),
      };
      await writeFile(
        join(dir, spec.group, `${spec.names.kind.toLowerCase()}_${version.name}.json`),
        JSON.stringify(schema),
      );
    }
  }
}

/**
 * Makes kubeconform's schemas in `dir` and returns the `-schema-location` arguments that find
 * them: built-in kinds first, then the CRDs given.
 */
export async function kubeconformSchemas(options: {
  dir: string;
  kubeconfig: string;
  crds: Manifest[];
}): Promise<string[]> {
  const builtin = join(options.dir, "builtin");
  const custom = join(options.dir, "crds");
  await writeBuiltinSchemas(builtin, options.kubeconfig);
  await writeCrdSchemas(custom, options.crds);
  return [
    "-schema-location",
    `${builtin}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
    "-schema-location",
    `${custom}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`,
  ];
}
