/**
 * `npm run db:migrate`: applies the committed drizzle-kit migrations to DATABASE_URL (or the
 * embedded database). Use it on a deployed database before the first deploy and after each
 * release that adds a migration; with Neon, give it the direct (unpooled) connection string.
 */
import { mkdirSync } from "node:fs";
import { loadDevelopmentEnv } from "../lib/platform/dev/dotenv.js";
import { redact } from "../lib/platform/log.js";
import { describeDatabaseError, migrateDatabase, openDatabase } from "../db/client.js";

async function main(): Promise<void> {
  const config = loadDevelopmentEnv();
  const { driver, url, pgliteDir } = config.database;
  if (driver === "pglite" && pgliteDir !== "memory://") mkdirSync(pgliteDir, { recursive: true });
  const database = await openDatabase({ driver, url, pgliteDir, maxConnections: 1 });
  try {
    await migrateDatabase(database);
    const where = url ? new URL(url).host : pgliteDir;
    process.stdout.write(`db:migrate: ${driver} database at ${where} is up to date\n`);
  } catch (error) {
    // Say why (refused, unknown host, missing database, authentication), not "Failed query: …".
    throw new Error(url === undefined ? messageOf(error) : describeDatabaseError(error, url).message);
  } finally {
    await database.close().catch(() => {});
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

main().catch((error: unknown) => {
  process.stderr.write(`db:migrate failed: ${redact(messageOf(error))}\n`);
  process.exit(1);
});
