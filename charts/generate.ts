// Writes the chart's generated files: `node charts/generate.ts`.
//   charts/relais/files/crds/*.yaml        from crds/ (the same text as crds/generated/)
//   charts/relais/files/dashboards/*.json  from charts/dashboards.ts
// charts/generate.test.ts fails when the committed files differ from what this writes.
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { renderCrds } from "#crds";
import { dashboards } from "./dashboards.ts";

export const CHART_DIR = new URL("./relais/", import.meta.url);

/** Path under the chart and content of every generated file. */
export function renderChartFiles(): { path: string; content: string }[] {
  const crds = renderCrds().map(({ file, content }) => ({ path: `files/crds/${file}`, content }));
  // Grafana's JSON carries no comments, so the "generated" note lives in the dashboard's description
  // and in this folder's README.
  const boards = Object.entries(dashboards()).map(([name, board]) => ({
    path: `files/dashboards/${name}.json`,
    content: `${JSON.stringify(board, null, 2)}\n`,
  }));
  return [...crds, ...boards];
}

async function main(): Promise<void> {
  for (const folder of ["files/crds/", "files/dashboards/"]) {
    const dir = new URL(folder, CHART_DIR);
    await mkdir(dir, { recursive: true });
    // Removes files whose source is gone (a renamed dashboard).
    for (const file of await readdir(dir)) await rm(new URL(file, dir));
  }
  for (const { path, content } of renderChartFiles()) {
    await writeFile(new URL(path, CHART_DIR), content);
    process.stdout.write(`wrote charts/relais/${path}\n`);
  }
}

if (import.meta.main) await main();
