import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // Needs `vercel build` first: `npm run test:vercel` (CI runs it after the build).
    exclude: ["tests/vercel/**", "node_modules/**"],
    globalSetup: ["tests/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // PGlite instances are memory-hungry WASM: keep parallelism to the 2 cores we have.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
