// Time to preview (the campaign created suspended) and then plan and enqueue one campaign run over N profiles (a realistic CEL segment, 20% of the
// addresses shared by two profiles, dedupeByEmail on), next to the raw JetStream async publish
// rate measured in the same run on the same server: the same number of messages, the same payload
// size, with a Nats-Msg-Id, awaited in windows of the planner's chunk size.
//
// Run: npm run bench:campaign   (or: node test/bench/campaign.ts)
// Settings (environment): BENCH_PROFILES (default 100000; 1000000 for the figure),
// BENCH_CHUNK (profiles per planner chunk, default 1000), BENCH_LOCAL_TIME=1 (the run in each
// recipient's local time, for a day whose hour has passed everywhere: the snapshot goes through
// the due set, then every recipient is due at once).
//
// This process owns the harness stack (nats-server, redis-server) and runs the campaign runner
// (engage's, with the real clock). Profiles are written straight into Redis with ingest's layout
// (not timed). The run is timed from the tick that starts it to the planner's end; the baseline
// from its first publish to its last ack. Figures go to stdout and bench-results/campaign.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Registry } from "prom-client";
import { campaignSpecSchema } from "#crds";
import { CampaignRunner, CampaignStore, compileCampaign, createCampaignMetrics, systemClock } from "#engage";
import { startStack } from "#harness";
import {
  connectNats,
  connectRedis,
  createLogger,
  ensureStreams,
  openConfigBucket,
  readCampaignPreview,
  readCampaignRuns,
  Streams,
  Subjects,
} from "#runtime";
import type { SendJob } from "#runtime";
import { seedProfiles } from "../fixtures/campaigns.ts";
import { commandLine, numberSetting, packageVersion } from "./support.ts";

const PROFILES = numberSetting("BENCH_PROFILES", 100_000, { min: 1000, max: 5_000_000 });
const CHUNK = numberSetting("BENCH_CHUNK", 1000, { min: 10, max: 10_000 });
const LOCAL_TIME = numberSetting("BENCH_LOCAL_TIME", 0, { min: 0, max: 1 }) === 1;
const SEGMENT = 'profile.attributes.country == "FR" && profile.attributes.points >= 10';

const rate = (count: number, ms: number): number => Math.round((count / ms) * 1000);

/** The campaign measured; with BENCH_LOCAL_TIME, in local time on a day whose every hour passed. */
function benchCampaign() {
  return campaignSpecSchema.parse({
    senderRef: { name: "mail" },
    message: { email: { subject: "Black Friday", html: "<p>-30%</p>" } },
    audience: { segment: SEGMENT },
    ...(LOCAL_TIME && {
      schedule: { at: new Date(Date.now() - 2 * 86_400_000).toISOString(), localTime: "00:00" },
    }),
  });
}

