// @ts-check
/**
 * StrykerJS over the security-critical modules (docs/mutation-testing.md), one module per run:
 * `npm run test:mutation -- <module>` (scripts/mutation.ts sets MUTATION_MODULE and runs
 * `stryker run`; no module: every one in turn). Each module names the source it mutates and
 * the test files that guard it; vitest.mutation.config.ts runs exactly those files.
 */
import { readFileSync } from "node:fs";

/** `file:first-last`, the lines of the top-level function that starts with `opening` (up to its closing brace). */
function functionLines(file, opening) {
  const lines = readFileSync(file, "utf8").split("\n");
  const first = lines.findIndex((line) => line.startsWith(opening)) + 1;
  const last = lines.findIndex((line, i) => i >= first && line === "}") + 1;
  if (first === 0 || last === 0) throw new Error(`${file}: no ${opening}`);
  return `${file}:${first}-${last}`;
}

export const mutationModules = {
  crypto: {
    mutate: ["lib/platform/crypto.ts"],
    // The unit tests only: the database suites that also use crypto.ts (keys-encryption,
    // keys-fingerprint) made one run take over an hour on two shared cores.
    tests: ["tests/unit/crypto.security.test.ts", "tests/unit/crypto-keyring.security.test.ts", "tests/unit/config-check.error.test.ts"],
  },
  "local-only": { mutate: ["lib/platform/dev/local-only.ts"], tests: ["tests/unit/local-only.security.test.ts"] },
  modes: {
    mutate: [functionLines("lib/platform/env.ts", "function decideMode(")],
    tests: ["tests/unit/mode-table.security.test.ts"],
  },
  "log-scrubbing": {
    mutate: ["lib/platform/log.ts"],
    tests: ["tests/unit/log.security.test.ts", "tests/unit/log-redaction.security.test.ts"],
  },
  auth: {
    mutate: ["lib/platform/auth/token.ts", "lib/platform/auth/verify.ts", "lib/platform/auth/rs256.ts"],
    tests: [
      "tests/unit/auth.security.test.ts",
      "tests/unit/auth-cache.security.test.ts",
      "tests/unit/auth-token.security.test.ts",
      "tests/unit/auth-verify.security.test.ts",
      "tests/unit/auth-rs256.security.test.ts",
    ],
  },
  "env-writer": { mutate: ["lib/platform/dev/env-file.ts"], tests: ["tests/unit/env-file.happy.test.ts"] },
  "step-data": { mutate: ["lib/onboarding/step-data.ts"], tests: ["tests/unit/step-data.security.test.ts"] },
  // In process over no routes (the battery that walks every route with a database is too slow to run per mutant).
  "cross-site": { mutate: ["lib/http/middleware/cross-site.ts"], tests: ["tests/unit/cross-site.security.test.ts"] },
  webhook: {
    mutate: ["lib/account/clerk-webhook.ts"],
    tests: ["tests/unit/clerk-webhook.security.test.ts", "tests/account/account.security.test.ts"],
  },
  // The user scoping of every key query (not the save statement's typing-run bookkeeping).
  "key-store": {
    mutate: [
      functionLines("lib/keys/store.ts", "export async function listKeys("),
      functionLines("lib/keys/store.ts", "export async function deleteKey("),
      functionLines("lib/keys/store.ts", "function buildKeyQueries("),
      functionLines("lib/keys/store.ts", "export function userCiphertextsSql("),
      functionLines("lib/keys/store.ts", "export function accountKeyDeletionSql("),
      functionLines("lib/keys/store.ts", "export async function listKeyEvents("),
    ],
    tests: [
      "tests/keys/keys.security.test.ts",
      "tests/account/account.security.test.ts",
      "tests/keys/keys-rate-limit.error.test.ts",
      "tests/keys/keys-store.error.test.ts",
    ],
  },
  // The reservation against the monthly cap, and the refusal past it.
  budget: {
    mutate: [
      functionLines("lib/generation/budget.ts", "export function reservationSql("),
      functionLines("lib/generation/budget.ts", "export function budgetExceeded("),
    ],
    tests: ["tests/budget/budget.happy.test.ts", "tests/budget/budget-holes.security.test.ts", "tests/unit/budget-exceeded.error.test.ts"],
  },
};

const name = process.env.MUTATION_MODULE ?? "crypto";
const chosen = mutationModules[/** @type {keyof typeof mutationModules} */ (name)];
if (!chosen) throw new Error(`MUTATION_MODULE=${name}: not one of ${Object.keys(mutationModules).join(", ")}`);

// Read by vitest.mutation.config.ts in Stryker's test runner processes.
process.env.MUTATION_TESTS = chosen.tests.join(",");

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  mutate: chosen.mutate,
  coverageAnalysis: "perTest",
  concurrency: 1,
  timeoutMS: 20_000,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  tempDirName: `.stryker-tmp/${name}`,
  cleanTempDir: true,
  ignorePatterns: ["public", ".data", "reports", "web/node_modules", "bench"],
  thresholds: { high: 90, low: 80, break: null },
};
