/**
 * Driver choice (DESIGN.md "Configuration"): embedded PGlite without DATABASE_URL,
 * node-postgres for `postgres://…`, the Neon serverless driver (HTTP or WebSocket) for Neon.
 * Each driver is imported only when chosen, so a function never pays for the others at
 * cold start (PGlite's WASM alone is megabytes).
 */
import { fileURLToPath } from "node:url";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { SQL } from "drizzle-orm";
import type { DatabaseDriver } from "../lib/env.js";
import * as schema from "./schema.js";

export type Schema = typeof schema;
/** The common Drizzle surface of every driver we use. */
export type AppDb = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseOptions {
  driver: DatabaseDriver;
  url?: string | undefined;
  /** PGlite data directory, or `memory://` for an in-memory database (tests). */
  pgliteDir?: string;
  /** Pool size for pg / neon-ws. Serverless functions want few connections each. */
  maxConnections?: number;
  /** Neon only: endpoints for tests and proxies (see tests/neon-*.test.ts). */
  neon?: { fetchEndpoint?: string; wsProxy?: string; useSecureWebSocket?: boolean; pipelineConnect?: false };
}

export interface Database {
  db: AppDb;
  driver: DatabaseDriver;
  /** Runs raw SQL and returns plain row objects, whatever the driver. */
  rows<T = Record<string, unknown>>(query: SQL): Promise<T[]>;
  close(): Promise<void>;
}

const migrationsFolder = fileURLToPath(new URL("./migrations", import.meta.url));

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const { driver } = options;
  let db: AppDb;
  let close: () => Promise<void>;

  switch (driver) {
    case "pglite": {
      const { PGlite } = await import("@electric-sql/pglite");
      const { drizzle } = await import("drizzle-orm/pglite");
      const dir = options.pgliteDir ?? "./.data/pglite";
      const client = dir === "memory://" ? new PGlite() : new PGlite(dir);
      db = drizzle({ client, schema }) as unknown as AppDb;
      close = () => client.close();
      break;
    }
    case "pg": {
      const pg = (await import("pg")).default;
      const { drizzle } = await import("drizzle-orm/node-postgres");
      const pool = new pg.Pool({
        connectionString: requireUrl(options),
        max: options.maxConnections ?? 10,
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 10_000,
      });
      // An idle client dropped by the server must not crash the process.
      pool.on("error", () => {});
      db = drizzle({ client: pool, schema }) as unknown as AppDb;
      close = () => pool.end();
      break;
    }
    case "neon-http": {
      const neonModule = await import("@neondatabase/serverless");
      const { drizzle } = await import("drizzle-orm/neon-http");
      if (options.neon?.fetchEndpoint) neonModule.neonConfig.fetchEndpoint = options.neon.fetchEndpoint;
      const client = neonModule.neon(requireUrl(options));
      db = drizzle({ client, schema }) as unknown as AppDb;
      close = async () => {};
      break;
    }
    case "neon-ws": {
      const neonModule = await import("@neondatabase/serverless");
      const { drizzle } = await import("drizzle-orm/neon-serverless");
      const { neonConfig } = neonModule;
      if (typeof globalThis.WebSocket === "undefined") {
        neonConfig.webSocketConstructor = (await import("ws")).default as unknown as typeof WebSocket;
      }
      if (options.neon?.wsProxy) neonConfig.wsProxy = options.neon.wsProxy;
      if (options.neon?.useSecureWebSocket !== undefined) neonConfig.useSecureWebSocket = options.neon.useSecureWebSocket;
      if (options.neon?.pipelineConnect === false) neonConfig.pipelineConnect = false;
      const pool = new neonModule.Pool({ connectionString: requireUrl(options), max: options.maxConnections ?? 5 });
      pool.on("error", () => {});
      db = drizzle({ client: pool, schema }) as unknown as AppDb;
      close = () => pool.end();
      break;
    }
  }

  return {
    db,
    driver,
    async rows<T>(query: SQL): Promise<T[]> {
      const result = (await db.execute(query)) as unknown as { rows?: T[] } | T[];
      return Array.isArray(result) ? result : (result.rows ?? []);
    },
    close,
  };
}

function requireUrl(options: DatabaseOptions): string {
  if (!options.url) throw new Error(`database driver ${options.driver} needs DATABASE_URL`);
  return options.url;
}

/** Applies the committed drizzle-kit migrations (idempotent). */
export async function migrateDatabase(database: Database): Promise<void> {
  const config = { migrationsFolder };
  switch (database.driver) {
    case "pglite":
      return (await import("drizzle-orm/pglite/migrator")).migrate(database.db as never, config);
    case "pg":
      return (await import("drizzle-orm/node-postgres/migrator")).migrate(database.db as never, config);
    case "neon-http":
      return (await import("drizzle-orm/neon-http/migrator")).migrate(database.db as never, config);
    case "neon-ws":
      return (await import("drizzle-orm/neon-serverless/migrator")).migrate(database.db as never, config);
  }
}

const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EPIPE",
  "EHOSTUNREACH",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

/**
 * True when an error (or anything in its cause chain) means the database could not be
 * reached or dropped the connection, as opposed to a query that was wrong.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current; depth++) {
    if (typeof current !== "object") return false;
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; name?: unknown };
    if (typeof e.code === "string" && (unavailableCodes.has(e.code) || e.code.startsWith("08"))) return true;
    if (typeof e.message === "string") {
      const m = e.message;
      if (
        /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|fetch failed|WebSocket|socket hang up|Cannot use a pool after calling end|PGlite is closed|terminating connection/i.test(
          m,
        )
      ) {
        return true;
      }
    }
    if (e.name === "AggregateError" && Array.isArray((e as { errors?: unknown[] }).errors)) {
      return (e as { errors: unknown[] }).errors.some(isDatabaseUnavailable);
    }
    current = e.cause;
  }
  return false;
}
