/**
 * Startup database errors say what is wrong (db/client.ts `describeDatabaseError`), and the
 * local server's database catches up by itself when it comes back
 * (lib/server/migrating-database.ts). Real drivers against a closed port and, with
 * TEST_DATABASE_URL, the real PostgreSQL behind a proxy that opens on that port later.
 */
import { createServer, type AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { databaseUrlProblem, describeDatabaseError, maskDatabaseUrl, migrateDatabase, openDatabase } from "../../db/client.js";
import { AppError } from "../../lib/http/errors.js";
import { createLogger, memorySink } from "../../lib/platform/log.js";
import { migratingDatabase } from "../../lib/server/migrating-database.js";
import { closedPort, startTcpProxy } from "../helpers/battery.js";
import { createPostgresDatabase, testDatabaseUrl } from "../helpers/db.js";

const secret = "pa55word-Secret";

async function migrationError(url: string): Promise<unknown> {
  const database = await openDatabase({ driver: "pg", url, maxConnections: 1 });
  try {
    await migrateDatabase(database);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await database.close();
  }
}

describe("describeDatabaseError", () => {
  it("a closed port: connection refused at host:port, password masked, not Drizzle's query", async () => {
    const port = await closedPort();
    const url = `postgres://app:${secret}@127.0.0.1:${port}/appdb`;
    const error = await migrationError(url);
    expect(String(error)).toContain("Failed query"); // what used to be printed
    const problem = describeDatabaseError(error, url);
    expect(problem.kind).toBe("connection-refused");
    expect(problem.message).toContain(`connection refused at 127.0.0.1:${port}`);
    expect(problem.message).toContain(`postgres://app:****@127.0.0.1:${port}/appdb`);
    expect(problem.message).not.toContain(secret);
    expect(problem.message).not.toContain("Failed query");
  });

  it.skipIf(!testDatabaseUrl)(
    "a missing database and an unknown user, from the real server (skipped without TEST_DATABASE_URL)",
    async () => {
      const missing = new URL(testDatabaseUrl!);
      missing.pathname = "/byok_missing_db";
      const problem = describeDatabaseError(await migrationError(missing.toString()), missing.toString());
      expect(problem).toMatchObject({ kind: "database-missing" });
      expect(problem.message).toContain('database "byok_missing_db" does not exist');

      const stranger = new URL(testDatabaseUrl!);
      stranger.username = "byok_stranger";
      stranger.password = secret;
      const auth = describeDatabaseError(await migrationError(stranger.toString()), stranger.toString());
      expect(auth).toMatchObject({ kind: "authentication-failed" });
      expect(auth.message).toContain('authentication failed for user "byok_stranger"');
      expect(auth.message).not.toContain(secret);
    },
  );

  // Shaped as node-postgres raises them (no test may need DNS or a password-checking server).
  const url = `postgres://app:${secret}@db.internal.example:6543/appdb`;
  const cases: Array<[string, unknown, string, string]> = [
    [
      "DNS failure",
      Object.assign(new Error("getaddrinfo ENOTFOUND db.internal.example"), { code: "ENOTFOUND" }),
      "dns-failure",
      'host "db.internal.example" could not be resolved',
    ],
    [
      "DNS retry",
      Object.assign(new Error("getaddrinfo EAI_AGAIN db.internal.example"), { code: "EAI_AGAIN" }),
      "dns-failure",
      "DNS lookup failed",
    ],
    [
      "wrong password",
      Object.assign(new Error('password authentication failed for user "app"'), { code: "28P01" }),
      "authentication-failed",
      'authentication failed for user "app" on db.internal.example:6543',
    ],
    [
      "missing database",
      Object.assign(new Error('database "appdb" does not exist'), { code: "3D000" }),
      "database-missing",
      'database "appdb" does not exist on db.internal.example:6543',
    ],
    ["connect timeout", new Error("timeout exceeded when trying to connect"), "timeout", "no answer from db.internal.example:6543"],
  ];
  for (const [name, cause, kind, text] of cases) {
    it(`${name}, inside Drizzle's wrapper`, () => {
      const wrapped = Object.assign(new Error(`Failed query: CREATE SCHEMA IF NOT EXISTS "drizzle"\nparams: `), {
        query: "CREATE SCHEMA",
        params: [],
        cause,
      });
      const problem = describeDatabaseError(wrapped, url);
      expect(problem.kind).toBe(kind);
      expect(problem.message).toContain(text);
      expect(problem.message).not.toContain(secret);
    });
  }

  it("an unsupported scheme, shown only when it looks like one", () => {
    expect(describeDatabaseError(new Error("x"), `mysql://root:${secret}@h/db`)).toMatchObject({ kind: "unsupported-scheme" });
    expect(databaseUrlProblem(`mysql://root:${secret}@h/db`)).toBe(
      'DATABASE_URL has an unsupported scheme "mysql://"; expected postgres:// or postgresql://',
    );
    expect(databaseUrlProblem("postgresql://u@h/db")).toBeUndefined();
    expect(databaseUrlProblem(`not a url ${secret}`)).not.toContain(secret);
  });

  it("masks the password and password parameters, and never prints a URL it cannot parse", () => {
    expect(maskDatabaseUrl(`postgres://u:${secret}@h:1/d?sslmode=require&password=${secret}`)).toBe(
      "postgres://u:****@h:1/d?sslmode=require&password=****",
    );
    expect(maskDatabaseUrl(`postgres://u:${secret}@h:1:2/d`)).not.toContain(secret);
  });
});

describe("migratingDatabase", () => {
  it("answers 503 database-unavailable while the database is down, and tries again at most once per interval", async () => {
    // A "database" that hangs up on every connection, counting them.
    let connections = 0;
    const hangUp = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => hangUp.listen(0, "127.0.0.1", resolve));
    const logs = memorySink();
    const url = `postgres://app:${secret}@127.0.0.1:${(hangUp.address() as AddressInfo).port}/appdb`;
    const database = await openDatabase({ driver: "pg", url, maxConnections: 1 });
    const gate = migratingDatabase({
      database,
      url,
      logger: createLogger({ sink: logs.sink }),
      retry: { firstMs: 3_600_000, maxMs: 3_600_000 },
      onDemandIntervalMs: 3_600_000,
    });
    try {
      expect(await gate.start()).toBeDefined();
      expect(connections).toBe(1);
      for (let i = 0; i < 3; i++) {
        const error = await gate.ready().catch((e: unknown) => e);
        expect(error instanceof AppError && error.code).toBe("database-unavailable");
        expect(error instanceof AppError && error.status).toBe(503);
      }
      // The requests inside the interval did not hammer the database.
      expect(connections).toBe(1);
      expect(logs.lines.filter((line) => line.includes("database unavailable"))).toHaveLength(1);
      expect(logs.lines.join("\n")).not.toContain(secret);
    } finally {
      gate.stop();
      await database.close();
      await new Promise((resolve) => hangUp.close(resolve));
    }
  });

  it.skipIf(!testDatabaseUrl)(
    "a request triggers the migration when the database is back (skipped without TEST_DATABASE_URL)",
    async () => {
      const { url: realUrl, drop } = await createPostgresDatabase(testDatabaseUrl!);
      const port = await closedPort();
      const url = new URL(realUrl);
      const target = { host: url.hostname, port: Number(url.port || 5432) };
      url.hostname = "127.0.0.1";
      url.port = String(port);
      const database = await openDatabase({ driver: "pg", url: url.toString(), maxConnections: 2 });
      // No background retry within the test: only requests can bring it up.
      const gate = migratingDatabase({
        database,
        url: url.toString(),
        logger: createLogger({ sink: () => {} }),
        retry: { firstMs: 3_600_000, maxMs: 3_600_000 },
        onDemandIntervalMs: 0,
      });
      const proxy = { current: undefined as Awaited<ReturnType<typeof startTcpProxy>> | undefined };
      try {
        expect(await gate.start()).toBeDefined();
        await expect(gate.ready()).rejects.toMatchObject({ code: "database-unavailable" });
        proxy.current = await startTcpProxy(target, port);
        expect(await gate.ready()).toBe(database);
        const tables = await database.rows<{ table_name: string }>(
          (await import("drizzle-orm"))
            .sql`select table_name from information_schema.tables where table_schema = 'public' and table_name = 'api_keys'`,
        );
        expect(tables).toHaveLength(1);
      } finally {
        gate.stop();
        await database.close();
        await proxy.current?.close();
        await drop();
      }
    },
  );
});
