// A real Kubernetes control plane as controller-runtime's envtest runs one: etcd, kube-apiserver
// on loopback (--advertise-address=127.0.0.1) with its own CA, an admin client certificate in
// system:masters, and kube-controller-manager beside it so garbage collection and
// Deployment -> ReplicaSet behave as in a cluster. No scheduler or kubelet: pods stay Pending.
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import { startEtcd, startOnFreePorts } from "./servers.ts";
import type { EtcdServer, Server } from "./servers.ts";
import { toolPath } from "./tools.ts";
import type { ManagedProcess } from "./process.ts";

const run = promisify(execFile);

interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run(toolPath("openssl"), args, { cwd: dir });
}

/** Signs a P-256 certificate for `subject` with the CA, with the given X.509 extensions. */
async function issue(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subject,
  ]);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "3650",
    "-out",
    `${name}.crt`,
    "-extfile",
    `${name}.ext`,
  ]);
}

async function createPki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "3650",
    "-subj",
    "/CN=relais-test-ca",
  ]);
  await issue(
    dir,
    "serving",
    "/CN=kube-apiserver",
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n" +
      "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
  );
  await issue(
    dir,
    "admin",
    "/O=system:masters/CN=relais-admin",
    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
  );
  await openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
  await openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
  const path = (file: string): string => join(dir, file);
  return {
    caCert: path("ca.crt"),
    caKey: path("ca.key"),
    servingCert: path("serving.crt"),
    servingKey: path("serving.key"),
    adminCert: path("admin.crt"),
    adminKey: path("admin.key"),
    serviceAccountKey: path("sa.key"),
    serviceAccountPub: path("sa.pub"),
  };
}

interface ClientCredentials {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** GET over HTTPS with optional client certificate; resolves status and body. */
function httpsGet(url: string, credentials: ClientCredentials): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ...credentials, rejectUnauthorized: credentials.ca !== undefined, timeout: 2000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

function kubeconfigYaml(server: string, pki: { ca: Buffer; cert: Buffer; key: Buffer }): string {
  const b64 = (data: Buffer): string => data.toString("base64");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: relais-test",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.ca)}`,
    "users:",
    "- name: relais-admin",
    "  user:",
    `    client-certificate-data: ${b64(pki.cert)}`,
    `    client-key-data: ${b64(pki.key)}`,
    "contexts:",
    "- name: relais-test",
    "  context:",
    "    cluster: relais-test",
    "    user: relais-admin",
    "    namespace: default",
    "current-context: relais-test",
    "",
  ].join("\n");
}

export interface KubeControlPlane extends Server {
  /** https://127.0.0.1:port */
  readonly server: string;
  /** A kubeconfig file for kubectl and @kubernetes/client-node, admin via client certificate. */
  readonly kubeconfig: string;
  readonly etcd: EtcdServer;
  readonly apiserver: ManagedProcess;
  readonly controllerManager: ManagedProcess;
}

export async function startKube(dir: string): Promise<KubeControlPlane> {
  const pki = await createPki(join(dir, "pki"));
  const etcd = await startEtcd(join(dir, "etcd"));
  const credentials = {
    ca: await readFile(pki.caCert),
    cert: await readFile(pki.adminCert),
    key: await readFile(pki.adminKey),
  };
  const started = await startApiserver(dir, pki, etcd, credentials).catch(async (error: unknown) => {
    await etcd.stop();
    throw error;
  });
  const kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, kubeconfigYaml(started.server, credentials), { mode: 0o600 });
  const controllerManager = await startControllerManager(dir, pki, kubeconfig).catch(async (error: unknown) => {
    await started.process.stop();
    await etcd.stop();
    throw error;
  });
  return {
    process: started.process,
    apiserver: started.process,
    controllerManager,
    etcd,
    server: started.server,
    kubeconfig,
    stop: async () => {
      await controllerManager.stop();
      await started.process.stop();
      await etcd.stop();
    },
  };
}

async function startApiserver(dir: string, pki: Pki, etcd: EtcdServer, credentials: ClientCredentials) {
  const certDir = join(dir, "apiserver");
  await mkdir(certDir, { recursive: true });
  const { process, value: port } = await startOnFreePorts(1, ([port]) => ({
    value: port ?? 0,
    spec: {
      name: "kube-apiserver",
      tool: "kube-apiserver",
      args: [
        `--etcd-servers=${etcd.url}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${port}`,
        `--cert-dir=${certDir}`,
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        `--client-ca-file=${pki.caCert}`,
        `--service-account-issuer=https://127.0.0.1:${port}`,
        `--service-account-key-file=${pki.serviceAccountPub}`,
        `--service-account-signing-key-file=${pki.serviceAccountKey}`,
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        // As envtest: there is no token controller to mint pod tokens for the admission plugin.
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
      ],
      cwd: dir,
      logFile: join(dir, "kube-apiserver.log"),
      readyTimeoutMs: 90_000,
      stopTimeoutMs: 15_000,
      ready: async () => (await httpsGet(`https://127.0.0.1:${port}/readyz`, credentials)).body === "ok",
    },
  }));
  return { process, server: `https://127.0.0.1:${port}` };
}

async function startControllerManager(dir: string, pki: Pki, kubeconfig: string): Promise<ManagedProcess> {
  const certDir = join(dir, "controller-manager");
  await mkdir(certDir, { recursive: true });
  const { process } = await startOnFreePorts(1, ([port]) => ({
    value: port,
    spec: {
      name: "kube-controller-manager",
      tool: "kube-controller-manager",
      args: [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
        `--cert-dir=${certDir}`,
        "--leader-elect=false",
        `--service-account-private-key-file=${pki.serviceAccountKey}`,
        `--root-ca-file=${pki.caCert}`,
      ],
      cwd: dir,
      logFile: join(dir, "kube-controller-manager.log"),
      readyTimeoutMs: 60_000,
      ready: async () => (await httpsGet(`https://127.0.0.1:${port}/healthz`, {})).body === "ok",
    },
  }));
  return process;
}
