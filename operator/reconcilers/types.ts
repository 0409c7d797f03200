// What every reconciler receives and returns. Reconcilers are level-triggered: given a key they
// read the current state, converge, and say when to look again; they never see the event.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Redis } from "ioredis";
import type { SenderSpec } from "#crds";
import type { Logger } from "#runtime";
import type { ScaleTargets } from "../autoscaler/targets.ts";
import type { PoolRef, PoolRunner, ResourceSource } from "../types.ts";

export interface ReconcileDeps {
  source: ResourceSource;
  pools: PoolRunner;
  kv: KV;
  jsm: JetStreamManager;
  /** Pools the autoscaler watches; reconcilers register and forget them. */
  scaling: ScaleTargets;
  log: Logger;
  now: () => Date;
  /** RELAIS_* settings every deliver pool gets (NATS, Redis, token secret, public URL). */
  deliverEnv: Record<string, string>;
  /** Scale-down stabilisation of every pool the autoscaler drives. */
  stabilizationWindowMs: number;
  /** The autoscaler's last lag reading of a pool, for status figures. */
  poolLag: (pool: PoolRef) => number | undefined;
  /** The namespaces this operator manages; all when absent (API keys of others are left alone). */
  namespaces?: readonly string[];
  /** Where the workers keep the figures folded into status (counters, runs, pauses); none: no figures. */
  redis?: Redis;
  /** Local mode: the transport every Sender is pointed at (an SMTP sink), applied before publishing. */
  senderOverride?: (spec: SenderSpec) => SenderSpec;
}

export type ReconcileResult = { kind: "done" } | { kind: "requeue"; afterMs: number };

export const done: ReconcileResult = { kind: "done" };
export const requeueAfter = (afterMs: number): ReconcileResult => ({ kind: "requeue", afterMs });

/** The finalizer that removes a Campaign's or an Automation's config before the resource goes. */
export const FINALIZER = "relais.dev/finalizer";
