import { defineConfig } from "vitest/config";

/**
 * The test files of one StrykerJS run (stryker.config.mjs passes them in MUTATION_TESTS, comma
 * separated): only the tests that guard the mutated module, no browser, one worker.
 */
const include = (process.env.MUTATION_TESTS ?? "").split(",").filter(Boolean);

export default defineConfig({
  test: {
    include,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
