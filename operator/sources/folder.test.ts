import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FolderSource } from "./folder.ts";
import type { ManifestProblem } from "./folder.ts";

const sender = (from: string) => `apiVersion: relais.dev/v1alpha1
kind: Sender
metadata:
  name: mail
spec:
  channel: email
  email:
    from:
      address: ${from}
    transport:
      smtp:
        host: smtp.example.com
`;

async function folder(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "relais-folder-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("folder source", () => {
  it("reads multi-document files, names each invalid field, and applies schema defaults", async (t) => {
    const dir = await folder(t);
    const broken = sender("a@example.com").replace(
      "smtp:\n        host: smtp.example.com",
      "smtp:\n        host: smtp.example.com\n        port: 0",
    );
    await writeFile(
      join(dir, "all.yaml"),
      `${sender("a@example.com")}---\n${broken.replace("name: mail", "name: bad")}`,
    );
    let reported: ManifestProblem[] = [];
    const source = await FolderSource.open({
      dir,
      env: {},
      onProblems: (problems) => {
        reported = problems;
      },
    });
    const mail = (await source.list("Sender"))[0];
    assert.ok(mail?.kind === "Sender");
    assert.equal(mail.metadata.namespace, "default");
    assert.equal(mail.spec.email?.transport.smtp?.port, 587, "defaults applied");
    assert.equal(reported.length, 1);
    assert.deepEqual(
      reported.map((problem) => [problem.file, problem.document, problem.name, problem.issues[0]?.path]),
      [["all.yaml", 1, "bad", "spec.email.transport.smtp.port"]],
    );
    assert.match(
      await readFile(join(dir, ".relais-status", "problems.yaml"), "utf8"),
      /spec\.email\.transport\.smtp\.port/,
    );
  });

  it("bumps the generation on a spec change and keeps a resource with a finalizer until it is removed", async (t) => {
    const dir = await folder(t);
    await writeFile(join(dir, "sender.yaml"), sender("a@example.com"));
    const source = await FolderSource.open({ dir, env: {} });
    const key = { kind: "Sender", namespace: "default", name: "mail" } as const;
    const changed: string[] = [];
    const stop = new AbortController();
    const watching = source.watch("Sender", (changedKey) => changed.push(changedKey.name), stop.signal);
    await source.reload();
    assert.deepEqual(changed, [], "an unchanged folder notifies nothing");

    await writeFile(join(dir, "sender.yaml"), sender("b@example.com"));
    await source.reload();
    assert.deepEqual(changed, ["mail"]);
    assert.equal((await source.get(key))?.metadata.generation, 2);

    await source.addFinalizer(key, "relais.dev/finalizer");
    await rm(join(dir, "sender.yaml"));
    await source.reload();
    const deleting = (await source.get(key))?.metadata as { deletionTimestamp?: string } | undefined;
    assert.ok(deleting?.deletionTimestamp, "held by its finalizer");
    await source.removeFinalizer(key, "relais.dev/finalizer");
    assert.equal(await source.get(key), undefined);
    stop.abort();
    await watching;
  });

  it("reads Secrets from manifests and from RELAIS_SECRET_* variables", async (t) => {
    const dir = await folder(t);
    await writeFile(
      join(dir, "secret.yaml"),
      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: smtp\ndata:\n  username: " +
        Buffer.from("ann").toString("base64") +
        "\n",
    );
    const source = await FolderSource.open({
      dir,
      env: { RELAIS_SECRET_SMTP_PASSWORD: "pw", RELAIS_SECRET_VAPID_KEYS_PUBLICKEY: "pk" },
    });
    assert.deepEqual(await source.readSecret("default", "smtp"), { username: "ann", password: "pw" });
    assert.deepEqual(await source.readSecret("default", "vapid-keys"), { publicKey: "pk" });
    assert.equal(await source.readSecret("default", "absent"), undefined);
    assert.deepEqual(await source.secretEnv("default", ["smtp"]), {
      RELAIS_SECRET_SMTP_USERNAME: "ann",
      RELAIS_SECRET_SMTP_PASSWORD: "pw",
    });
  });
});
