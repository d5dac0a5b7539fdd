/**
 * The gateway's statements run as named prepared statements (lib/gateway/statements.ts):
 * - a name stands for one text, the first 64 texts get one, any later one runs unnamed;
 * - a database without named statements is used as it is;
 * - on PostgreSQL, a call's start statement and its settlement are each prepared once per
 *   connection and executed again by name on the next calls, with the answers unchanged.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { randomBytes } from "node:crypto";
import { sql, type SQL } from "drizzle-orm";
import { migrateDatabase, openDatabase, type Database } from "../../db/client.js";
import { createPostgresDatabase, testDatabaseUrl } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

/** A stand-in database: records what reaches the driver, named or not. */
function stubDatabase(namedStatements: boolean) {
  const named: (string | undefined)[] = [];
  const unnamed: SQL[] = [];
  const session = {
    prepareQuery: (query: { sql: string; params: unknown[] }, _fields: unknown, name: string | undefined) => ({
      execute: async () => {
        named.push(name);
        return { rows: [{ text: query.sql, params: query.params }] };
      },
    }),
  };
  const database = {
    db: { _: { session } },
    driver: "pg",
    namedStatements,
    rows: async (query: SQL) => {
      unnamed.push(query);
      return [{ unnamed: true }];
    },
    close: async () => {},
  } as unknown as Database;
  return { database, named, unnamed };
}

/** A fresh copy of the module (its names start empty), apart from the one the app below uses. */
async function freshStatements() {
  vi.resetModules();
  return import("../../lib/gateway/statements.js");
}

describe("named gateway statements", () => {
  it("one name per text, the same each time; at most 64 texts named, later ones run unnamed", async () => {
    const { statementName, withNamedStatements } = await freshStatements();
    const first = statementName("select 'a'");
    expect(first).toMatch(/^byok_gw_\d+$/);
    expect(statementName("select 'a'")).toBe(first);
    expect(statementName("select 'b'")).not.toBe(first);

    const { database, named, unnamed } = stubDatabase(true);
    const gateway = withNamedStatements(database);
    expect(withNamedStatements(database)).toBe(gateway);
    const rows = await gateway.rows<{ text: string; params: unknown[] }>(sql`select ${"x"}::text as y`);
    expect(rows).toEqual([{ text: "select $1::text as y", params: ["x"] }]);
    expect(named).toEqual([statementName("select $1::text as y")]);

    // Three texts are named so far: 61 more get a name, the last 3 of these 64 run unnamed.
    for (let i = 0; i < 64; i++) await gateway.rows(sql`select ${i}::int as ${sql.raw(`c${i}`)}`);
    expect(new Set(named).size).toBe(62);
    expect(named).not.toContain(undefined);
    expect(unnamed.map((query) => JSON.stringify(query.queryChunks))).toEqual(
      [61, 62, 63].map((i) => JSON.stringify(sql`select ${i}::int as ${sql.raw(`c${i}`)}`.queryChunks)),
    );
    expect(statementName("a text never seen")).toBeUndefined();
    expect(statementName("select 'a'")).toBe(first);
  });

  it("a database without named statements is used as it is", async () => {
    const { withNamedStatements } = await freshStatements();
    const { database, named, unnamed } = stubDatabase(false);
    expect(withNamedStatements(database)).toBe(database);
    expect(await withNamedStatements(database).rows(sql`select 1`)).toEqual([{ unnamed: true }]);
    expect(named).toEqual([]);
    expect(unnamed).toHaveLength(1);
  });
});

describe.skipIf(!testDatabaseUrl)("gateway statements on postgres: prepared once per connection, then executed by name", () => {
  const { gemini } = useFakeUpstreams();
  let drop: () => Promise<void>;
  let database: Database;
  let rt: TestRuntime;

  beforeAll(async () => {
    const created = await createPostgresDatabase(testDatabaseUrl!);
    drop = created.drop;
    // One connection: pg_prepared_statements is per session, and this is the gateway's.
    database = await openDatabase({ driver: "pg", url: created.url, namedStatements: true, maxConnections: 1 });
    await migrateDatabase(database);
    rt = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, RATE_LIMIT_GATEWAY_PER_MINUTE: "1000" } });
  });
  afterAll(async () => {
    rt?.cleanup();
    await database?.close();
    await drop?.();
  });

  it("the start statement and the settlement are prepared once and executed on every call", async () => {
    const userId = `user_gws_${randomBytes(4).toString("hex")}`;
    const token = rt.token(userId);
    await expectStatus(
      await rt.fetch(request("POST", "/api/onboarding/api-keys", { token, body: { gemini: sampleKeys(4_242).gemini } })),
      200,
    );
    const calls = 4;
    for (let i = 0; i < calls; i++) {
      for (const [method, query] of [
        ["generateContent", ""],
        ["streamGenerateContent", "?alt=sse"],
      ] as const) {
        const response = await rt.fetch(
          request("POST", `/api/gateway/gemini/v1beta/models/gemini-3.5-flash:${method}${query}`, {
            token,
            body: { contents: [{ role: "user", parts: [{ text: "Say hello" }] }] },
          }),
        );
        expect(response.status).toBe(200);
        expect(await response.text()).toContain(gemini.expectedText.slice(0, 20));
      }
    }
    const prepared = await database.rows<{ name: string; statement: string; executions: number }>(sql`
      select name, statement, (generic_plans + custom_plans)::int as executions
      from pg_prepared_statements where name like 'byok_gw_%'`);
    const start = prepared.filter((p) => p.statement.includes("insert into gateway_calls"));
    const settlement = prepared.filter((p) => p.statement.includes("update budgets b set"));
    // One shape each (a session caller, rate-limited, reserving; a usage row and the key's health).
    expect(start).toHaveLength(1);
    expect(settlement).toHaveLength(1);
    expect(start[0]!.executions).toBe(2 * calls);
    expect(settlement[0]!.executions).toBe(2 * calls);

    const [usage] = await database.rows<{ n: number }>(sql`select count(*)::int as n from usage_events where user_id = ${userId}`);
    const [audit] = await database.rows<{ n: number }>(
      sql`select count(*)::int as n from gateway_calls where user_id = ${userId} and outcome = 'ok' and finished_at is not null`,
    );
    expect(usage!.n).toBe(2 * calls);
    expect(audit!.n).toBe(2 * calls);
  });
});
