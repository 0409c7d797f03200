// Starts, resumes, suspends and deletes campaign runs. Every engage replica watches the campaigns
// in the config KV and looks at each one every tick; the replica that takes a campaign's lease (a
// Redis key with a TTL, renewed while it works) is the only one to plan its run, and a replica that
// dies mid-run leaves the lease to expire: the next one resumes the run from its checkpoint.
//
// A suspended campaign that has no run in progress gets a preview (preview.ts): computed under the
// lease when its generation changes or a refresh is asked for, deleted when it resumes.
//
// Suspend drops what is queued: the planner stops at the end of its chunk and the run's jobs still
// in RELAIS_SENDS are purged (counted as `dropped`); resuming continues the run with the profiles
// not yet planned. Delete stops the planner and purges every kept run's queued jobs the same way.
// A local-time run spends most of its life between planners (nobody due yet): each tick resumes
// it, and a suspend that finds no planner marks it suspended itself.
import { randomBytes } from "node:crypto";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { campaignConfigSchema, CampaignRunStatuses, parseConfigKey, Streams, Subjects } from "#runtime";
import type { Logger, Runnable, SendJob } from "#runtime";
import { compileCampaign } from "./audience.ts";
import type { CompiledCampaign } from "./audience.ts";
import type { CampaignMetrics } from "./metrics.ts";
import { planLocalRun } from "./local-time.ts";
import { planRun } from "./planner.ts";
import { computePreview } from "./preview.ts";
import type { Clock, PlanEnd, PlannedRun } from "./planner.ts";
import { dueRun, runIdFor } from "./schedule.ts";
import type { CampaignStore } from "./store.ts";

export interface CampaignRunnerOptions {
  /** How often each campaign is looked at. */
  tickMs: number;
  /** Profiles read, decided and published together. */
  chunkSize: number;
  /** Runs whose report is kept per campaign. */
  runsKept: number;
  /** Lease TTL: how long a dead replica's run waits before another resumes it. */
  leaseMs: number;
}

export interface CampaignRunnerDeps {
  store: CampaignStore;
  jsm: JetStreamManager;
  kv: KV;
  publish: (subject: string, job: SendJob, msgId: string) => Promise<void>;
  clock: Clock;
  metrics: CampaignMetrics;
  log: Logger;
  options: CampaignRunnerOptions;
  /** This replica's identity in leases; a fresh random one by default. */
  owner?: string;
}

interface Active {
  controller: AbortController;
  done: Promise<void>;
}

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

export class CampaignRunner implements Runnable {
  readonly #deps: CampaignRunnerDeps;
  readonly #owner: string;
  readonly #campaigns = new Map<string, CompiledCampaign>();
  readonly #active = new Map<string, Active>();
  readonly #chores = new Set<Promise<void>>();
  /** The next run time last written per campaign, so the state is written only when it changes. */
  readonly #nextRuns = new Map<string, number | undefined>();
  #stopping = new AbortController();

  constructor(deps: CampaignRunnerDeps) {
    this.#deps = deps;
    this.#owner = deps.owner ?? `engage-${randomBytes(6).toString("hex")}`;
  }

  get(namespace: string, name: string): CompiledCampaign | undefined {
    return this.#campaigns.get(keyOf(namespace, name));
  }

  /** Applies a new generation of a campaign (from the KV watch). Suspending purges what is queued. */
  put(campaign: CompiledCampaign): void {
    const key = keyOf(campaign.namespace, campaign.name);
    const previous = this.#campaigns.get(key);
    this.#campaigns.set(key, campaign);
    if (previous === undefined) this.#deps.metrics.initialise(campaign.namespace, campaign.name);
    if (campaign.spec.suspend && previous?.spec.suspend !== true) {
      this.#chore(this.#purgeRuns(campaign.namespace, campaign.name, { markDeleted: false }));
    }
    // Resumed (or first seen resumed, e.g. resumed while engage was down): its preview is history
    // (status.preview goes, the preview API answers 404).
    if (!campaign.spec.suspend && previous?.spec.suspend !== false) {
      this.#chore(this.#deps.store.deletePreview(campaign.namespace, campaign.name));
    }
  }

  /** The campaign's key was deleted: stop its planner, purge its queued jobs, forget its state. */
  remove(namespace: string, name: string): void {
    if (!this.#campaigns.delete(keyOf(namespace, name))) return;
    const active = this.#active.get(keyOf(namespace, name));
    active?.controller.abort();
    this.#chore(
      (async () => {
        await active?.done;
        await this.#purgeRuns(namespace, name, { markDeleted: true });
      })(),
    );
  }

