// Loaded with `node --import` by chart.test.ts: makes the process behave as in the image, where
// only the files the Dockerfile copies and the production dependencies exist. Any other module
// fails to load with RELAIS_IMAGE_MISSING_MODULE.
import { registerHooks } from "node:module";
import { fileURLToPath } from "node:url";

const allowed = JSON.parse(process.env.RELAIS_IMAGE_FILES ?? "[]") as string[];

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    if (resolved.url.startsWith("file:")) {
      const path = fileURLToPath(resolved.url);
      if (!allowed.some((prefix) => path === prefix || path.startsWith(`${prefix}/`)))
        throw new Error(`RELAIS_IMAGE_MISSING_MODULE: ${path} is not in the image`);
    }
    return resolved;
  },
});
