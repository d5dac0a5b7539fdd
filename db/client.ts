/**
 * Driver choice (docs/configuration.md, docs/neon.md): embedded PGlite without DATABASE_URL,
 * node-postgres for `postgres://…`, the Neon serverless driver (HTTP or WebSocket) for Neon.
 * Each driver is imported only when chosen, so a function never pays for the others at
 * cold start (PGlite's WASM alone is megabytes).
 */
import { fileURLToPath } from "node:url";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { SQL } from "drizzle-orm";
import type { DatabaseDriver } from "../lib/platform/env.js";
import * as schema from "./schema.js";

export type Schema = typeof schema;
/** The common Drizzle surface of every driver we use. */
export type AppDb = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseOptions {
  driver: DatabaseDriver;
  url?: string | undefined;
  /** PGlite data directory, or `memory://` for an in-memory database (tests). */
  pgliteDir?: string;
  /** Name the hot per-request statements so PostgreSQL caches their plans (node-postgres). */
  namedStatements?: boolean;
  /** Pool size for pg / neon-ws. Serverless functions want few connections each. */
  maxConnections?: number;
  /**
   * Neon only: where the driver connects, for local proxies (tests/platform/neon.happy.test.ts, docs/neon.md).
   * `fetchEndpoint` (neon-http) is set on the driver's module-global config; the WebSocket
   * settings (neon-ws) apply to this database's pool only.
   */
  neon?: { fetchEndpoint?: string; wsProxy?: string; useSecureWebSocket?: boolean; pipelineConnect?: false };
}

export interface Database {
  db: AppDb;
  driver: DatabaseDriver;
  /** Whether hot queries use named prepared statements (see DatabaseOptions). */
  namedStatements: boolean;
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
      // Deployed functions do not carry PGlite (vercel.json excludeFiles, the Lambda bundle's
      // stub): say what to do instead of "module not found".
      const loaded = await Promise.all([import("@electric-sql/pglite"), import("drizzle-orm/pglite")]).catch((error: unknown) => {
        throw new Error("embedded PGlite is not part of this deployment: set DATABASE_URL to a PostgreSQL or Neon database", {
          cause: error,
        });
      });
      const [{ PGlite }, { drizzle }] = loaded;
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
      // fetchEndpoint exists only on the driver's module-global neonConfig: it applies to every
      // neon-http database of this process (one per serverless instance; tests use one endpoint).
      if (options.neon?.fetchEndpoint) neonModule.neonConfig.fetchEndpoint = options.neon.fetchEndpoint;
      const client = neonModule.neon(requireUrl(options));
      db = drizzle({ client, schema }) as unknown as AppDb;
      close = async () => {};
      break;
    }
    case "neon-ws": {
      const neonModule = await import("@neondatabase/serverless");
      const { drizzle } = await import("drizzle-orm/neon-serverless");
      const webSocket =
        typeof globalThis.WebSocket === "undefined" ? ((await import("ws")).default as unknown as typeof WebSocket) : undefined;
      const overrides = options.neon ?? {};
      // The driver's `neonConfig` export is module-global: setting it would redirect every
      // neon-ws pool of the process. Each client also has its own `neonConfig` (read when it
      // connects), so this pool's clients get the settings and the global stays untouched.
      class ConfiguredClient extends neonModule.Client {
        constructor(config?: ConstructorParameters<typeof neonModule.Client>[0]) {
          super(config);
          const own = this.neonConfig;
          if (webSocket) own.webSocketConstructor = webSocket;
          if (overrides.wsProxy) own.wsProxy = overrides.wsProxy;
          if (overrides.useSecureWebSocket !== undefined) own.useSecureWebSocket = overrides.useSecureWebSocket;
          if (overrides.pipelineConnect === false) own.pipelineConnect = false;
        }
      }
      const pool = new neonModule.Pool({ connectionString: requireUrl(options), max: options.maxConnections ?? 5 });
      pool.Client = ConfiguredClient;
      pool.on("error", () => {});
      db = drizzle({ client: pool, schema }) as unknown as AppDb;
      close = () => pool.end();
      break;
    }
  }

  return {
    db,
    driver,
    namedStatements: options.namedStatements ?? false,
    async rows<T>(query: SQL): Promise<T[]> {
      const result = (await db.execute(query)) as unknown as { rows?: T[] } | T[];
      return Array.isArray(result) ? result : (result.rows ?? []);
    },
    close,
  };
}

