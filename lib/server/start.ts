/**
 * `npm start`: the local server. Development mode and the embedded database by default;
 * migrates the embedded or local database itself; stops cleanly on SIGINT/SIGTERM.
 * The configuration is checked first (lib/config-check.ts) and each problem logged:
 * development starts anyway, production with an error does not.
 */
import { mkdirSync } from "node:fs";
import { serve } from "@hono/node-server";
import { loadDevelopmentEnv } from "../dev/dotenv.js";
import { ConfigError } from "../env.js";
import { configProblems, logConfigProblems } from "../config-check.js";
import { createRuntime } from "../runtime.js";
import { createLogger } from "../log.js";
import { createApp } from "../app.js";
import { routes } from "../routes/index.js";
import { migrateDatabase, openDatabase } from "../../db/client.js";

async function main() {
  let config;
  try {
    config = loadDevelopmentEnv();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`byok-functions: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  logger.info("starting", { mode: config.mode, modeReason: config.modeReason, driver: config.database.driver });
  const problems = configProblems(config);
  logConfigProblems(problems, logger);
  const errors = problems.filter((p) => p.severity === "error").length;
  if (errors > 0 && config.mode === "production") {
    process.stderr.write(`byok-functions: not starting in production with ${errors} configuration error(s) (above); npm run check-config lists them\n`);
    process.exit(1);
  }

  if (config.database.driver === "pglite" && config.database.pgliteDir !== "memory://") {
    mkdirSync(config.database.pgliteDir, { recursive: true });
  }
  const database = await openDatabase(config.database);
  if (config.database.driver === "pglite" || config.database.driver === "pg") {
    await migrateDatabase(database);
    logger.info("database migrated", { driver: config.database.driver });
  }
  const app = createApp(routes, { runtime: createRuntime(config, { logger, database, configProblems: problems }) });
  if (config.mode === "development") await app.fetch(new Request("http://localhost/api/health")); // warm up
  const server = serve({ fetch: app.fetch, port: config.port, hostname: "127.0.0.1" }, (info) => {
    logger.info(`listening on http://127.0.0.1:${info.port}`, { port: info.port });
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    server.close(async () => {
      await database.close().catch(() => {});
      logger.info("stopped");
      process.exit(0);
    });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((error) => {
  process.stderr.write(`byok-functions failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
