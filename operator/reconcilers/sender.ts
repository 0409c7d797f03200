// Sender: its Secrets hold the keys it needs, its JetStream consumer exists, its config is in the
// KV, its delivery pool runs (rolled when the spec changes) and is watched by the autoscaler.
import { createHash } from "node:crypto";
import { ConditionReasons, ConditionTypes } from "#crds";
import type { Sender, SenderSpec, SenderStatus } from "#crds";
import { ConfigKeys, ConsumerNames, PauseTargets, senderConsumerConfig, Streams } from "#runtime";
import type { ObjectKey, PoolRef, PoolSpec } from "../types.ts";
import { setConditions, statusChanged } from "./conditions.ts";
import { announcePause, pausedCondition } from "./figures.ts";
import type { Observation } from "./conditions.ts";
import { putConfig } from "./kv.ts";
import { metaOf } from "./meta.ts";
import { checkSecrets } from "./secrets.ts";
import { done, requeueAfter } from "./types.ts";
import type { ReconcileDeps, ReconcileResult } from "./types.ts";

/** A Secret may be created later: look again even without a change notification. */
const SECRET_RECHECK_MS = 30_000;

export function deliverPool(namespace: string, sender: string): PoolRef {
  return { namespace, name: `deliver-${sender}` };
}

export function configHash(spec: SenderSpec, secretsDigest: string): string {
  return createHash("sha256").update(JSON.stringify({ spec, secretsDigest })).digest("hex").slice(0, 16);
}

function poolSpec(
  sender: Sender,
  spec: SenderSpec,
  secrets: { secrets: string[]; digest: string },
  deps: ReconcileDeps,
): PoolSpec {
  const namespace = sender.metadata.namespace ?? "default";
  const fixed = spec.pool.replicas;
  const meta = metaOf(sender);
  return {
    ...deliverPool(namespace, sender.metadata.name),
    kind: "deliver",
    env: { ...deps.deliverEnv, RELAIS_NAMESPACE: namespace, RELAIS_SENDER: sender.metadata.name },
    secretRefs: secrets.secrets,
    owner: { kind: "Sender", namespace, name: sender.metadata.name, ...(meta.uid !== undefined && { uid: meta.uid }) },
    minReplicas: fixed ?? spec.pool.minReplicas,
    maxReplicas: fixed ?? spec.pool.maxReplicas,
    // KEDA's trigger threshold (keda mode); the built-in autoscaler reads it from its target.
    targetLagPerReplica: spec.pool.targetLagPerReplica,
    configHash: configHash(spec, secrets.digest),
  };
}

async function ensureConsumer(deps: ReconcileDeps, namespace: string, sender: string): Promise<void> {
  const config = senderConsumerConfig(namespace, sender);
  try {
    await deps.jsm.consumers.info(Streams.sends, config.durable_name);
  } catch {
    await deps.jsm.consumers.add(Streams.sends, config);
  }
}

async function removeSender(deps: ReconcileDeps, key: ObjectKey): Promise<ReconcileResult> {
  const pool = deliverPool(key.namespace, key.name);
  deps.scaling.remove(pool);
  await deps.kv.delete(ConfigKeys.of(key.namespace, "Sender", key.name));
  await deps.pools.delete(pool);
  // The consumer stays: work queued for a Sender that comes back is not lost.
  return done;
}

async function writeStatus(deps: ReconcileDeps, key: ObjectKey, sender: Sender, next: SenderStatus): Promise<void> {
  if (statusChanged(sender.status, next)) {
    await deps.source.writeStatus(key, { observedGeneration: metaOf(sender).generation, conditions: [], ...next });
  }
}

