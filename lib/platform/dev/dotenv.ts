/**
 * Entry points (local server, CLIs) load the `.env` file in development only, like the
 * the reference (ALwrity's) backend, docs/api-key-flows.md. Production never reads it: the mode is decided from the real environment
 * first, and a `.env` that would switch to production is refused rather than obeyed.
 *
 * The provider keys the file holds are loaded into the process environment like every other
 * variable, but the configuration's `processEnvKeys` keep only the ones the real environment
 * had before: the file is read fresh by the key resolver (lib/keys/resolver.ts), so a key
 * deleted from it is gone at once, and the copy loaded at start is never a fallback.
 */
import { existsSync } from "node:fs";
import { config as loadDotenv } from "dotenv";
import { ConfigError, loadConfig, type Config } from "../env.js";

export function loadDevelopmentEnv(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const before = loadConfig(env);
  if (before.mode === "production" || !existsSync(before.envFile)) return before;
  loadDotenv({ path: before.envFile, processEnv: env as Record<string, string>, quiet: true });
  const loaded = loadConfig(env);
  const after: Readonly<Config> = Object.freeze({ ...loaded, processEnvKeys: before.processEnvKeys });
  if (after.mode === "production") {
    // modeReason names the variables that switched it (never their values).
    throw new ConfigError([
      `${before.envFile} would switch to production (${after.modeReason}): production never reads .env, so set it in the real environment instead`,
    ]);
  }
  return after;
}
