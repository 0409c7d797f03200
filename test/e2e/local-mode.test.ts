// The README's first command: `relais local examples/` starts everything on this machine and a
// new user sees messages delivered within a minute.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { defer, spawnRelais, waitUntil, within } from "#harness";

const examples = new URL("../../examples", import.meta.url).pathname;

function received(output: string): number {
  const counts = [...output.matchAll(/relais: (\d+) messages? received/g)].map((match) => Number(match[1]));
  return Math.max(0, ...counts);
}

/** The most the progress lines say a resource sent, e.g. "Automation default/appointment-reminder". */
function sentBy(output: string, resource: string): number {
  const pattern = new RegExp(`${resource}: \\d+ planned, (\\d+) sent`, "g");
  return Math.max(0, ...[...output.matchAll(pattern)].map((match) => Number(match[1])));
}

describe("relais local", () => {
  it("runs the examples end to end: appointment reminders and a campaign are delivered within a minute", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "relais-local-"));
    defer(t, () => rm(dir, { recursive: true, force: true }));
    await cp(examples, dir, { recursive: true });
    const started = Date.now();
    const local = await spawnRelais(t, {
      command: "local",
      name: "local",
      args: [dir],
      env: { RELAIS_INGEST_PORT: "0", RELAIS_OPERATOR_PORT: "0", RELAIS_PROGRESS_INTERVAL_MS: "1000" },
    });
    let output = "";
    local.child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    let firstMs = 0;
    const due = (): number => Number(/(\d+) appointment reminders are due/.exec(output)?.[1] ?? Infinity);
    const delivered = await waitUntil(
      async () => {
        if (firstMs === 0 && received(output) >= 1) firstMs = Date.now() - started;
        return (
          sentBy(output, "Automation default/appointment-reminder") >= due() &&
          sentBy(output, "Campaign default/terms-update") > 0
        );
      },
      { timeoutMs: 60_000 - (Date.now() - started), intervalMs: 250 },
    );
    assert.equal(delivered, "", `not every reminder within a minute:\n${local.output()}`);
    assert.ok(due() > 0 && Number.isFinite(due()));
    t.diagnostic(`first message ${firstMs} ms after start, all ${due()} reminders after ${Date.now() - started} ms`);
    assert.match(output, /Automation default\/appointment-reminder: ready/);
    assert.match(output, /relais: local mode sends every email Sender's mail to the SMTP sink/);
    assert.match(output, /operator\s+http:\/\/127\.0\.0\.1:\d+\/metrics/);
    // The critical terms update goes to every profile, opted out or not, through the same pools.
    assert.ok(sentBy(output, "Campaign default/terms-update") > 0, "the terms-update campaign delivers too");

    const status = parse(
      await readFile(join(dir, ".relais-status", "default.Sender.transactional-email.yaml"), "utf8"),
    ) as { status: { conditions: { type: string; status: string }[] } };
    assert.equal(status.status.conditions.find((condition) => condition.type === "Ready")?.status, "True");

    local.child.kill("SIGINT");
    assert.equal(await within(local.exited, 30_000), "with code 0", local.output());
    assert.match(output, /relais: stopped\./);
  });
});
