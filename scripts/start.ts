/**
 * `npm start`: the local server. Development mode and the embedded database by default;
 * migrates the embedded or local database itself; stops cleanly on SIGINT/SIGTERM.
 *
 * Start order: the configuration, then the port (a second `npm start` on a busy port says so
 * at once, before it opens the running server's database or rebuilds its web app), then the
 * web app (scripts/build-web.ts, when web/ is newer than public/), then the database. Until
 * everything is ready the port answers 503 with `Retry-After: 1`; "listening on …" is logged
 * once it is.
 * The configuration is checked first (lib/platform/config-check.ts) and each problem logged:
 * development starts anyway, production with an error does not.
 *
 * Startup problems are said in one line each, never as a stack trace: an invalid
 * configuration, a DATABASE_URL that is not PostgreSQL, a port already in use. A PostgreSQL
 * database that cannot be reached (refused, unknown host, missing database, failed
 * authentication: lib/server/migrating-database.ts says which) does not stop the server: it
 * starts, answers 503 where the database is needed, and migrates when the database is back.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { failer, loadConfigOrFail } from "./cli.js";
import { configProblems, logConfigProblems } from "../lib/platform/config-check.js";
import { createRuntime } from "../lib/platform/runtime.js";
import { createLogger, redact } from "../lib/platform/log.js";
import { createApp } from "../lib/app.js";
import { routes } from "../lib/routes.js";
import { databaseUrlProblem, migrateDatabase, openDatabase, type Database } from "../db/client.js";
import { migratingDatabase, type MigratingDatabase } from "../lib/server/migrating-database.js";
import { staticSite, withStaticSite } from "../lib/server/static.js";
import { parsePublishableKey } from "../lib/platform/auth/publishable-key.js";

/** The web app, built by scripts/build-web.ts (`buildWebIfStale`, below). */
const publicDir = new URL("../public", import.meta.url).pathname;

/** Ends the process with one line on stderr: what is wrong and what to do. */
const fail: (message: string) => never = failer("byok-functions", 1);

async function main() {
  const config = loadConfigOrFail(fail);
  const { driver, url, pgliteDir } = config.database;
  const urlProblem = driver === "pglite" || url === undefined ? undefined : databaseUrlProblem(url);
  if (urlProblem !== undefined) fail(urlProblem);

  const logger = createLogger({ level: config.logLevel });
  logger.info("starting", { mode: config.mode, modeReason: config.modeReason, driver: config.database.driver });
  const problems = configProblems(config);
  logConfigProblems(problems, logger);
  const errors = problems.filter((p) => p.severity === "error").length;
  if (errors > 0 && config.mode === "production") {
    process.stderr.write(
      `byok-functions: not starting in production with ${errors} configuration error(s) (above); npm run check-config lists them\n`,
    );
    process.exit(1);
  }

  // The port first: nothing is opened or built for a server that cannot listen.
  let handle: (request: Request) => Response | Promise<Response> = () =>
    new Response("starting\n", { status: 503, headers: { "retry-after": "1", "content-type": "text/plain; charset=utf-8" } });
  const server = await new Promise<Server>((resolve) => {
    const listening = serve({ fetch: (request) => handle(request), port: config.port, hostname: config.host }, () =>
      resolve(listening),
    ) as Server;
    listening.on("error", (error: NodeJS.ErrnoException) => fail(listenProblem(error, config.host, config.port)));
  });
  await buildWebIfStale(logger);

  let database: Database;
  let gate: MigratingDatabase | undefined;
  if (driver === "pglite") {
    if (pgliteDir !== "memory://") {
      // Creating and migrating a new PGlite data directory takes seconds with no other output.
      if (!existsSync(join(pgliteDir, "PG_VERSION"))) {
        logger.info(`setting up the embedded database in ${pgliteDir} (first run only, a few seconds)…`);
      }
      mkdirSync(pgliteDir, { recursive: true });
    }
    database = await openDatabase(config.database);
    await migrateDatabase(database); // embedded: nothing to wait for, so a failure is fatal
    logger.info("database migrated", { driver });
  } else {
    database = await openDatabase(config.database);
    if (driver === "pg") {
      gate = migratingDatabase({ database, url, logger });
      const problem = await gate.start();
      if (problem) {
        logger.warn(
          "starting anyway: /api/health and requests that need the database answer 503 until it is reachable; the migrations are retried in the background",
          { kind: problem.kind },
        );
      }
    }
  }

  const migrating = gate;
  const runtime = createRuntime(config, { logger, database: migrating ? () => migrating.ready() : database, configProblems: problems });
  const app = createApp(routes, { runtime });
  if (config.mode === "development") await app.fetch(new Request("http://localhost/api/health")); // warm up
  const publishable = config.clerk.publishableKey ? parsePublishableKey(config.clerk.publishableKey) : null;
  const site = staticSite(publicDir, { clerkFrontendApi: config.mode === "production" ? (publishable?.frontendApi ?? null) : null });
  if (!site.handle(new Request("http://localhost/")))
    logger.warn("the web app is not built (public/index.html is missing): run npm run build:web");
  handle = withStaticSite(site, app.fetch);
  const info = server.address();
  if (info && typeof info === "object") {
    const shown = info.family === "IPv6" ? `[${info.address}]` : info.address;
    logger.info(`listening on http://${shown}:${info.port}`, { port: info.port });
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    migrating?.stop();
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

/** The newest modification time under `dir` (files only), 0 when there is none. */
function newest(dir: string): number {
  let latest = 0;
  // Walked by hand: Dirent.parentPath (recursive readdir) needs Node 20.12, and 20.10 is supported.
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (entry.isFile()) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

/** Builds public/ from web/ (scripts/build-web.ts) unless it is already newer than every source. */
async function buildWebIfStale(logger: ReturnType<typeof createLogger>): Promise<void> {
  const webDir = new URL("../web", import.meta.url).pathname;
  const built = join(publicDir, "index.html");
  if (!existsSync(webDir)) return;
  if (existsSync(built) && statSync(built).mtimeMs >= newest(webDir)) return;
  try {
    const { buildWeb } = await import("./build-web.js");
    const { files, ms } = await buildWeb();
    logger.info(`web: built ${files.length} files into public/ in ${ms} ms`);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // Installed without devDependencies (npm ci --omit=dev): the API still starts, without the web app.
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND")
      logger.warn("web: not built: esbuild or swagger-ui-dist is missing (devDependencies); the API runs without the web app");
    else throw error;
  }
}

/** One line for a failed `listen`: which port or address, and how to choose another. */
function listenProblem(error: NodeJS.ErrnoException, host: string, port: number): string {
  switch (error.code) {
    case "EADDRINUSE":
      return `port ${port} is already in use on ${host} (another \`npm start\`?); stop that process or pick another port: PORT=${port === 3000 ? 3001 : port + 1} npm start`;
    case "EACCES":
      return `not allowed to listen on port ${port} (ports below 1024 need privileges); pick another: PORT=3000 npm start`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${host}: no such address on this machine; unset HOST (default 127.0.0.1)`;
    default:
      return `cannot listen on ${host}:${port}: ${error.code ?? error.message}`;
  }
}

main().catch((error) => {
  fail(`failed to start: ${redact(error instanceof Error ? error.message : String(error))}`);
});
