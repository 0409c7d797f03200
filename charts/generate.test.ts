import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { renderCrds } from "#crds";
import { CHART_DIR, renderChartFiles } from "./generate.ts";

describe("the chart's generated files", () => {
  it("match crds/ and charts/dashboards.ts (run `node charts/generate.ts` when this fails)", async () => {
    const rendered = renderChartFiles();
    for (const folder of ["files/crds", "files/dashboards"]) {
      const expected = rendered.filter(({ path }) => path.startsWith(`${folder}/`)).map(({ path }) => path);
      const actual = (await readdir(new URL(`${folder}/`, CHART_DIR))).map((file) => `${folder}/${file}`);
      assert.deepEqual(actual.sort(), expected.sort());
    }
    for (const { path, content } of rendered) {
      assert.equal(await readFile(new URL(path, CHART_DIR), "utf8"), content, `charts/relais/${path} is stale`);
    }
  });

  it("carry the CRDs as crds/generated has them", () => {
    const crds = renderChartFiles().filter(({ path }) => path.startsWith("files/crds/"));
    assert.deepEqual(
      crds.map(({ content }) => content),
      renderCrds().map(({ content }) => content),
    );
  });
});
