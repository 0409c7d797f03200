// `relais ingest` as a process: configured from the environment, serving, and draining on SIGTERM.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { defer, freePort, uniqueName, useStack, waitUntil } from "#harness";
import { hashSecret } from "#ingest";

const stack = useStack(["nats", "redis"]);
const cli = new URL("../../bin/relais.ts", import.meta.url).pathname;

describe("relais ingest", () => {
  it("serves with its environment's API keys, then drains and exits 0 on SIGTERM, logging no secret", async (t) => {
    const port = await freePort();
    const namespace = uniqueName("proc");
    const secret = randomBytes(24).toString("base64url");
    const tokenSecret = randomBytes(24).toString("hex");
    const child = spawn(process.execPath, [cli, "ingest"], {
      env: {
        ...process.env,
        RELAIS_NATS_URL: stack.natsUrl,
        RELAIS_REDIS_URL: stack.redisUrl,
        RELAIS_HOST: "127.0.0.1",
        RELAIS_PORT: String(port),
        RELAIS_TOKEN_SECRET: tokenSecret,
        RELAIS_API_KEYS: JSON.stringify([{ keyId: "k1", namespace, secretSha256: hashSecret(secret) }]),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    defer(t, () => void child.kill("SIGKILL"));

    const base = `http://127.0.0.1:${port}`;
    const ready = await waitUntil(async () => (await fetch(`${base}/readyz`)).ok, { timeoutMs: 20_000 });
    assert.equal(ready, "", `never ready: ${ready}\n${output}`);
    const accepted = await fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer k1.${secret}`, "content-type": "application/json" },
      body: JSON.stringify({ events: [{ profileId: "p1", name: "signed_up" }] }),
    });
    assert.equal(accepted.status, 202);

    child.kill("SIGTERM");
    assert.equal(await exited, 0, output);
    assert.doesNotMatch(output, new RegExp(`${secret}|${tokenSecret}`));
  });

  it("refuses to start on a bad configuration, naming the variable", async () => {
    const child = spawn(process.execPath, [cli, "ingest"], {
      env: { ...process.env, RELAIS_TOKEN_SECRET: "short", RELAIS_PORT: "eighty" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 1);
    assert.match(stderr, /RELAIS_CONFIG_INVALID/);
    assert.match(stderr, /RELAIS_TOKEN_SECRET: must be at least 32 characters/);
    assert.match(stderr, /RELAIS_PORT:/);
    assert.doesNotMatch(stderr, /eighty|short/);
  });
});
