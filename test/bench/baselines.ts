// The physical baselines every Relais figure is compared with, on a given nats-server: raw
// JetStream publish and consume+ack rates measured by `nats bench js` (natscli, Go) and the same
// two loops written bare with nats.js (the ceiling for any Node stage).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { toolPath } from "#harness";
import { connectNats } from "#runtime";

/** Runs the nats CLI (no saved context); resolves with its stdout and stderr. */
export async function natsCli(args: string[], timeoutS: number): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)(toolPath("nats"), [...args, "--no-context"], {
    timeout: timeoutS * 1000,
    killSignal: "SIGKILL",
    maxBuffer: 16 * 2 ** 20,
  });
  return `${stdout}\n${stderr}`;
}

/** The aggregated rate of a `nats bench` report. */
export function msgsPerSecondOf(output: string): number {
  const match = /stats: ([\d,.]+) msgs\/sec/.exec(output);
  if (match?.[1] === undefined) throw new Error(`no "msgs/sec" in nats bench output:\n${output.slice(-500)}`);
  return Number(match[1].replace(/,/g, ""));
}

export interface BaselineRates {
  messages: number;
  bytes: number;
  /** `nats bench js pub async` (file storage, one publisher). */
  natsBenchPublish: number;
  /** `nats bench js consume` (durable pull consumer, batch 500, explicit acks). */
  natsBenchConsume: number;
  /** nats.js: js.publish with a Nats-Msg-Id, awaited in windows of 1,000. */
  natsJsPublish: number;
  /** nats.js: durable pull consumer, consume() with max_messages 500, ack each. */
  natsJsConsume: number;
}

const WINDOW = 1000;

/** `nats bench js pub async` then `consume` over a fresh stream; resolves with both rates. */
async function natsBench(natsUrl: string, shape: { messages: number; bytes: number; timeoutS: number }) {
  const stream = "relais_bench_baseline";
  const common = ["--server", natsUrl, "--stream", stream, "--msgs", String(shape.messages)];
  const size = ["--size", `${shape.bytes}B`, "--no-progress"];
  const publish = ["bench", "js", "pub", "async", ...common, ...size, "--create", "--purge", "--storage", "file"];
  const natsBenchPublish = msgsPerSecondOf(await natsCli([...publish, "bench.baseline"], shape.timeoutS));
  const consume = ["bench", "js", "consume", ...common, ...size, "--batch", "500", "--acks", "explicit"];
  const natsBenchConsume = msgsPerSecondOf(await natsCli(consume, shape.timeoutS));
  const nc = await connectNats(natsUrl, "relais-bench-baseline");
  try {
    await (await jetstreamManager(nc)).streams.delete(stream);
  } finally {
    await nc.drain();
  }
  return { natsBenchPublish, natsBenchConsume };
}

/** The same two loops in nats.js, over a fresh stream; resolves with both rates. */
async function natsJs(natsUrl: string, shape: { messages: number; bytes: number }) {
  const stream = "relais_bench_natsjs";
  const nc = await connectNats(natsUrl, "relais-bench-natsjs");
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: ["bench.natsjs"] });
    const js = jetstream(nc);
    const payload = "x".repeat(shape.bytes);
    let started = performance.now();
    for (let start = 0; start < shape.messages; start += WINDOW) {
      const window: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(shape.messages, start + WINDOW); i++)
        window.push(js.publish("bench.natsjs", payload, { msgID: `natsjs-${i}` }));
      await Promise.all(window);
    }
    const natsJsPublish = shape.messages / ((performance.now() - started) / 1000);
    started = performance.now();
    await jsm.consumers.add(stream, {
      durable_name: "natsjs",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 20_000,
    });
    const messages = await (await js.consumers.get(stream, "natsjs")).consume({ max_messages: 500 });
    let count = 0;
    for await (const message of messages) {
      message.ack();
      if (++count >= shape.messages) break;
    }
    await messages.close();
    await nc.flush();
    const natsJsConsume = count / ((performance.now() - started) / 1000);
    await jsm.streams.delete(stream);
    return { natsJsPublish, natsJsConsume };
  } finally {
    await nc.drain();
  }
}

/** Both baselines, natscli first, on the server at `natsUrl`. */
export async function measureBaselines(
  natsUrl: string,
  shape: { messages: number; bytes: number; timeoutS: number },
): Promise<BaselineRates> {
  const cli = await natsBench(natsUrl, shape);
  const bare = await natsJs(natsUrl, shape);
  return { messages: shape.messages, bytes: shape.bytes, ...cli, ...bare };
}
