// The shop scenario with the operator against the real kube-apiserver: manifests server-side
// applied, status, finalizers and Events through the API, the pools run as `relais` child
// processes (there is no kubelet here to run the Deployments' pods). RELAIS_E2E_PROFILES sets the
// volume.
import { before, describe, it } from "node:test";
import { useStack } from "#harness";
import { installRelaisCrds, kubeClient } from "../integration/operator-fixtures.ts";
import { profileCount, runShopScenario } from "../fixtures/shop-scenario.ts";
import { clusterTarget, startShop } from "../fixtures/shop.ts";

const stack = useStack(["kube"]);

before(async () => {
  await stack.ready();
  await installRelaisCrds(kubeClient(stack.kubeconfig));
});

describe("a shop on the kube-apiserver", () => {
  it("delivers cart reminders, Black Friday and the weekly push to exactly the right recipients, and status, metrics and reports agree", async (t) => {
    const started = Date.now();
    const shop = await startShop(t, await clusterTarget(t, kubeClient(stack.kubeconfig)));
    const result = await runShopScenario(t, shop, profileCount(process.env));
    t.diagnostic(`kube-apiserver: ${JSON.stringify(result)} in ${Date.now() - started} ms`);
  });
});