function requireUrl(options: DatabaseOptions): string {
  if (!options.url) throw new Error(`database driver ${options.driver} needs DATABASE_URL`);
  const problem = databaseUrlProblem(options.url);
  if (problem !== undefined) throw new Error(problem);
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

/** Driver messages that mean "could not reach or lost the database", whatever the driver. */
const unavailableMessage =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|fetch failed|WebSocket|socket hang up|Cannot use a pool after calling end|PGlite is closed|terminating connection|Couldn't connect to compute node|Control plane request failed|Error connecting to database/i;

/**
 * The Neon HTTP driver reports a non-400 answer from its endpoint as "Server error (HTTP
 * status N): body". Neon answers PostgreSQL errors (a wrong query) with 400, so a 5xx is its
 * proxy failing to reach the compute, and a 429 is its connection rate limit.
 */
const neonHttpServerError = /^Server error \(HTTP status (5\d\d|429)\)/;

/**
 * True when an error (or anything it wraps) means the database could not be reached or
 * dropped the connection, as opposed to a query that was wrong. Wrappers followed: `cause`
 * (Drizzle's DrizzleQueryError, fetch's TypeError), `sourceError` (Neon HTTP's
 * NeonDbError), `error` (the WebSocket ErrorEvent that the Neon WebSocket driver passes on
 * as is when its proxy refuses the connection) and AggregateError's `errors`.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0 && seen.size < 12) {
    const current = pending.shift();
    if (!current || typeof current !== "object" || seen.has(current)) continue;
    seen.add(current);
    const e = current as {
      code?: unknown;
      message?: unknown;
      type?: unknown;
      cause?: unknown;
      sourceError?: unknown;
      error?: unknown;
      errors?: unknown;
    };
    if (typeof e.code === "string" && (unavailableCodes.has(e.code) || e.code.startsWith("08"))) return true;
    // Drizzle's wrapper repeats the query and its parameters in its message: never match those.
    const wrapsQuery = "query" in e && "params" in e;
    if (typeof e.message === "string" && !wrapsQuery && (unavailableMessage.test(e.message) || neonHttpServerError.test(e.message))) {
      return true;
    }
    // An error *event* from a WebSocket (ws's ErrorEvent, or a DOM Event where WebSocket is
    // global) only ever means the tunnel to the database failed.
    if (e.type === "error" && "target" in e) return true;
    pending.push(e.cause, e.sourceError, e.error);
    if (Array.isArray(e.errors)) pending.push(...e.errors);
  }
  return false;
}

/** URL schemes the PostgreSQL drivers understand. */
const postgresSchemes = new Set(["postgres:", "postgresql:"]);

/**
 * Why `url` cannot be a DATABASE_URL for the pg and Neon drivers, or `undefined` when it can.
 * Never repeats the URL (it may hold a password).
 */
export function databaseUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "DATABASE_URL is not a URL; expected postgres://user:password@host:5432/database";
  }
  if (!postgresSchemes.has(parsed.protocol)) {
    // The scheme is shown only when it looks like one (a pasted password must not be printed).
    const scheme = /^[a-z][a-z0-9+.-]{0,20}:$/i.test(parsed.protocol) ? `"${parsed.protocol}//"` : "its scheme";
    return `DATABASE_URL has an unsupported scheme ${scheme}; expected postgres:// or postgresql://`;
  }
  return undefined;
}

/** `url` with its password (and any `password` query parameter) replaced by `****`, for messages. */
export function maskDatabaseUrl(url: string | undefined): string {
  if (url === undefined) return "(none)";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "(DATABASE_URL, not shown: it does not parse as a URL)";
  }
  if (parsed.password) parsed.password = "****";
  for (const name of [...parsed.searchParams.keys()]) {
    if (/pass/i.test(name)) parsed.searchParams.set(name, "****");
  }
  return parsed.toString();
}

export type DatabaseProblemKind =
  | "unsupported-scheme"
  | "connection-refused"
  | "dns-failure"
  | "timeout"
  | "database-missing"
  | "authentication-failed"
  | "other";

export interface DatabaseProblem {
  kind: DatabaseProblemKind;
  /** One sentence for a person: what is wrong, where, and what to do; the password masked. */
  message: string;
}

