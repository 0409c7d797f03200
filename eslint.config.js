// The gates of ../shared/STYLE.md: promises handled, exhaustive switches, front doors only,
// process.env read in config modules only, and size limits that push toward small functions.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const parts = ["crds", "runtime", "operator", "workers/ingest", "workers/engage", "workers/deliver", "test/harness"];

export default tseslint.config(
  { ignores: ["node_modules/**", "charts/relais/**", "**/generated/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["eslint.config.js"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // @kubernetes/client-node declares its models as classes but takes plain objects everywhere.
      "@typescript-eslint/no-unsafe-class-instance-assignment": "off",
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              // Another part is reached through its front door (#crds, #runtime, ...), never a deep path.
              regex: `^(\\.\\./)+(${parts.map((p) => p.replace("/", "\\/")).join("|")})/`,
              message:
                "Import another part through its front door (#crds, #runtime, #operator, #ingest, #engage, #deliver, #harness).",
            },
          ],
        },
      ],
      "no-restricted-properties": [
        "error",
        {
          object: "process",
          property: "env",
          message: "Only config modules and main.ts read process.env; pass config down.",
        },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { varsIgnorePattern: "^_", ignoreRestSiblings: true }],
      // Fastify plugins and handlers, and interface implementations, are async by contract even
      // when a given one has nothing to await.
      "@typescript-eslint/require-await": "off",
      complexity: ["error", 15],
      "max-depth": ["error", 4],
      "max-params": ["error", 4],
    },
  },
  {
    // Entry points and config parsers are where the environment is read.
    files: ["**/config.ts", "**/main.ts", "bin/**", "test/harness/**"],
    rules: { "no-restricted-properties": "off" },
  },
  {
    files: ["**/*.test.ts", "test/**"],
    rules: {
      // Tests pass the environment on to the processes they start.
      "no-restricted-properties": "off",
      // node:test's describe/it return promises the runner tracks itself.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", name: ["describe", "it", "test", "suite"], package: "node:test" },
          ],
        },
      ],
    },
  },
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
);