  /** Looks at every campaign once: starts or resumes the runs that are due (without awaiting them). */
  async tick(): Promise<void> {
    await Promise.all(
      [...this.#campaigns.values()].map(async (campaign) => {
        if (this.#active.has(keyOf(campaign.namespace, campaign.name)) || campaign.problems.length > 0) return;
        await this.#consider(campaign).catch((error: unknown) => {
          this.#deps.log.warn(
            { err: error, namespace: campaign.namespace, campaign: campaign.name },
            "campaign not looked at",
          );
        });
      }),
    );
  }

  /** Resolves once every planner and purge started so far has finished. */
  async idle(): Promise<void> {
    while (this.#active.size > 0 || this.#chores.size > 0) {
      await Promise.all([...[...this.#active.values()].map((active) => active.done), ...this.#chores]);
    }
  }

  /** Watches the campaigns in the KV and ticks until `signal`; then stops planners at a chunk boundary. */
  async run(signal: AbortSignal): Promise<void> {
    this.#stopping = new AbortController();
    const stop = () => {
      this.#stopping.abort();
    };
    signal.addEventListener("abort", stop, { once: true });
    const watching = this.watch(signal);
    while (!signal.aborted) {
      await this.tick();
      await this.#deps.clock.sleep(this.#deps.options.tickMs, signal);
    }
    await this.idle();
    await watching;
  }

  /** Keeps the runner's campaigns equal to the KV's until `signal` (run does this itself). */
  async watch(signal: AbortSignal): Promise<void> {
    const watcher = await this.#deps.kv.watch({ key: "*.Campaign.>" });
    signal.addEventListener(
      "abort",
      () => {
        watcher.stop();
      },
      { once: true },
    );
    for await (const entry of watcher) this.apply(entry);
  }

  /** Applies one KV entry of a Campaign. */
  apply(entry: KvWatchEntry): void {
    const key = parseConfigKey(entry.key);
    if (key?.kind !== "Campaign") return;
    if (entry.operation !== "PUT") {
      this.remove(key.namespace, key.name);
      return;
    }
    const parsed = campaignConfigSchema.safeParse(entry.json());
    if (!parsed.success) {
      this.#deps.log.error({ namespace: key.namespace, campaign: key.name }, "campaign config in KV is invalid");
      return;
    }
    const compiled = compileCampaign({ ...key, generation: parsed.data.generation, spec: parsed.data.spec });
    if (compiled.problems.length > 0)
      this.#deps.log.warn(
        { namespace: key.namespace, campaign: key.name, problems: compiled.problems },
        "campaign does not compile",
      );
    this.put(compiled);
  }

  #chore(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => {
      this.#deps.log.warn({ err: error }, "campaign purge failed");
    });
    this.#chores.add(tracked);
    void tracked.finally(() => this.#chores.delete(tracked));
  }

  async #consider(campaign: CompiledCampaign): Promise<void> {
    const { store, clock } = this.#deps;
    const { namespace, name } = campaign;
    const state = await store.state(namespace, name, clock.now());
    if (campaign.spec.suspend) {
      if (state.current !== undefined) await this.#markSuspended(campaign, state.current);
      else await this.#considerPreview(campaign, state);
      return;
    }
    const due = dueRun(campaign.spec, state.schedule, clock.now());
    if (state.current !== undefined) {
      // A run in progress (a local-time one lasts a day): the status already shows the next one.
      if (due.kind === "none") await this.#noteNextRun(campaign, due.nextAt);
      await this.#resume(campaign);
      return;
    }
    if (due.kind !== "run") {
      await this.#noteNextRun(campaign, due.nextAt);
      return;
    }
    if (!(await this.#lease(campaign))) return;
    // Read again under the lease: another replica may have started it meanwhile.
    const fresh = await store.state(namespace, name, clock.now());
    const still = dueRun(campaign.spec, fresh.schedule, clock.now());
    if (fresh.current !== undefined || still.kind !== "run") {
      await store.release(namespace, name, this.#owner);
      return;
    }
    const runId = runIdFor(still.slot, randomBytes(2).toString("hex"));
    const sender = campaign.spec.senderRef.name;
    await store.startRun({
      namespace,
      campaign: name,
      runId,
      sender,
      slot: still.slot,
      nowMs: clock.now(),
      remember: still.remember,
      keep: this.#deps.options.runsKept,
      ...(still.local !== undefined && { local: still.local }),
    });
    this.#deps.log.info({ namespace, campaign: name, runId }, "campaign run started");
    this.#start({
      namespace,
      campaign: name,
      runId,
      sender,
      owner: this.#owner,
      cursor: 0,
      ...(still.local !== undefined && { local: still.local, scheduled: false }),
    });
  }

  /**
   * A campaign suspended while its run has no planner (a local-time run waiting for its next
   * recipients, or one interrupted by an error): the run is marked suspended here, as its planner
   * would have done; put() has purged its queued jobs.
   */
  async #markSuspended(campaign: CompiledCampaign, current: string): Promise<void> {
    const { store, clock, metrics } = this.#deps;
    const { namespace, name } = campaign;
    // Most ticks find it marked already: a read, no lease.
    if ((await store.runMeta(namespace, name, current))?.status !== CampaignRunStatuses.running) return;
    if (!(await this.#lease(campaign))) return;
    try {
      // Read again under the lease: the run may have moved on meanwhile.
      const fresh = (await store.state(namespace, name, clock.now())).current;
      const meta = fresh === undefined ? undefined : await store.runMeta(namespace, name, fresh);
      if (meta?.status !== CampaignRunStatuses.running) return;
      await store.setStatus(namespace, name, meta.id, CampaignRunStatuses.suspended);
      metrics.runs.inc({ namespace, campaign: name, result: "suspended" });
    } finally {
      await store.release(namespace, name, this.#owner);
    }
  }

  /**
   * Resumes the run in progress: its planner died, or another replica holds it (the lease
   * decides). The run is read under the lease, as another replica may just have moved or ended it.
   */
  async #resume(campaign: CompiledCampaign): Promise<void> {
    const { store, clock } = this.#deps;
    const { namespace, name } = campaign;
    if (!(await this.#lease(campaign))) return;
    const { current } = await store.state(namespace, name, clock.now());
    const meta = current === undefined ? undefined : await store.runMeta(namespace, name, current);
    if (meta === undefined || (meta.status !== "running" && meta.status !== "suspended")) {
      await store.release(namespace, name, this.#owner);
      return;
    }
    if (meta.status === CampaignRunStatuses.suspended) await store.setStatus(namespace, name, meta.id, "running");
    this.#start({
      namespace,
      campaign: name,
      runId: meta.id,
      sender: meta.sender,
      owner: this.#owner,
      cursor: meta.cursor,
      ...(meta.local !== undefined && { local: meta.local, scheduled: meta.scheduled }),
    });
  }

  /**
   * Computes the preview of a suspended campaign when it has none for its generation, or a refresh
   * was asked for; under the campaign's lease, so one replica walks it and no run starts meanwhile.
   */
  async #considerPreview(
    campaign: CompiledCampaign,
    schedule: Awaited<ReturnType<CampaignStore["state"]>>,
  ): Promise<void> {
    const { namespace, name } = campaign;
    // Only what resuming would send: a run stopped mid-way resumes where it stopped, and a one-off
    // campaign that already ran sends nothing more; a preview of a fresh run would mislead in both.
    const due = dueRun(campaign.spec, schedule.schedule, this.#deps.clock.now());
    if (schedule.current !== undefined || (due.kind === "none" && due.nextAt === undefined)) return;
    const state = await this.#deps.store.previewState(namespace, name);
    if (state.generation === campaign.generation && state.answered >= state.requested) return;
    if (!(await this.#lease(campaign))) return;
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, this.#stopping.signal]);
    const key = keyOf(namespace, name);
    const done = this.#preview(campaign, signal, controller).finally(() => this.#active.delete(key));
    this.#active.set(key, { controller, done });
  }

  async #preview(campaign: CompiledCampaign, signal: AbortSignal, controller: AbortController): Promise<void> {
    const { store, log, options, clock } = this.#deps;
    const labels = { namespace: campaign.namespace, campaign: campaign.name };
    const renewal = this.#renewLease(campaign.namespace, campaign.name, controller);
    try {
      const preview = await computePreview(
        {
          store,
          now: () => clock.now(),
          chunkSize: options.chunkSize,
          current: () => this.get(campaign.namespace, campaign.name),
        },
        campaign,
        signal,
      );
      // Resumed while the samples rendered: the preview must not outlive the suspension.
      if (this.get(campaign.namespace, campaign.name)?.spec.suspend !== true)
        await store.deletePreview(campaign.namespace, campaign.name);
      else if (preview !== undefined)
        log.info(
          { ...labels, generation: preview.generation, audience: preview.audience },
          "campaign preview computed",
        );
    } catch (error) {
      log.warn({ err: error, ...labels }, "campaign preview failed; retrying");
    } finally {
      clearInterval(renewal);
      await store.release(campaign.namespace, campaign.name, this.#owner).catch(() => undefined);
    }
  }

  /** Renews the campaign's lease while work runs under it; aborts the work if it is lost. */
  #renewLease(namespace: string, campaign: string, controller: AbortController): ReturnType<typeof setInterval> {
    const { store, options } = this.#deps;
    return setInterval(() => {
      void store.renew(namespace, campaign, this.#owner, options.leaseMs).then(
        (held) => {
          if (!held) controller.abort();
        },
        () => undefined,
      );
    }, options.leaseMs / 3);
  }

  /** Records when the next run is due, for the Campaign's status (`nextRunAt`). */
  async #noteNextRun(campaign: CompiledCampaign, nextAt: number | undefined): Promise<void> {
    const key = keyOf(campaign.namespace, campaign.name);
    if (this.#nextRuns.has(key) && this.#nextRuns.get(key) === nextAt) return;
    await this.#deps.store.setNextRun(campaign.namespace, campaign.name, nextAt);
    this.#nextRuns.set(key, nextAt);
  }

  async #lease(campaign: CompiledCampaign): Promise<boolean> {
    return this.#deps.store.acquire(campaign.namespace, campaign.name, this.#owner, this.#deps.options.leaseMs);
  }

  #start(run: PlannedRun): void {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, this.#stopping.signal]);
    const key = keyOf(run.namespace, run.campaign);
    const done = this.#plan(run, signal, controller).finally(() => this.#active.delete(key));
    this.#active.set(key, { controller, done });
  }

  async #plan(run: PlannedRun, signal: AbortSignal, controller: AbortController): Promise<void> {
    const { store, metrics, log, options } = this.#deps;
    const labels = { namespace: run.namespace, campaign: run.campaign };
    const renewal = this.#renewLease(run.namespace, run.campaign, controller);
    metrics.inProgress.set(labels, 1);
    let end: PlanEnd | "error" = "error";
    try {
      const deps = {
        store,
        publish: this.#deps.publish,
        clock: this.#deps.clock,
        metrics,
        log,
        chunkSize: options.chunkSize,
        current: () => this.get(run.namespace, run.campaign),
      };
      const local = run.local;
      end =
        local === undefined ? await planRun(deps, run, signal) : await planLocalRun(deps, { ...run, local }, signal);
      await this.#settle(run, end);
    } catch (error) {
      // Redis or NATS failed: the run stays current and the next tick resumes it.
      log.warn({ err: error, ...labels, runId: run.runId }, "campaign run interrupted; resuming");
    } finally {
      clearInterval(renewal);
      metrics.inProgress.set(labels, 0);
      if (end !== "lost") await store.release(run.namespace, run.campaign, run.owner).catch(() => undefined);
    }
  }

  async #settle(run: PlannedRun, end: PlanEnd): Promise<void> {
    const { store, metrics, log, clock } = this.#deps;
    const labels = { namespace: run.namespace, campaign: run.campaign };
    if (end === "waiting") return;
    log.info({ ...labels, runId: run.runId, end }, "campaign planner stopped");
    if (end === "lost" || end === "stopped") return;
    // Only while this planner still holds the run: a paused one whose lease lapsed must not end
    // (or mark) a run another replica has taken over.
    if (!(await store.renew(run.namespace, run.campaign, run.owner, this.#deps.options.leaseMs))) return;
    if (end === "completed") {
      await store.finishRun({ ...run, status: CampaignRunStatuses.completed, nowMs: clock.now() });
      metrics.runs.inc({ ...labels, result: "completed" });
      return;
    }
    await store.setStatus(run.namespace, run.campaign, run.runId, CampaignRunStatuses.suspended);
    await this.#purge(run.namespace, run.campaign, { id: run.runId, sender: run.sender });
    metrics.runs.inc({ ...labels, result: "suspended" });
  }

  /** Purges the queued jobs of every kept run; for a deleted campaign, marks them and forgets it. */
  async #purgeRuns(namespace: string, name: string, options: { markDeleted: boolean }): Promise<void> {
    const { store, metrics } = this.#deps;
    const ids = await store.runIds(namespace, name);
    for (const id of ids) {
      const meta = await store.runMeta(namespace, name, id);
      if (meta === undefined) continue;
      await this.#purge(namespace, name, meta);
      if (!options.markDeleted) continue;
      if (meta.status === CampaignRunStatuses.running || meta.status === CampaignRunStatuses.suspended) {
        metrics.runs.inc({ namespace, campaign: name, result: "deleted" });
        await store.setStatus(namespace, name, id, CampaignRunStatuses.deleted);
        await store.finishRun({
          namespace,
          campaign: name,
          runId: id,
          status: CampaignRunStatuses.deleted,
          nowMs: this.#deps.clock.now(),
        });
      }
    }
    if (options.markDeleted) await store.forget(namespace, name, ids);
  }

  /** Purges one run's queued jobs from RELAIS_SENDS and counts them as dropped. */
  async #purge(namespace: string, campaign: string, run: { id: string; sender: string }): Promise<void> {
    const filter = Subjects.campaignSend(namespace, run.sender, campaign, run.id);
    const { purged } = await this.#deps.jsm.streams.purge(Streams.sends, { filter });
    if (purged > 0)
      await this.#deps.store.attribute({ namespace, campaign, runId: run.id }, "dropped", { count: purged });
  }
}
