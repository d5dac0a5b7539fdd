/**
 * GET /api/usage: the caller's totals per provider and per UTC day over [from, to), from rows
 * inserted with explicit timestamps; a date-only `to` includes that whole day.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { sql } from "drizzle-orm";
import { usageResponse } from "../../lib/generation/schemas.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, type TestRuntime } from "../helpers/runtime.js";

interface Row {
  at: string;
  provider: "gemini" | "exa";
  input?: number;
  output?: number;
  cost: string;
}

const A = "user_usage_a";
const B = "user_usage_b";

const rowsA: Row[] = [
  { at: "2026-03-01T00:00:00.000Z", provider: "gemini", input: 100, output: 200, cost: "0.00053" },
  { at: "2026-03-01T23:59:59.999Z", provider: "exa", cost: "0.007" },
  // 23:30 at UTC-2 is 01:30 UTC the next day: days are UTC days.
  { at: "2026-03-01T23:30:00-02:00", provider: "gemini", input: 10, output: 20, cost: "0.000053" },
  { at: "2026-03-02T12:00:00.000Z", provider: "gemini", input: 5, output: 5, cost: "0.000014" },
  { at: "2026-03-02T12:00:00.000Z", provider: "exa", cost: "0.007" },
  { at: "2026-03-03T00:00:00.000Z", provider: "exa", cost: "0.008" },
  { at: "2026-03-05T08:00:00.000Z", provider: "gemini", input: 1, output: 1, cost: "0.0000028" },
];
// B's numbers are large and odd so any leak into A's answers shows.
const rowsB: Row[] = [
  { at: "2026-03-01T10:00:00.000Z", provider: "gemini", input: 999_999, output: 777_777, cost: "2.5" },
  { at: "2026-03-02T10:00:00.000Z", provider: "exa", cost: "0.123" },
  { at: "2026-03-03T10:00:00.000Z", provider: "gemini", input: 333_333, output: 111_111, cost: "0.9" },
];

async function insertRows(database: TestDatabase, userId: string, rows: Row[]) {
  for (const r of rows) {
    await database.rows(sql`
      insert into usage_events (user_id, provider, operation, model, input_tokens, output_tokens, cost_usd, request_id, created_at)
      values (${userId}, ${r.provider}, ${r.provider === "gemini" ? "generate" : "search"}, ${r.provider === "gemini" ? "gemini-2.5-flash" : null},
              ${r.input ?? 0}, ${r.output ?? 0}, ${r.cost}::numeric, ${"req_seed_" + userId}, ${r.at}::timestamptz)
    `);
  }
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`GET /api/usage ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    let dev: TestRuntime;

    /** `userId: null` sends no token. */
    async function get(query: string, userId: string | null = A, rt: TestRuntime = prod) {
      return rt.fetch(request("GET", `/api/usage${query}`, userId !== null ? { token: rt.token(userId) } : {}));
    }
    async function summary(query: string, userId = A) {
      const body = await expectStatus(await get(query, userId), 200);
      expect(usageResponse.parse(body)).toEqual(body);
      return body;
    }

    beforeAll(async () => {
      database = await backend.open();
      prod = makeRuntime({ database, mode: "production" });
      dev = makeRuntime({ database, mode: "development", env: { DEV_USER_ID: B } });
      await insertRows(database, A, rowsA);
      await insertRows(database, B, rowsB);
    });
    afterEach(() => {
      vi.useRealTimers();
    });
    afterAll(async () => {
      prod.cleanup();
      dev.cleanup();
      await database.destroy();
    });

    it("totals per provider and per UTC day; a date-only `to` includes that whole day", async () => {
      const body = await summary("?from=2026-03-01&to=2026-03-03");
      expect(body.userId).toBe(A);
      expect(body.from).toBe("2026-03-01T00:00:00.000Z");
      expect(body.to).toBe("2026-03-04T00:00:00.000Z");
      expect(body.totals).toEqual({
        gemini: { requests: 3, inputTokens: 115, outputTokens: 225, costUsd: 0.000597 },
        exa: { requests: 3, inputTokens: 0, outputTokens: 0, costUsd: 0.022 },
      });
      expect(body.daily).toEqual([
        { date: "2026-03-01", provider: "exa", requests: 1, inputTokens: 0, outputTokens: 0, costUsd: 0.007 },
        { date: "2026-03-01", provider: "gemini", requests: 1, inputTokens: 100, outputTokens: 200, costUsd: 0.00053 },
        { date: "2026-03-02", provider: "exa", requests: 1, inputTokens: 0, outputTokens: 0, costUsd: 0.007 },
        { date: "2026-03-02", provider: "gemini", requests: 2, inputTokens: 15, outputTokens: 25, costUsd: 0.000067 },
        { date: "2026-03-03", provider: "exa", requests: 1, inputTokens: 0, outputTokens: 0, costUsd: 0.008 },
      ]);
    });

    it("a date-only range of one day is that UTC day", async () => {
      const body = await summary("?from=2026-03-02&to=2026-03-02");
      expect(body.daily.map((d: { date: string }) => d.date)).toEqual(["2026-03-02", "2026-03-02"]);
      expect(body.totals.gemini).toEqual({ requests: 2, inputTokens: 15, outputTokens: 25, costUsd: 0.000067 });
      expect(body.totals.exa.requests).toBe(1);
    });

    it("instants: `from` is inclusive and an instant `to` exclusive, offsets honoured", async () => {
      let body = await summary("?from=2026-03-01T23:59:59.999Z&to=2026-03-02T12:00:00Z");
      // The exa row exactly at `from` and the 01:30Z gemini row; not the rows exactly at `to`.
      expect(body.totals).toEqual({
        exa: { requests: 1, inputTokens: 0, outputTokens: 0, costUsd: 0.007 },
        gemini: { requests: 1, inputTokens: 10, outputTokens: 20, costUsd: 0.000053 },
      });
      // 13:00+01:00 is 12:00Z: now the rows at 12:00Z are the first ones in.
      body = await summary(`?from=${encodeURIComponent("2026-03-02T13:00:00+01:00")}&to=${encodeURIComponent("2026-03-02T12:00:00.001Z")}`);
      expect(body.from).toBe("2026-03-02T12:00:00.000Z");
      expect(body.totals).toEqual({
        exa: { requests: 1, inputTokens: 0, outputTokens: 0, costUsd: 0.007 },
        gemini: { requests: 1, inputTokens: 5, outputTokens: 5, costUsd: 0.000014 },
      });
    });

    it("a range without usage answers empty totals", async () => {
      const body = await summary("?from=2025-01-01&to=2025-01-31");
      expect(body).toMatchObject({ totals: {}, daily: [] });
    });

    it("without from/to: the last 30 days up to now", async () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(new Date("2026-03-31T00:00:00.000Z"));
      const body = await summary("");
      expect(body.to).toBe("2026-03-31T00:00:00.000Z");
      expect(body.from).toBe("2026-03-01T00:00:00.000Z");
      expect(body.totals.gemini.requests).toBe(4);
      expect(body.totals.exa.requests).toBe(3);
      vi.setSystemTime(new Date("2026-04-01T00:00:00.000Z"));
      const later = await summary("");
      expect(later.totals.gemini.requests).toBe(3); // the 03-01T00:00Z row fell out
    });

    it("another user's usage never appears, whatever the range", async () => {
      const a = await summary("?from=2026-01-01&to=2026-12-31", A);
      const b = await summary("?from=2026-01-01&to=2026-12-31", B);
      expect(a.userId).toBe(A);
      expect(a.totals.gemini).toEqual({ requests: 4, inputTokens: 116, outputTokens: 226, costUsd: 0.0005998 });
      expect(a.totals.exa).toEqual({ requests: 3, inputTokens: 0, outputTokens: 0, costUsd: 0.022 });
      expect(b.userId).toBe(B);
      expect(b.totals).toEqual({
        gemini: { requests: 2, inputTokens: 1_333_332, outputTokens: 888_888, costUsd: 3.4 },
        exa: { requests: 1, inputTokens: 0, outputTokens: 0, costUsd: 0.123 },
      });
      const c = await summary("?from=2026-01-01&to=2026-12-31", "user_usage_nobody");
      expect(c).toMatchObject({ userId: "user_usage_nobody", totals: {}, daily: [] });
      // No parameter selects another user.
      const problem = await expectStatus(await get(`?userId=${B}`, A), 400);
      expect(problem.errors).toEqual([{ pointer: "/userId", message: "unknown field" }]);
    });

    const invalid: Array<{ query: string; pointer: string }> = [
      { query: "?from=2026-03-03&to=2026-03-01", pointer: "/from" },
      { query: "?from=2026-03-02T12:00:00Z&to=2026-03-02T12:00:00Z", pointer: "/from" },
      { query: "?from=2026-03-03", pointer: "/from" }, // to defaults to now (2026-03-01 pinned below)
      { query: "?from=2024-01-01&to=2026-03-01", pointer: "/from" }, // over 366 days
      { query: "?from=2026-13-01&to=2026-12-31", pointer: "/from" },
      { query: "?from=2026-03-01&to=yesterday", pointer: "/to" },
      { query: "?from=2026-03-01T10:00:00&to=2026-03-02", pointer: "/from" }, // an instant needs an offset
      { query: "?from=2026-03-01&from=2026-03-02", pointer: "/from" },
      { query: "?provider=gemini", pointer: "/provider" },
      // Dates the database cannot take (year 0, year 10000 after the inclusive day): 400, not 500.
      { query: "?from=9998-12-31&to=9999-12-31", pointer: "/to" },
      { query: "?from=0000-01-01&to=2026-01-01", pointer: "/from" },
      { query: "?to=0001-01-01", pointer: "/to" },
    ];
    for (const bad of invalid) {
      it(`${bad.query} → 400 pointing at ${bad.pointer}`, async () => {
        vi.useFakeTimers({ toFake: ["Date"] });
        vi.setSystemTime(new Date("2026-03-01T00:00:00.000Z"));
        const response = await get(bad.query);
        const problem = await expectStatus(response, 400);
        expect(response.headers.get("content-type")).toBe("application/problem+json");
        expect(problem.code).toBe("invalid-request");
        expect(problem.errors.map((e: { pointer: string }) => e.pointer)).toContain(bad.pointer);
      });
    }

    it("requires a valid session in production", async () => {
      let problem = await expectStatus(await get("?from=2026-03-01&to=2026-03-03", null), 401);
      expect(problem.code).toBe("unauthorized");
      problem = await expectStatus(
        await prod.fetch(request("GET", "/api/usage", { headers: { authorization: "Bearer not-a-token" } })),
        401,
      );
      expect(problem.code).toBe("unauthorized");
    });

    it("development without a token answers for DEV_USER_ID only", async () => {
      const body = await expectStatus(await get("?from=2026-03-01&to=2026-03-03", null, dev), 200);
      expect(body.userId).toBe(B);
      expect(body.totals.gemini.inputTokens).toBe(1_333_332);
    });
  });
}
