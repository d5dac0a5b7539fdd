import { existsSync } from "node:fs";
import { buildWeb } from "../scripts/build-web.js";
import { chromiumPath } from "../testkit/browser.js";

const once = Symbol.for("byok-functions/tests/global-setup");

/**
 * Says up front which databases the suite runs on, so a skipped PostgreSQL suite is never
 * silent; builds the web app (public/) the static and browser tests serve, and says whether
 * the browser tests run. The integration and browser tiers (vitest.config.ts) both name this
 * file; a run of both does it once.
 */
export default function setup(): Promise<void> {
  // On globalThis: each vitest project loads its own copy of this module.
  const shared = globalThis as { [once]?: Promise<void> };
  shared[once] ??= announceAndBuild();
  return shared[once];
}

async function announceAndBuild(): Promise<void> {
  if (process.env.TEST_DATABASE_URL) {
    process.stdout.write("database suites: PGlite and PostgreSQL (TEST_DATABASE_URL is set)\n");
  } else {
    process.stdout.write(
      "database suites: PGlite only; the PostgreSQL suites are SKIPPED because TEST_DATABASE_URL is not set " +
        "(e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm test)\n",
    );
  }
  const { files, ms } = await buildWeb();
  process.stdout.write(`web app: built ${files.length} files into public/ in ${ms} ms\n`);
  const chromium = chromiumPath();
  process.stdout.write(
    chromium && existsSync(chromium)
      ? `browser tests: Chromium at ${chromium}\n`
      : "browser tests: SKIPPED, no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)\n",
  );
}
