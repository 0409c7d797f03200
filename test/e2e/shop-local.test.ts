// The shop scenario with the operator as local mode runs it: manifests in a folder, status in
// `.relais-status/`, every pool a `relais` child process. RELAIS_E2E_PROFILES sets the volume.
import { describe, it } from "node:test";
import { profileCount, runShopScenario } from "../fixtures/shop-scenario.ts";
import { folderTarget, startShop } from "../fixtures/shop.ts";

describe("a shop in local mode", () => {
  it("delivers cart reminders, Black Friday and the weekly push to exactly the right recipients, and status, metrics and reports agree", async (t) => {
    const started = Date.now();
    const shop = await startShop(t, await folderTarget(t));
    const result = await runShopScenario(t, shop, profileCount(process.env));
    t.diagnostic(`local mode: ${JSON.stringify(result)} in ${Date.now() - started} ms`);
  });
});
