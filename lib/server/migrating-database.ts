/**
 * The local server's database while it may not be migrated yet. `npm start` with the database
 * down starts anyway: `/api/health` and every request that needs the database answer 503
 * (database-unavailable) until the migrations have run, which is retried in the background
 * with backoff, and on demand by a request at most once per `onDemandIntervalMs`, so the
 * server catches up by itself when the database comes back.
 */
import { AppError } from "../http/errors.js";
import type { Logger } from "../platform/log.js";
import { describeDatabaseError, migrateDatabase, type Database, type DatabaseProblem } from "../../db/client.js";

export interface MigratingDatabaseOptions {
  database: Database;
  /** DATABASE_URL, to say which server failed (password masked); undefined for PGlite. */
  url: string | undefined;
  logger: Logger;
  /** Background retry: first delay and the cap it doubles up to, in ms. */
  retry?: { firstMs: number; maxMs: number };
  /** A request that finds the database not migrated tries again at most this often (ms). */
  onDemandIntervalMs?: number;
}

export interface MigratingDatabase {
  /** Runs the first migration; `undefined` when it worked, else why not (background retry scheduled). */
  start(): Promise<DatabaseProblem | undefined>;
  /** The database once migrated; otherwise one more attempt (rate-limited), else 503 database-unavailable. */
  ready(): Promise<Database>;
  /** Stops the background retry (shutdown). */
  stop(): void;
}

export function migratingDatabase(options: MigratingDatabaseOptions): MigratingDatabase {
  const { database, url, logger } = options;
  const retry = options.retry ?? { firstMs: 500, maxMs: 5_000 };
  const onDemandIntervalMs = options.onDemandIntervalMs ?? 1_000;
  let migrated = false;
  let stopped = false;
  let inFlight: Promise<boolean> | undefined;
  let lastProblem: DatabaseProblem | undefined;
  let lastFailureAt = Number.NEGATIVE_INFINITY;
  let delay = retry.firstMs;
  let timer: NodeJS.Timeout | undefined;

  const runOnce = async (): Promise<boolean> => {
    try {
      await migrateDatabase(database);
      migrated = true;
      if (timer) clearTimeout(timer);
      logger.info(lastProblem ? "database reachable again and migrated" : "database migrated", { driver: database.driver });
      return true;
    } catch (error) {
      const problem = describeDatabaseError(error, url);
      lastFailureAt = Date.now();
      // Once per distinct cause, not once per retry.
      if (problem.message !== lastProblem?.message) {
        logger.warn(`database unavailable: ${problem.message}`, { kind: problem.kind });
      }
      lastProblem = problem;
      return false;
    }
  };

  const attempt = (): Promise<boolean> => {
    if (!inFlight) {
      const run = runOnce();
      inFlight = run;
      void run.finally(() => {
        if (inFlight === run) inFlight = undefined;
      });
    }
    return inFlight;
  };

  const schedule = () => {
    if (stopped || migrated) return;
    timer = setTimeout(() => {
      if (stopped || migrated) return;
      void attempt().then((ok) => {
        if (!ok) schedule();
      });
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, retry.maxMs);
  };

  return {
    async start() {
      if (await attempt()) return undefined;
      schedule();
      return lastProblem;
    },
    async ready() {
      if (migrated) return database;
      if (!stopped && (inFlight || Date.now() - lastFailureAt >= onDemandIntervalMs)) {
        if (await attempt()) return database;
      }
      throw new AppError("database-unavailable", {
        detail: "the database is not reachable or not migrated yet; the server keeps retrying and catches up by itself",
        headers: { "retry-after": "5" },
      });
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