async function main(): Promise<void> {
  const stack = await startStack({ components: ["nats", "redis"] });
  const natsUrl = stack.nats?.url ?? "";
  const redisUrl = stack.redis?.url ?? "";
  const nc = await connectNats(natsUrl, "bench-campaign");
  const redis = connectRedis(redisUrl, "bench-campaign");
  try {
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm);
    const js = jetstream(nc);
    const kv = await openConfigBucket(nc);
    const namespace = "bench";

    let started = performance.now();
    await seedProfiles(redis, namespace, { count: PROFILES, duplicateEvery: 5 });
    console.log(`seeded ${PROFILES} profiles in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 50);
    const runner = new CampaignRunner({
      store: new CampaignStore(redis),
      jsm,
      kv,
      publish: async (subject, job, msgId) => {
        await js.publish(subject, JSON.stringify(job), { msgID: msgId });
      },
      clock: systemClock(),
      metrics: createCampaignMetrics(new Registry()),
      log: createLogger({ name: "bench-campaign", level: "warn" }),
      options: { tickMs: 1000, chunkSize: CHUNK, runsKept: 5, leaseMs: 15_000 },
    });
    const spec = benchCampaign();
    // The preview first: the campaign created suspended, walked once (same screening as the run).
    runner.put(compileCampaign({ namespace, name: "black-friday", generation: 1, spec: { ...spec, suspend: true } }));
    started = performance.now();
    await runner.tick();
    await runner.idle();
    const previewMs = performance.now() - started;
    const preview = await readCampaignPreview(redis, { namespace, campaign: "black-friday" });
    if (preview === undefined) throw new Error("the preview was not computed");
    const previewRss = peakRss;

    runner.put(compileCampaign({ namespace, name: "black-friday", generation: 2, spec }));
    const rssBefore = process.memoryUsage().rss;
    started = performance.now();
    let cpu = process.cpuUsage();
    await runner.tick();
    await runner.idle();
    const planMs = performance.now() - started;
    const planCpu = process.cpuUsage(cpu);
    clearInterval(sampler);
    const [run] = await readCampaignRuns(redis, { namespace, campaign: "black-friday" });
    if (run?.status !== "completed") throw new Error(`the run did not complete: ${JSON.stringify(run)}`);
    if (preview.audience !== run.enqueued || preview.targeted !== run.targeted)
      throw new Error(`the preview (${JSON.stringify(preview)}) differs from the run (${JSON.stringify(run)})`);
    await jsm.streams.purge(Streams.sends, { filter: `relais.sends.${namespace}.>` });

    // Baseline: the same number of jobs of the same size, async publish with msgID, same windows.
    const sample: SendJob = {
      id: `cmp|black-friday|${run.id}|email|u123456`,
      namespace,
      sender: "mail",
      profileId: "u123456",
      source: { kind: "Campaign", name: "black-friday", runId: run.id },
      transactional: false,
      createdAt: new Date().toISOString(),
    };
    const payload = JSON.stringify(sample);
    const subject = Subjects.campaignSend(namespace, "mail", "baseline", "raw");
    started = performance.now();
    cpu = process.cpuUsage();
    for (let start = 0; start < run.enqueued; start += CHUNK) {
      const window: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(run.enqueued, start + CHUNK); i++)
        window.push(js.publish(subject, payload, { msgID: `bench:raw:${i}` }));
      await Promise.all(window);
    }
    const baselineMs = performance.now() - started;
    const baselineCpu = process.cpuUsage(cpu);
    // CPU of this process per message: steadier than rates on a shared machine.
    const cpuPerJob = (usage: NodeJS.CpuUsage) => Math.round((usage.user + usage.system) / run.enqueued);
    await jsm.streams.purge(Streams.sends, { filter: `relais.sends.${namespace}.>` });

    const jobsPerSecond = rate(run.enqueued, planMs);
    const baselinePerSecond = rate(run.enqueued, baselineMs);
    const result = {
      profiles: PROFILES,
      chunk: CHUNK,
      localTime: LOCAL_TIME,
      segment: SEGMENT,
      targeted: run.targeted,
      enqueued: run.enqueued,
      skipped: run.skipped,
      planSeconds: Number((planMs / 1000).toFixed(2)),
      profilesPerSecond: rate(PROFILES, planMs),
      enqueuedPerSecond: jobsPerSecond,
      baselinePublishPerSecond: baselinePerSecond,
      ratio: Number((jobsPerSecond / baselinePerSecond).toFixed(2)),
      planCpuMicrosPerJob: cpuPerJob(planCpu),
      baselineCpuMicrosPerMessage: cpuPerJob(baselineCpu),
      peakRssMiB: Math.round(peakRss / 2 ** 20),
      previewSeconds: Number((previewMs / 1000).toFixed(2)),
      previewProfilesPerSecond: rate(PROFILES, previewMs),
      previewPeakRssMiB: Math.round(previewRss / 2 ** 20),
      rssBeforeRunMiB: Math.round(rssBefore / 2 ** 20),
      machine: `${availableParallelism()} x ${cpus()[0]?.model ?? "cpu"}`,
      versions: { nats: packageVersion("@nats-io/jetstream"), node: process.version },
      command: commandLine(import.meta.filename),
    };
    const mode = LOCAL_TIME ? " in local time (every hour passed)" : "";
    console.log(
      `campaign run${mode} over ${PROFILES} profiles (segment: ${SEGMENT}; 20% shared addresses, dedupeByEmail)`,
    );
    console.log(`  targeted ${run.targeted}, enqueued ${run.enqueued}, skipped ${JSON.stringify(run.skipped)}`);
    console.log(
      `  plan + enqueue: ${result.planSeconds} s = ${result.profilesPerSecond} profiles/s, ${jobsPerSecond} jobs/s`,
    );
    console.log(`  raw JetStream async publish (msgID, windows of ${CHUNK}): ${baselinePerSecond} msgs/s`);
    console.log(`  ratio enqueue / raw publish: ${result.ratio}`);
    console.log(
      `  CPU of this process: ${result.planCpuMicrosPerJob} µs per enqueued job (planning included), ` +
        `${result.baselineCpuMicrosPerMessage} µs per raw publish`,
    );
    console.log(`  RSS: ${result.rssBeforeRunMiB} MiB before the run, peak ${result.peakRssMiB} MiB`);
    console.log(
      `  preview (suspended, same screening, 3 samples rendered): ${result.previewSeconds} s = ` +
        `${result.previewProfilesPerSecond} profiles/s, audience ${preview.audience} = the run's enqueued; ` +
        `peak RSS ${result.previewPeakRssMiB} MiB`,
    );
    const dir = join(import.meta.dirname, "..", "..", "bench-results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "campaign.json"), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await nc.drain();
    await redis.quit();
    await stack.stop();
  }
}

await main();
