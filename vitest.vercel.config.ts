import { defineConfig } from "vitest/config";

/** The built Vercel functions, run as the platform runs them (after `bash scripts/vercel-build.sh`). */
export default defineConfig({
  test: {
    include: ["tests/vercel/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
