// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// leader renews the Lease every retry period; a standby takes it over once it has seen no renewal
// for the Lease's duration, measured on its own clock from when it last saw the record change (so
// clock skew between replicas cannot shorten a lease). Writes carry the resourceVersion they read,
// so two standbys racing for an expired Lease cannot both win. A leader that cannot renew within
// the renew deadline stops leading before its Lease can expire; on shutdown it releases the Lease,
// so a standby takes over within one retry period instead of a whole lease duration.
import type { Logger, Runnable } from "#runtime";
import { sleep, systemClock } from "./clock.ts";
import type { Clock } from "./clock.ts";
import { KubeApiError, microTime, resourcePath } from "./kube.ts";
import type { KubeClient, KubeObject, ResourceType } from "./kube.ts";

export const leaseType: ResourceType = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  kind: "Lease",
  namespaced: true,
};

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Unique per replica: the pod name. */
  identity: string;
  /** How long a Lease holds without renewal. */
  leaseDurationMs: number;
  /** A leader that has not renewed for this long stops leading (< leaseDurationMs). */
  renewDeadlineMs: number;
  /** How often the leader renews and a standby tries to acquire. */
  retryPeriodMs: number;
  /**
   * Runs while this replica leads; its signal aborts when leadership is lost or the elector stops.
   * The elector waits for it to resolve before it stands by again or releases the Lease.
   */
  lead: (signal: AbortSignal) => Promise<void>;
  onLeadershipChange?: (leading: boolean) => void;
  /** Give the Lease up when stopped (default), so a standby need not wait for it to expire. */
  releaseOnStop?: boolean;
  clock?: Clock;
  log?: Logger;
}

/** Reads `signal.aborted` afresh (after an await, where type narrowing would assume it unchanged). */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

export class LeaderElector implements Runnable {
  readonly #options: LeaderElectorOptions;
  readonly #clock: Clock;
  /** The record last read and when (on our clock) it last changed. */
  #observed: { holder: string; renewTime: string; at: number } | undefined;
  #leading = false;

  constructor(options: LeaderElectorOptions) {
    if (options.renewDeadlineMs >= options.leaseDurationMs) {
      throw new RangeError("renewDeadlineMs must be shorter than leaseDurationMs");
    }
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Stands by, leads when elected, stands by again if leadership is lost, until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (await this.#tryAcquireOrRenew()) {
        await this.#leadUntilLost(signal);
      } else {
        await sleep(this.#clock, this.#options.retryPeriodMs, signal);
      }
    }
  }

  #path(withName: boolean): string {
    return resourcePath(leaseType, {
      namespace: this.#options.namespace,
      ...(withName && { name: this.#options.name }),
    });
  }

  #setLeading(leading: boolean): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    this.#options.log?.info(
      { lease: this.#options.name, identity: this.#options.identity },
      leading ? "became leader" : "stopped leading",
    );
    this.#options.onLeadershipChange?.(leading);
  }

  async #leadUntilLost(signal: AbortSignal): Promise<void> {
    const leading = new AbortController();
    const onAbort = (): void => {
      leading.abort();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    this.#setLeading(true);
    const work = this.#options.lead(leading.signal).catch((error: unknown) => {
      this.#options.log?.error({ err: error }, "leading failed");
    });
    await this.#renewLoop(leading.signal);
    leading.abort();
    await work;
    signal.removeEventListener("abort", onAbort);
    this.#setLeading(false);
    if (signal.aborted && this.#options.releaseOnStop !== false) await this.#release();
  }

  /** Renews every retry period until `signal` aborts or a renewal fails past the renew deadline. */
  async #renewLoop(signal: AbortSignal): Promise<void> {
    let lastRenew = this.#clock.now();
    while (!signal.aborted) {
      await sleep(this.#clock, this.#options.retryPeriodMs, signal);
      if (isAborted(signal)) return;
      if (await this.#tryAcquireOrRenew()) {
        lastRenew = this.#clock.now();
      } else if (this.#clock.now() - lastRenew >= this.#options.renewDeadlineMs || !this.#holdsObserved()) {
        return;
      }
    }
  }

  #holdsObserved(): boolean {
    return this.#observed?.holder === this.#options.identity;
  }

  #observe(spec: LeaseSpec): void {
    const holder = spec.holderIdentity ?? "";
    const renewTime = spec.renewTime ?? "";
    if (this.#observed?.holder !== holder || this.#observed.renewTime !== renewTime) {
      this.#observed = { holder, renewTime, at: this.#clock.now() };
    }
  }

  #ourSpec(previous: LeaseSpec | undefined): LeaseSpec {
    const now = microTime(this.#clock.now());
    const held = previous?.holderIdentity === this.#options.identity;
    return {
      holderIdentity: this.#options.identity,
      leaseDurationSeconds: Math.ceil(this.#options.leaseDurationMs / 1000),
      acquireTime: held ? (previous.acquireTime ?? now) : now,
      renewTime: now,
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (held || previous === undefined ? 0 : 1),
    };
  }

  /** One attempt: resolves true when this replica holds the Lease afterwards. Never rejects. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, name, namespace, identity } = this.#options;
    try {
      const lease = await client.get<Lease>(this.#path(true));
      if (lease === undefined) {
        await client.request({
          method: "POST",
          path: this.#path(false),
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: this.#ourSpec(undefined),
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      this.#observe(spec);
      const holder = spec.holderIdentity ?? "";
      if (holder !== "" && holder !== identity && !this.#expired(spec)) return false;
      const updated = await client.request<Lease>({
        method: "PUT",
        path: this.#path(true),
        body: { ...lease, spec: this.#ourSpec(spec) },
      });
      this.#observe(updated.spec ?? {});
      return true;
    } catch (error) {
      // A conflict means another replica wrote first: it holds the Lease now.
      if (!(error instanceof KubeApiError && error.status === 409)) {
        this.#options.log?.warn({ err: error, lease: name }, "lease request failed");
      }
      return false;
    }
  }

  #expired(spec: LeaseSpec): boolean {
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.#options.leaseDurationMs / 1000)) * 1000;
    return this.#observed !== undefined && this.#clock.now() >= this.#observed.at + durationMs;
  }

  /** Gives the Lease up so a standby need not wait for it to expire. Never rejects. */
  async #release(): Promise<void> {
    try {
      const lease = await this.#options.client.get<Lease>(this.#path(true));
      if (lease?.spec?.holderIdentity !== this.#options.identity) return;
      await this.#options.client.request({
        method: "PUT",
        path: this.#path(true),
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(this.#clock.now()) },
        },
      });
    } catch (error) {
      this.#options.log?.warn({ err: error, lease: this.#options.name }, "could not release the lease");
    }
  }
}