export async function reconcileSender(key: ObjectKey, deps: ReconcileDeps): Promise<ReconcileResult> {
  const resource = await deps.source.get(key);
  if (resource?.kind !== "Sender" || metaOf(resource).deleting) return removeSender(deps, key);
  const sender = resource;
  const { generation } = metaOf(sender);
  const spec = deps.senderOverride?.(sender.spec) ?? sender.spec;
  const paused =
    deps.redis === undefined
      ? undefined
      : await pausedCondition(
          { ...deps, redis: deps.redis },
          { namespace: key.namespace, target: PauseTargets.sender(key.name), annotations: sender.metadata.annotations },
        );
  await announcePause(deps, key, { previous: sender.status?.conditions, paused });
  const conditions = (observations: Observation[]) =>
    setConditions(sender.status?.conditions, paused === undefined ? observations : [...observations, paused], {
      generation,
      now: deps.now(),
    });

  const secrets = await checkSecrets(deps.source, key.namespace, spec);
  if (secrets.kind !== "ok") {
    const reason = secrets.kind === "missing" ? ConditionReasons.SecretMissing : ConditionReasons.SecretInvalid;
    const status: SenderStatus = {
      ...sender.status,
      observedGeneration: generation,
      conditions: conditions([{ type: ConditionTypes.Ready, status: "False", reason, message: secrets.message }]),
    };
    if (sender.status?.conditions?.[0]?.reason !== reason) {
      await deps.source.recordEvent(key, { type: "Warning", reason, message: secrets.message });
    }
    await writeStatus(deps, key, sender, status);
    return requeueAfter(SECRET_RECHECK_MS);
  }

  await ensureConsumer(deps, key.namespace, key.name);
  await putConfig(deps.kv, ConfigKeys.of(key.namespace, "Sender", key.name), {
    generation,
    // SendPolicy autoPause selectors match these labels in the deliver pools.
    ...(sender.metadata.labels !== undefined && { labels: sender.metadata.labels }),
    spec,
  });
  const pool = poolSpec(sender, spec, secrets, deps);
  await deps.pools.apply(pool);
  deps.scaling.set({
    pool,
    stream: Streams.sends,
    consumer: ConsumerNames.deliver(key.namespace, key.name),
    policy: {
      minReplicas: spec.pool.minReplicas,
      maxReplicas: spec.pool.maxReplicas,
      targetLagPerReplica: spec.pool.targetLagPerReplica,
      fixedReplicas: spec.pool.replicas,
      stabilizationWindowMs: deps.stabilizationWindowMs,
    },
  });
  const status = await readyStatus(deps, pool, conditions);
  await writeStatus(deps, key, sender, { observedGeneration: generation, ...status });
  return done;
}

async function readyStatus(
  deps: ReconcileDeps,
  pool: PoolRef,
  conditions: (observations: Observation[]) => SenderStatus["conditions"],
): Promise<SenderStatus> {
  const state = await deps.pools.state(pool);
  const replicas = state?.desiredReplicas ?? 0;
  const ready = state?.readyReplicas ?? 0;
  const lag = deps.poolLag(pool);
  const scaling = ready < replicas;
  return {
    conditions: conditions([
      // Scaled to zero is ready (the first queued message brings a replica back); replicas that
      // should run but none serves is not.
      replicas > 0 && ready === 0
        ? {
            type: ConditionTypes.Ready,
            status: "False",
            reason: ConditionReasons.PoolUnavailable,
            message: `Pool ${pool.name} has no ready replica (0 of ${replicas})`,
          }
        : {
            type: ConditionTypes.Ready,
            status: "True",
            reason: ConditionReasons.Reconciled,
            message: `Pool ${pool.name} runs ${ready} of ${replicas} replicas`,
          },
      {
        type: ConditionTypes.Progressing,
        status: scaling ? "True" : "False",
        reason: scaling ? ConditionReasons.PoolScaling : ConditionReasons.Reconciled,
        message: scaling ? `${replicas - ready} replicas starting` : "Pool is at its desired size",
      },
    ]),
    replicas,
    ...(lag !== undefined && { lag }),
  };
}
