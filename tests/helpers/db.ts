/**
 * Database fixtures: every DB test runs on embedded PGlite, and on real PostgreSQL when
 * TEST_DATABASE_URL is set (each test file gets its own fresh database there, dropped after).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { migrateDatabase, openDatabase, type Database } from "../../db/client.js";

export interface Backend {
  name: "pglite" | "postgres";
  available: boolean;
  /** Opens a fresh, migrated database. */
  open(): Promise<TestDatabase>;
}

export interface TestDatabase extends Database {
  url?: string;
  /** Closes and (PostgreSQL) drops the database. */
  destroy(): Promise<void>;
}

// Read here, in the test harness only: lib/ never reads process.env outside lib/platform/env.ts.
export const testDatabaseUrl = process.env.TEST_DATABASE_URL || undefined;

export async function createPostgresDatabase(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `byok_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export const backends: Backend[] = [
  {
    name: "pglite",
    available: true,
    async open() {
      const database = await openDatabase({ driver: "pglite", pgliteDir: "memory://" });
      await migrateDatabase(database);
      return { ...database, destroy: () => database.close() };
    },
  },
  {
    name: "postgres",
    available: testDatabaseUrl !== undefined,
    async open() {
      const { url, drop } = await createPostgresDatabase(testDatabaseUrl!);
      const database = await openDatabase({ driver: "pg", url, maxConnections: 20, namedStatements: true });
      await migrateDatabase(database);
      return {
        ...database,
        url,
        destroy: async () => {
          await database.close();
          await drop();
        },
      };
    },
  },
];

/** Label for describe blocks; says why PostgreSQL was skipped. */
export function backendLabel(backend: Backend): string {
  return backend.available || backend.name === "pglite" ? `on ${backend.name}` : `on postgres (skipped: TEST_DATABASE_URL is not set)`;
}
