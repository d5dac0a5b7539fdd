import { defineConfig } from "vitest/config";

/**
 * One suite in three tiers (vitest projects). `npm test` runs all three (CI calls it); a
 * developer's loop runs one:
 *
 *   npm run test:unit          in-process only: no database, no browser, no child process (seconds);
 *                              in-process loopback fakes (the fake upstreams, a JWKS server) are fine
 *   npm run test:integration   databases (PGlite; PostgreSQL with TEST_DATABASE_URL), HTTP, child processes
 *   npm run test:browser       the web app in Chromium (tests/web/browser*)
 *
 * A new test file is integration unless it is listed under `unit` or is a browser test. The
 * unit tier's setup file refuses a database or a child process, so a misfiled test fails loudly.
 * tests/vercel/ needs `vercel build` first: `npm run test:vercel` (vitest.vercel.config.ts).
 */
const unit = [
  "tests/architecture/import-graph.happy.test.ts",
  "tests/generate/generate-partial-usage.error.test.ts",
  "tests/unit/auth-cache.security.test.ts",
  "tests/unit/auth-rs256.security.test.ts",
  "tests/unit/auth-token.security.test.ts",
  "tests/unit/auth.security.test.ts",
  "tests/unit/budget-exceeded.error.test.ts",
  "tests/unit/clerk-webhook.security.test.ts",
  "tests/unit/config-check.error.test.ts",
  "tests/unit/config.happy.test.ts",
  "tests/unit/cross-site.security.test.ts",
  "tests/unit/crypto-keyring.security.test.ts",
  "tests/unit/crypto.security.test.ts",
  "tests/unit/linear-regex.security.test.ts",
  "tests/unit/local-only.security.test.ts",
  "tests/unit/log-redaction.security.test.ts",
  "tests/unit/log.security.test.ts",
  "tests/unit/mode-table.security.test.ts",
  "tests/unit/providers-exa.error.test.ts",
  "tests/unit/providers-gemini.error.test.ts",
  "tests/unit/providers.error.test.ts",
  "tests/unit/step-data.security.test.ts",
];
const browser = ["tests/web/browser*.test.ts"];
const elsewhere = ["tests/vercel/**", "node_modules/**"];
/** Says which databases run and whether Chromium does, and builds the web app (public/) the static and browser tests serve. */
const globalSetup = ["tests/global-setup.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // PGlite instances are memory-hungry WASM: keep parallelism to the 2 cores we have (all tiers together).
    maxWorkers: 2,
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "unit", include: unit, setupFiles: ["tests/helpers/unit-tier.ts"] } },
      {
        extends: true,
        test: { name: "integration", include: ["tests/**/*.test.ts"], exclude: [...elsewhere, ...unit, ...browser], globalSetup },
      },
      { extends: true, test: { name: "browser", include: browser, exclude: elsewhere, globalSetup } },
    ],
  },
});
