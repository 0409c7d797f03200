// The Relais API as the real API server enforces it: the generated CRDs install, every example is
// accepted and reads back unchanged apart from defaults, and each broken rule is rejected with a
// message naming the field, by the API server and by local mode's validation alike.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import { campaignPreviewSchema, validateManifest } from "#crds";
import { toolPath, uniqueName, useStack, waitUntil } from "#harness";

const exec = promisify(execFile);
const stack = useStack(["kube"]);
const namespace = uniqueName("crds");
const examplesDir = new URL("../../examples/", import.meta.url);
const generatedDir = new URL("../../crds/generated/", import.meta.url);

interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function kubectl(args: string[], input?: string): Promise<KubectlResult> {
  const child = exec(toolPath("kubectl"), args, { env: { ...process.env, KUBECONFIG: stack.kubeconfig } });
  if (input !== undefined) child.child.stdin?.end(input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const result = await kubectl(args, input);
  assert.equal(result.code, 0, `kubectl ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

type Manifest = Record<string, unknown> & { kind: string; metadata: { name: string }; spec: Record<string, unknown> };

async function example(file: string): Promise<Manifest> {
  return parse(await readFile(new URL(file, examplesDir), "utf8")) as Manifest;
}

/** Server-side applies `manifest` into the test namespace. */
async function apply(manifest: Manifest): Promise<void> {
  await kubectlOk(
    ["apply", "--server-side", "--field-manager=relais-test", "-n", namespace, "-f", "-"],
    JSON.stringify(manifest),
  );
}

/** Applies an example under a fresh name and returns that name. */
async function applyExampleAs(file: string, prefix: string): Promise<string> {
  const manifest = await example(file);
  manifest.metadata.name = uniqueName(prefix);
  await apply(manifest);
  return manifest.metadata.name;
}

before(async () => {
  await stack.ready();
  await kubectlOk(["apply", "--server-side", "--field-manager=relais-test", "-f", generatedDir.pathname]);
  await kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "-f", generatedDir.pathname]);
  await kubectlOk(["create", "namespace", namespace]);
});
after(async () => {
  await kubectl(["delete", "namespace", namespace, "--wait=false"]);
});

describe("the examples", () => {
  it("are each accepted by server-side apply and read back unchanged apart from the schema's defaults", async () => {
    const files = (await readdir(examplesDir)).filter((file) => file.endsWith(".yaml"));
    assert.ok(files.length >= 8, `expected the eight examples, found ${files.join(", ")}`);
    for (const file of files) {
      const manifest = await example(file);
      const local = validateManifest(manifest);
      assert.ok(local.kind === "valid", `${file} fails local validation: ${JSON.stringify(local)}`);
      await apply(manifest);
      const stored = JSON.parse(
        await kubectlOk(["get", manifest.kind.toLowerCase(), manifest.metadata.name, "-n", namespace, "-o", "json"]),
      ) as Manifest;
      // Local mode's defaults are the API server's defaults.
      assert.deepEqual(stored.spec, local.resource.spec, `${file}: stored spec differs from the defaulted manifest`);
      assertKeepsWhatWasWritten(manifest.spec, stored.spec, `${file}: spec`);
    }
  });
});

/** Every field the author wrote reads back with the same value (defaults may only add fields). */
function assertKeepsWhatWasWritten(written: unknown, stored: unknown, path: string): void {
  if (written !== null && typeof written === "object" && !Array.isArray(written)) {
    assert.ok(stored !== null && typeof stored === "object", `${path} is gone`);
    for (const [key, value] of Object.entries(written)) {
      assertKeepsWhatWasWritten(value, (stored as Record<string, unknown>)[key], `${path}.${key}`);
    }
    return;
  }
  assert.deepEqual(stored, written, `${path} changed`);
}

interface InvalidCase {
  name: string;
  file: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the cases edit plain parsed YAML
  mutate: (spec: Record<string, any>) => void;
  /** The field the API server and local validation must name. */
  path: string;
  /** A fragment of the API server's message. */
  api: string;
  /** A fragment of local validation's message; the same as `api` for CEL rules. */
  local?: string;
}

const sender = "sender-transactional-email.yaml";
const marketing = "sender-marketing-email.yaml";
const push = "sender-webpush.yaml";
const cart = "automation-abandoned-cart.yaml";
const reminder = "automation-appointment-reminder.yaml";
const friday = "campaign-black-friday.yaml";
const expiry = "campaign-card-expiry.yaml";

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return -- the cases edit plain parsed YAML */
const invalidCases: InvalidCase[] = [
  {
    name: "an unknown channel",
    file: sender,
    mutate: (s) => (s.channel = "sms"),
    path: "spec.channel",
    api: 'Unsupported value: "sms"',
    local: "Invalid option",
  },
  {
    name: "an email Sender without spec.email",
    file: sender,
    mutate: (s) => delete s.email,
    path: "spec",
    api: "channel email needs spec.email and no spec.webpush",
  },
  {
    name: "an email Sender with a webpush block too",
    file: sender,
    mutate: (s) => (s.webpush = { vapid: { subject: "mailto:a@b.c", keysSecretRef: { name: "k" } } }),
    path: "spec",
    api: "channel email needs spec.email and no spec.webpush",
  },
  {
    name: "a webpush Sender without spec.webpush",
    file: push,
    mutate: (s) => delete s.webpush,
    path: "spec",
    api: "channel webpush needs spec.webpush and no spec.email",
  },
  {
    name: "two transports",
    file: sender,
    mutate: (s) => (s.email.transport.sparkpost = { apiKeySecretRef: { name: "k" } }),
    path: "spec.email.transport",
    api: "set exactly one of smtp or sparkpost",
  },
  {
    name: "no transport",
    file: sender,
    mutate: (s) => (s.email.transport = {}),
    path: "spec.email.transport",
    api: "set exactly one of smtp or sparkpost",
  },
  {
    name: "an unknown TLS mode",
    file: sender,
    mutate: (s) => (s.email.transport.smtp.tls = "ssl"),
    path: "spec.email.transport.smtp.tls",
    api: 'Unsupported value: "ssl"',
    local: "Invalid option",
  },
  {
    name: "an SMTP port out of range",
    file: sender,
    mutate: (s) => (s.email.transport.smtp.port = 70000),
    path: "spec.email.transport.smtp.port",
    api: "less than or equal to 65535",
    local: "<=65535",
  },
  {
    name: "a From address that is not an email",
    file: sender,
    mutate: (s) => (s.email.from.address = "orders"),
    path: "spec.email.from.address",
    api: "must be of type email",
    local: "must be an email address",
  },
  {
    name: "a DKIM block without its key",
    file: sender,
    mutate: (s) => delete s.email.dkim.privateKeySecretRef,
    path: "spec.email.dkim.privateKeySecretRef",
    api: "Required value",
    local: "expected object",
  },
  {
    name: "maxReplicas below minReplicas",
    file: sender,
    mutate: (s) => (s.pool = { minReplicas: 5, maxReplicas: 2 }),
    path: "spec.pool.maxReplicas",
    api: "maxReplicas must be greater than or equal to minReplicas",
  },
  {
    name: "negative minReplicas",
    file: sender,
    mutate: (s) => (s.pool.minReplicas = -1),
    path: "spec.pool.minReplicas",
    api: "greater than or equal to 0",
    local: ">=0",
  },
  {
    name: "a rate of zero",
    file: sender,
    mutate: (s) => (s.rateLimit.perSecond = 0),
    path: "spec.rateLimit.perSecond",
    api: "greater than or equal to 1",
    local: ">=1",
  },
  {
    name: "maxBackoff below initialBackoff",
    file: marketing,
    mutate: (s) => (s.retry = { initialBackoff: "5m", maxBackoff: "1m" }),
    path: "spec.retry.maxBackoff",
    api: "maxBackoff must be at least initialBackoff",
  },
  {
    name: "a backoff that is not a duration",
    file: marketing,
    mutate: (s) => (s.retry.initialBackoff = "30 seconds"),
    path: "spec.retry.initialBackoff",
    api: "should match",
    local: "must be a duration",
  },
  {
    name: "a domain throttled twice",
    file: marketing,
    mutate: (s) => s.email.domainThrottles.push({ domain: "gmail.com", perSecond: 5 }),
    path: "spec.email.domainThrottles",
    api: "list each domain once",
  },
  {
    name: "a VAPID subject that is not mailto: or https:",
    file: push,
    mutate: (s) => (s.webpush.vapid.subject = "push@shop.example.com"),
    path: "spec.webpush.vapid.subject",
    api: "should match",
    local: "must be a mailto: or https: URL",
  },
  {
    name: "an unknown Web Push urgency",
    file: push,
    mutate: (s) => (s.webpush.urgency = "urgent"),
    path: "spec.webpush.urgency",
    api: 'Unsupported value: "urgent"',
    local: "Invalid option",
  },
  {
    name: "a field the API does not have",
    file: push,
    mutate: (s) => (s.webpush.priority = "high"),
    path: "spec.webpush.priority",
    api: "field not declared in schema",
  },
  {
    name: "an Automation without a sender",
    file: cart,
    mutate: (s) => delete s.senderRef,
    path: "spec.senderRef",
    api: "Required value",
    local: "expected object",
  },
  {
    name: "an event name with a dot",
    file: cart,
    mutate: (s) => (s.trigger.event = "cart.updated"),
    path: "spec.trigger.event",
    api: "should match",
    local: "must use only letters, digits",
  },
  {
    name: "both after and until",
    file: cart,
    mutate: (s) => (s.wait.until = { field: "attributes.at" }),
    path: "spec.wait",
    api: "set at most one of after or until",
  },
  {
    name: "a wait that is not a duration",
    file: cart,
    mutate: (s) => (s.wait.after = "2 days"),
    path: "spec.wait.after",
    api: "should match",
    local: "must be a duration",
  },
  {
    name: "an until field that is not a path",
    file: reminder,
    mutate: (s) => (s.wait.until.field = "attributes..at"),
    path: "spec.wait.until.field",
    api: "should match",
    local: "must be a dotted path",
  },
  {
    name: "an unknown ifPast",
    file: reminder,
    mutate: (s) => (s.wait.until.ifPast = "later"),
    path: "spec.wait.until.ifPast",
    api: 'Unsupported value: "later"',
    local: "Invalid option",
  },
  {
    name: "capping of zero messages",
    file: cart,
    mutate: (s) => (s.capping = { max: 0, per: "24h" }),
    path: "spec.capping.max",
    api: "greater than or equal to 1",
    local: ">=1",
  },
  {
    name: "an unknown subscription",
    file: cart,
    mutate: (s) => (s.subscription = "everyone"),
    path: "spec.subscription",
    api: 'Unsupported value: "everyone"',
    local: "Invalid option",
  },
  {
    name: "a message with both email and webpush",
    file: cart,
    mutate: (s) => (s.message.webpush = { title: "t", body: "b" }),
    path: "spec.message",
    api: "set exactly one of email or webpush",
  },
  {
    name: "an email with both html and mjml",
    file: cart,
    mutate: (s) => (s.message.email.html = "<p>x</p>"),
    path: "spec.message.email",
    api: "set exactly one of html or mjml",
  },
  {
    name: "an email with neither html nor mjml",
    file: reminder,
    mutate: (s) => delete s.message.email.html,
    path: "spec.message.email",
    api: "set exactly one of html or mjml",
  },
  {
    name: "three push actions",
    file: cart,
    mutate: (s) =>
      (s.message = {
        webpush: { title: "t", body: "b", actions: [1, 2, 3].map((i) => ({ action: `a${i}`, title: "x" })) },
      }),
    path: "spec.message.webpush.actions",
    api: "must have at most 2 items",
    local: "<=2",
  },
  {
    name: "both at and recurring",
    file: friday,
    mutate: (s) => (s.schedule.recurring = { cron: "0 9 * * 1" }),
    path: "spec.schedule",
    api: "set at most one of at or recurring",
  },
  {
    name: "an at that is not a date-time",
    file: friday,
    mutate: (s) => (s.schedule.at = "next friday"),
    path: "spec.schedule.at",
    api: "must be of type date-time",
    local: "Invalid ISO datetime",
  },
  {
    name: "endAt before startAt",
    file: expiry,
    mutate: (s) => (s.schedule.recurring.endAt = "2025-01-01T00:00:00Z"),
    path: "spec.schedule.recurring.endAt",
    api: "endAt must be after startAt",
  },
  {
    name: "a cron with three fields",
    file: expiry,
    mutate: (s) => (s.schedule.recurring.cron = "0 9 *"),
    path: "spec.schedule.recurring.cron",
    api: "should match",
    local: "must be a 5-field cron expression",
  },
  {
    name: "a time zone with spaces",
    file: expiry,
    mutate: (s) => (s.schedule.recurring.timeZone = "Paris time"),
    path: "spec.schedule.recurring.timeZone",
    api: "should match",
    local: "must be an IANA time zone",
  },
  {
    name: "a localTime that is not HH:MM",
    file: friday,
    mutate: (s) => (s.schedule.localTime = "9am"),
    path: "spec.schedule.localTime",
    api: "should match",
    local: "must be a 24-hour time HH:MM",
  },
  {
    name: "a localTime without at or recurring",
    file: friday,
    mutate: (s) => (s.schedule = { localTime: "09:00" }),
    path: "spec.schedule.localTime",
    api: "localTime needs at or recurring to name the day",
  },
  {
    name: "a domain filter on a push campaign",
    file: friday,
    mutate: (s) => (s.message = { webpush: { title: "t", body: "b" } }),
    path: "spec.audience",
    api: "audience.emailDomains applies to email messages only",
  },
  {
    name: "an excluded domain that is not a domain",
    file: friday,
    mutate: (s) => (s.audience.emailDomains.exclude = ["Gmail"]),
    path: "spec.audience.emailDomains.exclude[0]",
    api: "should match",
    local: "must be a lowercase domain",
  },
  {
    name: "an unknown audience subscription",
    file: friday,
    mutate: (s) => (s.audience.subscription = "optedOut"),
    path: "spec.audience.subscription",
    api: 'Unsupported value: "optedOut"',
    local: "Invalid option",
  },
  {
    name: "a throttle of zero",
    file: friday,
    mutate: (s) => (s.throttle.perSecond = 0),
    path: "spec.throttle.perSecond",
    api: "greater than or equal to 1",
    local: ">=1",
  },
  {
    name: "a sender name that is not a DNS name",
    file: friday,
    mutate: (s) => (s.senderRef.name = "Marketing_Email"),
    path: "spec.senderRef.name",
    api: "should match",
    local: "must be a lowercase DNS-1123 name",
  },
  {
    name: "an empty segment",
    file: friday,
    mutate: (s) => (s.audience.segment = ""),
    path: "spec.audience.segment",
    api: "at least 1 chars long",
    local: ">=1",
  },
];
/* eslint-enable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return */

/** kubectl prints "[spec.x: ...]" or ".spec.x: ..." depending on the check; normalise the dot. */
function mentionsPath(stderr: string, path: string): boolean {
  const wanted = path.replace(/\[(\d+)\]/g, "[$1]");
  return stderr.includes(`${wanted}:`) || stderr.includes(`.${wanted}:`) || stderr.includes(`${wanted} `);
}

describe("invalid manifests", () => {
  it(`include at least 30 rules broken one at a time`, () => {
    assert.ok(invalidCases.length >= 30);
  });

  for (const testCase of invalidCases) {
    it(`reject ${testCase.name}, naming ${testCase.path}`, async () => {
      const manifest = structuredClone(await example(testCase.file));
      manifest.metadata.name = uniqueName("bad");
      testCase.mutate(manifest.spec);

      const applied = await kubectl(
        ["apply", "--server-side", "--dry-run=server", "--field-manager=relais-test", "-n", namespace, "-f", "-"],
        JSON.stringify(manifest),
      );
      assert.notEqual(applied.code, 0, `the API server accepted it: ${applied.stdout}`);
      assert.ok(
        mentionsPath(applied.stderr, testCase.path),
        `API error does not name ${testCase.path}: ${applied.stderr}`,
      );
      assert.ok(applied.stderr.includes(testCase.api), `API error lacks "${testCase.api}": ${applied.stderr}`);

      const local = validateManifest(manifest);
      assert.ok(local.kind === "invalid", "local validation accepted it");
      const issue = local.issues.find((candidate) => candidate.path === testCase.path);
      assert.ok(issue, `local issues do not name ${testCase.path}: ${JSON.stringify(local.issues)}`);
      assert.ok(
        issue.message.includes(testCase.local ?? testCase.api),
        `local message lacks "${testCase.local ?? testCase.api}": ${issue.message}`,
      );
    });
  }
});

describe("kubectl", () => {
  it("lists every Relais kind with `kubectl get relais`", async () => {
    const name = await applyExampleAs(push, "listed");
    const output = await kubectlOk(["get", "relais", "-A"]);
    assert.match(output, new RegExp(`sender\\.relais\\.dev/${name}`));
    assert.match(output, /campaign\.relais\.dev\/black-friday/);
    assert.match(output, /automation\.relais\.dev\/abandoned-cart/);
    const senders = await kubectlOk(["get", "snd", "-n", namespace]);
    assert.match(senders.split("\n")[0] ?? "", /^NAME\s+READY\s+CHANNEL\s+REPLICAS\s+LAG\s+RATE\s+AGE/);
  });

  it("explains campaign.spec.audience with the schema's descriptions", async () => {
    // The API server publishes a new CRD's OpenAPI document a moment after it is Established.
    let explained: KubectlResult = { code: 1, stdout: "", stderr: "not run" };
    const reason = await waitUntil(
      async () => (explained = await kubectl(["explain", "campaign.spec.audience"])).code === 0,
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.equal(reason, "", explained.stderr);
    const output = explained.stdout.replace(/\s+/g, " ");
    assert.match(output, /Who receives the campaign/);
    assert.match(output, /segment <string>/);
    assert.match(output, /dedupeByEmail <boolean>/);
    assert.match(output, /the profile with the most recent activity wins/);
  });

  it("keeps a Campaign's status.preview as the operator writes it, and removes it on a null merge patch", async () => {
    const name = await applyExampleAs(friday, "previewed");
    const preview = campaignPreviewSchema.parse({
      generation: 1,
      computedAt: "2026-11-27T10:00:00.000Z",
      audience: 2,
      targeted: 5,
      skipped: { optOut: 1, duplicateEmail: 1, holdout: 1 },
      samples: [
        { profile: "sha256:0123456789abcdef", subject: "Hi [redacted]", html: "<p>[redacted]</p>", text: "[redacted]" },
      ],
      personalData: false,
    });
    const patchStatus = (status: Record<string, unknown>) =>
      kubectlOk([
        "patch",
        `campaign/${name}`,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status }),
      ]);
    const read = async () =>
      (
        JSON.parse(await kubectlOk(["get", `campaign/${name}`, "-n", namespace, "-o", "json"])) as {
          status?: { preview?: unknown };
        }
      ).status;
    await patchStatus({ phase: "Suspended", preview });
    assert.deepEqual((await read())?.preview, preview, "nothing pruned or rejected");
    await patchStatus({ preview: null });
    assert.equal((await read())?.preview, undefined);
  });

  it("waits for a Ready condition and scales a Sender's pool", async () => {
    const name = await applyExampleAs(push, "ready");
    const waiting = kubectl(["wait", "--for=condition=Ready", `sender/${name}`, "-n", namespace, "--timeout=30s"]);
    const condition = {
      type: "Ready",
      status: "True",
      reason: "Reconciled",
      message: "",
      lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      observedGeneration: 1,
    };
    await kubectlOk([
      "patch",
      `sender/${name}`,
      "-n",
      namespace,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { conditions: [condition], replicas: 1, selector: `relais.dev/sender=${name}` } }),
    ]);
    const waited = await waiting;
    assert.equal(waited.code, 0, waited.stderr);
    assert.match(waited.stdout, /condition met/);

    await kubectlOk(["scale", `sender/${name}`, "-n", namespace, "--replicas=3"]);
    const replicas = await kubectlOk([
      "get",
      `sender/${name}`,
      "-n",
      namespace,
      "-o",
      "jsonpath={.spec.pool.replicas}",
    ]);
    assert.equal(replicas, "3");
  });
});
