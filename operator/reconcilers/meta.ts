// What the reconcilers read from metadata beyond name and namespace. The schemas keep metadata
// loose (the API server owns it), so these fields are read defensively.
import type { RelaisResource } from "#crds";

export interface ResourceMeta {
  generation: number;
  uid: string | undefined;
  finalizers: string[];
  deleting: boolean;
}

export function metaOf(resource: RelaisResource): ResourceMeta {
  const metadata = resource.metadata as Record<string, unknown>;
  const generation = typeof metadata.generation === "number" ? metadata.generation : 1;
  const finalizers = Array.isArray(metadata.finalizers)
    ? metadata.finalizers.filter((item): item is string => typeof item === "string")
    : [];
  return {
    generation,
    uid: typeof metadata.uid === "string" ? metadata.uid : undefined,
    finalizers,
    deleting: typeof metadata.deletionTimestamp === "string",
  };
}