const authenticationCodes = new Set(["28P01", "28000"]);
const timeoutMessage = /timeout|timed out/i;

/**
 * Says why the database at `url` could not be used, from an error thrown while connecting or
 * migrating (Drizzle's "Failed query: CREATE SCHEMA …" wrapper says nothing about the cause,
 * so the drivers' errors inside it are read): connection refused (host:port), DNS failure
 * (host), timeout, database does not exist (name), authentication failed (user), or an
 * unsupported URL scheme. The message masks the URL's password and never holds query text.
 */
export function describeDatabaseError(error: unknown, url: string | undefined): DatabaseProblem {
  const where = url === undefined ? undefined : safeUrlParts(url);
  const shown = maskDatabaseUrl(url);
  const hostPort = where ? `${where.host}:${where.port}` : "the database server";
  if (url !== undefined) {
    const urlProblem = databaseUrlProblem(url);
    if (urlProblem !== undefined) return { kind: "unsupported-scheme", message: urlProblem };
  }
  const found = findDriverError(error);
  const code = found?.code;
  if (code === "ECONNREFUSED") {
    return {
      kind: "connection-refused",
      message: `connection refused at ${hostPort}: is PostgreSQL running and listening there? (DATABASE_URL=${shown})`,
    };
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") {
    return {
      kind: "dns-failure",
      message: `the database host ${where ? `"${where.host}"` : ""} could not be resolved (DNS lookup failed: ${code}); check the host name in DATABASE_URL=${shown}`,
    };
  }
  if (code === "3D000") {
    const name = where?.database ?? "(unknown)";
    return {
      kind: "database-missing",
      message: `database "${name}" does not exist on ${hostPort}; create it (\`createdb ${name}\`) or fix the name in DATABASE_URL=${shown}`,
    };
  }
  if (code !== undefined && authenticationCodes.has(code)) {
    const user = where?.user ?? "(unknown)";
    const serverSays = typeof found?.message === "string" ? `: ${redactUrlLike(found.message).slice(0, 200)}` : "";
    return {
      kind: "authentication-failed",
      message: `authentication failed for user "${user}" on ${hostPort}${serverSays}; check the user and password in DATABASE_URL=${shown}`,
    };
  }
  if (code === "ETIMEDOUT" || (typeof found?.message === "string" && timeoutMessage.test(found.message))) {
    return {
      kind: "timeout",
      message: `no answer from ${hostPort} in time (a firewall, a wrong port, or a paused database?); DATABASE_URL=${shown}`,
    };
  }
  const detail = found?.message ? redactUrlLike(found.message).slice(0, 200) : error instanceof Error ? error.name : "unknown error";
  return { kind: "other", message: `the database at ${hostPort} failed: ${code ? `${code} ` : ""}${detail} (DATABASE_URL=${shown})` };
}

function safeUrlParts(url: string): { host: string; port: string; user: string | undefined; database: string | undefined } | undefined {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? decodeURIComponent(parsed.username) : undefined;
    const path = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
    return {
      host: parsed.hostname || "localhost",
      port: parsed.port || "5432",
      user,
      // PostgreSQL's default database is the user's name.
      database: path || user,
    };
  } catch {
    return undefined;
  }
}

/** Any URL with credentials inside a driver message loses them. */
function redactUrlLike(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]{0,20}:\/\/[^\s:/@]{0,100}):[^\s@]{0,200}@/gi, "$1:****@");
}

/**
 * The first error in the chain that a driver raised: one with a `code` (a Node system error
 * or a PostgreSQL SQLSTATE), skipping Drizzle's "Failed query" wrapper, whose message holds
 * the query and its parameters.
 */
function findDriverError(error: unknown): { code?: string; message?: string } | undefined {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  let fallback: { message?: string } | undefined;
  while (pending.length > 0 && seen.size < 12) {
    const current = pending.shift();
    if (!current || typeof current !== "object" || seen.has(current)) continue;
    seen.add(current);
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; sourceError?: unknown; errors?: unknown };
    const wrapsQuery = "query" in e && "params" in e;
    const message = typeof e.message === "string" && !wrapsQuery ? e.message : undefined;
    if (typeof e.code === "string") return { code: e.code, message };
    if (message !== undefined && fallback === undefined) fallback = { message };
    pending.push(e.cause, e.sourceError);
    if (Array.isArray(e.errors)) pending.push(...e.errors);
  }
  return fallback;
}
