// With `autoscaler: keda`, a pool that consumes a JetStream consumer gets a KEDA ScaledObject
// (nats-jetstream trigger on that consumer) and KEDA's HPA scales its Deployment; the built-in
// autoscaler leaves such pools alone. The ingest pool consumes nothing (it serves HTTP) and gets none.
import { ConsumerNames, Streams } from "#runtime";
import type { KubeObject, ResourceType } from "../controller/kube.ts";
import type { PoolSpec } from "../types.ts";

export const scaledObjectType: ResourceType = {
  group: "keda.sh",
  version: "v1alpha1",
  plural: "scaledobjects",
  kind: "ScaledObject",
  namespaced: true,
};

/** Lag per replica when the pool's resource names none. */
export const DEFAULT_TARGET_LAG_PER_REPLICA = 1000;

/** The stream and durable consumer a pool works through, or undefined for the ingest pool. */
export function poolConsumer(spec: PoolSpec): { stream: string; consumer: string } | undefined {
  switch (spec.kind) {
    case "deliver": {
      const sender = spec.owner?.name ?? spec.name.replace(/^deliver-/, "");
      return { stream: Streams.sends, consumer: ConsumerNames.deliver(spec.namespace, sender) };
    }
    case "engage":
      return { stream: Streams.events, consumer: ConsumerNames.engage };
    case "ingest":
      return undefined;
  }
}

export interface ScaledObjectOptions {
  /** The Deployment's name. */
  target: string;
  natsMonitoringEndpoint: string;
  metadata: KubeObject["metadata"];
}

/** The ScaledObject for `spec`, or undefined when the pool has no consumer to scale on. */
export function scaledObject(spec: PoolSpec, options: ScaledObjectOptions): KubeObject | undefined {
  const source = poolConsumer(spec);
  if (source === undefined) return undefined;
  return {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: options.metadata,
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: options.target },
      minReplicaCount: spec.minReplicas,
      maxReplicaCount: spec.maxReplicas,
      triggers: [
        {
          type: "nats-jetstream",
          metadata: {
            natsServerMonitoringEndpoint: options.natsMonitoringEndpoint,
            account: "$G",
            stream: source.stream,
            consumer: source.consumer,
            lagThreshold: String(spec.targetLagPerReplica ?? DEFAULT_TARGET_LAG_PER_REPLICA),
            // Wake a pool scaled to zero on the first queued message.
            activationLagThreshold: "0",
          },
        },
      ],
    },
  };
}
