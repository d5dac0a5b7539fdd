/**
 * Monthly spending caps: GET/PUT /api/usage/budget, the operator's default and maximum, 402
 * `budget-exceeded` before any upstream call, settlement to the real cost, release on failure
 * and abort, expiry of a crashed instance's reservation, the month rollover, the worst-case
 * estimate, and the database round trips of a generation. Concurrency: budget-concurrency.happy.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes, randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { DEFAULT_GEMINI_MODEL, type RawEnv } from "../../lib/platform/env.js";
import { budgetResponse, generateBody, usageResponse } from "../../lib/generation/schemas.js";
import { problemSchema } from "../../lib/http/schemas.js";
import { generationWorstCaseUsd, MAX_OUTPUT_TOKENS, researchQueries, worstCaseInputTokens } from "../../lib/generation/generate.js";
import { reservationSql, usd } from "../../lib/generation/budget.js";
import { EXA_SEARCH_PRICE_USD } from "../../lib/generation/usage.js";
import { geminiPrices, geminiPrice } from "../../lib/providers/prices.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { databaseFingerprint } from "../helpers/battery.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { SseReader } from "../helpers/sse.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { waitFor } from "../helpers/wait.js";

const KEYRING = generateKeyringEntry("budgettest");
const TOPIC = "Spending caps that hold";
const { gemini, exa } = useFakeUpstreams({ resetEach: true });
let seed = 30_000;

describe("the worst-case estimate", () => {
  const body = generateBody.parse({ topic: TOPIC, keywords: ["a", "b", "c"], wordCount: 3000 });

  it("prices the writing call at its input bound and the output limit with the model's row, plus every search at Exa's list price", () => {
    const price = geminiPrices[DEFAULT_GEMINI_MODEL]!;
    const input = worstCaseInputTokens(body, true);
    const expected =
      (input * price.inputPerMillion + MAX_OUTPUT_TOKENS * price.outputPerMillion) / 1e6 +
      researchQueries(body).length * EXA_SEARCH_PRICE_USD;
    expect(generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, body, true)).toBeCloseTo(expected, 8);
    expect(researchQueries(body)).toHaveLength(3);
    // Without research: no searches, no sources in the prompt.
    expect(generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, body, false)).toBeLessThan(
      generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, body, true) - 3 * EXA_SEARCH_PRICE_USD,
    );
    // Far from Gemini's 200k-token price tier, which the table does not model.
    expect(input).toBeLessThan(200_000);
  });

  it("bounds the real prompt: the largest possible sources fit under the input bound", async () => {
    const { systemInstruction, writingPrompt, MAX_SOURCES } = await import("../../lib/generation/generate.js");
    const huge = "é".repeat(20_000);
    const sources = Array.from({ length: MAX_SOURCES }, () => ({
      title: huge,
      url: `https://x.example/${huge}`,
      text: huge,
      highlights: [huge],
    }));
    const prompt = systemInstruction(body, MAX_SOURCES) + writingPrompt(body, sources);
    expect(Buffer.byteLength(prompt, "utf8")).toBeLessThanOrEqual(worstCaseInputTokens(body, true));
  });

  it("every price says where it comes from and when; an unknown model is reserved at the dearest price", () => {
    for (const [model, price] of Object.entries(geminiPrices)) expect(price.source, model).toMatch(/ai\.google\.dev.*\d{4}-\d{2}/);
    const dearest = Math.max(...Object.values(geminiPrices).map((p) => p.outputPerMillion));
    expect(geminiPrice("gemini-9-unknown").outputPerMillion).toBe(dearest);
    expect(generationWorstCaseUsd("gemini-9-unknown", body, false)).toBeGreaterThan(
      generationWorstCaseUsd("gemini-3.5-flash-lite", body, false),
    );
  });
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`monthly budget ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const runtimes: TestRuntime[] = [];
    let prod: TestRuntime;

    function runtime(env: RawEnv = {}): TestRuntime {
      const rt = makeRuntime({
        database,
        mode: "production",
        env: {
          KEY_ENCRYPTION_KEYS: KEYRING,
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          UPSTREAM_TIMEOUT_MS: "20000",
          RATE_LIMIT_GENERATE_PER_MINUTE: "0",
          RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
          ...env,
        },
      });
      runtimes.push(rt);
      return rt;
    }

    async function userWithKeys(rt: TestRuntime = prod) {
      const userId = `user_budget_${randomBytes(4).toString("hex")}`;
      const keys = sampleKeys(++seed);
      await expectStatus(
        await rt.fetch(
          request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: { gemini: keys.gemini, exa: keys.exa } }),
        ),
        200,
      );
      return { userId, keys, token: rt.token(userId) };
    }
    const getBudget = async (rt: TestRuntime, userId: string) =>
      budgetResponse.parse(await expectStatus(await rt.fetch(request("GET", "/api/usage/budget", { token: rt.token(userId) })), 200));
    const putBudget = (rt: TestRuntime, userId: string, monthlyUsd: unknown) =>
      rt.fetch(request("PUT", "/api/usage/budget", { token: rt.token(userId), body: { monthlyUsd } }));
    const generate = (rt: TestRuntime, userId: string, body: Record<string, unknown> = { topic: TOPIC }, signal?: AbortSignal) => {
      const req = request("POST", "/api/blog/generate", { token: rt.token(userId), body, headers: { accept: "application/json" } });
      return rt.fetch(signal ? new Request(req, { signal }) : req);
    };
    const estimateFor = (body: Record<string, unknown>, research: boolean) =>
      generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, generateBody.parse(body), research);
    async function usageCostUsd(userId: string): Promise<number> {
      const [row] = await database.rows<{ total: string | number }>(
        sql`select coalesce(sum(cost_usd), 0) as total from usage_events where user_id = ${userId}`,
      );
      return Number(row!.total);
    }
    /** The first instant of next month on the database's clock. */
    async function nextMonth(): Promise<string> {
      const [row] = await database.rows<{ d: string }>(
        sql`select to_char(date_trunc('month', now() at time zone 'UTC') + interval '1 month', 'YYYY-MM-DD') as d`,
      );
      return `${row!.d}T00:00:00.000Z`;
    }

    beforeAll(async () => {
      database = await backend.open();
      prod = runtime();
    });
    afterAll(async () => {
      for (const rt of runtimes) rt.cleanup();
      await database.destroy();
    });

    it("without a cap: GET shows none, the month's spend and when it resets; PUT sets, changes and removes the cap", async () => {
      const { userId } = await userWithKeys();
      const initial = await getBudget(prod, userId);
      expect(initial).toEqual({
        userId,
        monthlyUsd: null,
        source: "default",
        maxMonthlyUsd: null,
        spentUsd: 0,
        reservedUsd: 0,
        remainingUsd: null,
        resetsAt: await nextMonth(),
      });
      expect(budgetResponse.parse(await expectStatus(await putBudget(prod, userId, 2.5), 200))).toMatchObject({
        monthlyUsd: 2.5,
        source: "user",
        remainingUsd: 2.5,
      });
      expect(await getBudget(prod, userId)).toMatchObject({ monthlyUsd: 2.5, source: "user" });
      expect(await expectStatus(await putBudget(prod, userId, null), 200)).toMatchObject({
        monthlyUsd: null,
        source: "user",
        remainingUsd: null,
      });
      // Spend from before the first generation counts (usage rows of this month).
      await database.rows(
        sql`insert into usage_events (user_id, provider, operation, cost_usd) values (${`${userId}_old`}, 'exa', 'search', 0.25)`,
      );
      expect(await getBudget(prod, `${userId}_old`)).toMatchObject({ spentUsd: 0.25 });
    });

    it("bad caps answer 400 and change nothing", async () => {
      const { userId } = await userWithKeys();
      await expectStatus(await putBudget(prod, userId, 3), 200);
      const before = await databaseFingerprint(database);
      for (const bad of [-1, "5", 1e9, 1e300, {}, true, [1]]) {
        const problem = await expectStatus(await putBudget(prod, userId, bad), 400);
        expect(problem.code).toBe("invalid-request");
        expect(problem.errors.map((e: { pointer: string }) => e.pointer)).toContain("/monthlyUsd");
      }
      const unknown = await expectStatus(
        await prod.fetch(request("PUT", "/api/usage/budget", { token: prod.token(userId), body: { monthlyUsd: 1, tokens: 5 } })),
        400,
      );
      expect(unknown.code).toBe("invalid-request");
      expect(await databaseFingerprint(database)).toBe(before);
      expect(await getBudget(prod, userId)).toMatchObject({ monthlyUsd: 3 });
    });

    it("the operator's default applies to users who never chose; the maximum bounds every cap and forbids none", async () => {
      const capped = runtime({ BUDGET_DEFAULT_USD: "2", BUDGET_MAX_USD: "10" });
      const { userId } = await userWithKeys(capped);
      expect(await getBudget(capped, userId)).toMatchObject({ monthlyUsd: 2, source: "default", maxMonthlyUsd: 10, remainingUsd: 2 });
      const before = await databaseFingerprint(database);
      for (const bad of [10.01, null]) {
        const problem = await expectStatus(await putBudget(capped, userId, bad), 400);
        expect(problem).toMatchObject({ code: "invalid-request", errors: [{ pointer: "/monthlyUsd" }] });
        expect(problem.detail).toContain("10");
      }
      expect(await databaseFingerprint(database)).toBe(before);
      expect(await expectStatus(await putBudget(capped, userId, 10), 200)).toMatchObject({ monthlyUsd: 10, source: "user" });
      // A cap chosen before the operator lowered the maximum is held to the new maximum.
      const lowered = runtime({ BUDGET_DEFAULT_USD: "2", BUDGET_MAX_USD: "4" });
      expect(await getBudget(lowered, userId)).toMatchObject({ monthlyUsd: 4, source: "user" });
      // A default above the maximum: the maximum applies, and the operator is warned.
      const odd = runtime({ BUDGET_DEFAULT_USD: "50", BUDGET_MAX_USD: "4" });
      expect(
        odd.runtime
          .configProblems()
          .map((p) => p.variables.join(","))
          .join("\n"),
      ).toContain("BUDGET_DEFAULT_USD");
      expect(await getBudget(odd, `${userId}_fresh`)).toMatchObject({ monthlyUsd: 4, source: "default" });
    });

    it("a generation that does not fit: 402 budget-exceeded with what is left and when the month resets, before any upstream call, nothing written", async () => {
      const { userId, keys } = await userWithKeys();
      const body = { topic: TOPIC, keywords: ["one"] };
      const estimate = estimateFor(body, true);
      await expectStatus(await putBudget(prod, userId, 0.01), 200);
      expect(estimate).toBeGreaterThan(0.01);
      const before = await databaseFingerprint(database);
      for (const accept of ["application/json", "text/event-stream"]) {
        const response = await prod.fetch(request("POST", "/api/blog/generate", { token: prod.token(userId), body, headers: { accept } }));
        const problem = await expectStatus(response, 402);
        expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        problemSchema.parse(problem);
        expect(problem).toMatchObject({
          code: "budget-exceeded",
          status: 402,
          monthlyUsd: 0.01,
          remainingUsd: 0.01,
          spentUsd: 0,
          reservedUsd: 0,
          estimateUsd: estimate,
          resetsAt: await nextMonth(),
          action: expect.stringContaining("PUT /api/usage/budget"),
        });
        expect(problem.detail).toContain(await nextMonth());
      }
      expect(gemini.requests.filter((r) => r.apiKey === keys.gemini)).toHaveLength(0);
      expect(exa.requests.filter((r) => r.apiKey === keys.exa)).toHaveLength(0);
      expect(await databaseFingerprint(database)).toBe(before);
    });

    it("a generation is charged its real cost: spend equals the usage rows, nothing stays reserved; GET /api/usage shows cap, spent and remaining", async () => {
      const { userId } = await userWithKeys();
      const body = { topic: TOPIC, keywords: ["k1"] };
      await expectStatus(await putBudget(prod, userId, 1), 200);
      const result = await expectStatus(await generate(prod, userId, body), 200);
      const budget = await getBudget(prod, userId);
      const spent = await usageCostUsd(userId);
      expect(spent).toBeGreaterThan(0);
      expect(budget.spentUsd).toBeCloseTo(spent, 8);
      expect(budget.spentUsd).toBeCloseTo(result.usage.totalCostUsd, 8);
      expect(budget.spentUsd).toBeLessThan(estimateFor(body, true));
      expect(budget).toMatchObject({ reservedUsd: 0, monthlyUsd: 1 });
      expect(budget.remainingUsd).toBeCloseTo(1 - spent, 8);
      const usage = usageResponse.parse(
        await expectStatus(await prod.fetch(request("GET", "/api/usage", { token: prod.token(userId) })), 200),
      );
      expect(usage.budget).toEqual(budget);
    });

    it("a failed generation is charged what completed and releases the rest", async () => {
      const { userId, keys } = await userWithKeys();
      await expectStatus(await putBudget(prod, userId, 1), 200);
      gemini.setMode({ fail: 500 }, keys.gemini);
      expect((await expectStatus(await generate(prod, userId, { topic: TOPIC }), 502)).code).toBe("upstream-unavailable");
      const budget = await getBudget(prod, userId);
      expect(budget.reservedUsd).toBe(0);
      // The search completed (Exa billed it); the failed writing call did not.
      expect(budget.spentUsd).toBeCloseTo(await usageCostUsd(userId), 8);
      expect(budget.spentUsd).toBeGreaterThan(0);
    });

    it("a client that leaves mid-writing releases the reservation (stream and JSON)", async () => {
      const { userId, keys } = await userWithKeys();
      await expectStatus(await putBudget(prod, userId, 1), 200);
      gemini.setMode({ hangAfterChunks: 1 }, keys.gemini);
      for (const accept of ["application/json", "text/event-stream"]) {
        const controller = new AbortController();
        const req = request("POST", "/api/blog/generate", { token: prod.token(userId), body: { topic: TOPIC }, headers: { accept } });
        const pending = prod.fetch(new Request(req, { signal: controller.signal }));
        // The stream only runs while it is read: read it up to the first text.
        const reader = accept === "text/event-stream" ? new SseReader(await pending) : undefined;
        if (reader) await reader.until((e) => e.event === "delta");
        await waitFor(
          async () => gemini.inFlight() === 1 && (await getBudget(prod, userId)).reservedUsd > 0,
          () => `gemini in flight: ${gemini.inFlight()}`,
        );
        controller.abort();
        if (reader) await reader.all();
        else expect((await pending).status).toBe(499);
        await waitFor(
          async () => (await getBudget(prod, userId)).reservedUsd === 0,
          () => "the reservation was never released",
        );
      }
      expect((await getBudget(prod, userId)).spentUsd).toBeCloseTo(await usageCostUsd(userId), 8);
    });

    it("a crashed instance's reservation stops counting when it expires", async () => {
      const { userId } = await userWithKeys();
      const body = { topic: TOPIC, research: false };
      const estimate = estimateFor(body, false);
      await expectStatus(await putBudget(prod, userId, 2 * estimate), 200);
      // Another instance reserved most of the cap, then died: it never settles.
      const crashed = await database.rows(
        reservationSql(prod.runtime.config, { userId, id: randomUUID(), amount: sql`${usd(1.5 * estimate)}::numeric` }),
      );
      expect(crashed).toHaveLength(1);
      expect((await expectStatus(await generate(prod, userId, body), 402)).code).toBe("budget-exceeded");
      expect((await getBudget(prod, userId)).reservedUsd).toBeCloseTo(1.5 * estimate, 7);
      // Its time passes (the database clock cannot be pinned: the reservation is aged instead).
      await database.rows(sql`
        update budgets set reservations = (select jsonb_agg(jsonb_set(r, '{exp}', to_jsonb(now() - interval '1 second'))) from jsonb_array_elements(reservations) r)
        where user_id = ${userId}`);
      expect(await getBudget(prod, userId)).toMatchObject({ reservedUsd: 0 });
      await expectStatus(await generate(prod, userId, body), 200);
      // Settling dropped the expired entry from the row too.
      const [row] = await database.rows<{ n: number }>(
        sql`select jsonb_array_length(reservations)::int as n from budgets where user_id = ${userId}`,
      );
      expect(row!.n).toBe(0);
    });

    it("a new month starts from nothing spent", async () => {
      const { userId } = await userWithKeys();
      await expectStatus(await putBudget(prod, userId, 1), 200);
      // Last month the whole cap was spent.
      await database.rows(
        sql`update budgets set period_start = (period_start - interval '1 month')::date, spent_usd = 1 where user_id = ${userId}`,
      );
      expect(await getBudget(prod, userId)).toMatchObject({ spentUsd: 0, remainingUsd: 1 });
      const result = await expectStatus(await generate(prod, userId, { topic: TOPIC, research: false }), 200);
      expect((await getBudget(prod, userId)).spentUsd).toBeCloseTo(result.usage.totalCostUsd, 8);
    });

    it("a reservation reads the month's usage rows only for a user without a budget row (their first metered call)", async () => {
      /** How many times the plan of reserving for `userId` scanned usage_events (EXPLAIN ANALYZE runs it). */
      async function usageScans(userId: string): Promise<number> {
        const reserve = reservationSql(prod.runtime.config, { userId, id: randomUUID(), amount: sql`0.0001` });
        const [row] = await database.rows<Record<string, unknown>>(sql`explain (analyze, format json) ${reserve}`);
        const raw = Object.values(row!)[0];
        const plan = (typeof raw === "string" ? JSON.parse(raw) : raw) as Array<{ Plan: PlanNode }>;
        type PlanNode = { "Relation Name"?: string; "Actual Loops"?: number; Plans?: PlanNode[] };
        const loops = (node: PlanNode): number =>
          (node["Relation Name"] === "usage_events" ? (node["Actual Loops"] ?? 0) : 0) +
          (node.Plans ?? []).reduce((n, p) => n + loops(p), 0);
        return loops(plan[0]!.Plan);
      }
      const { userId } = await userWithKeys();
      // The first call sums the month's usage (rows from before budgets existed count)...
      expect(await usageScans(userId)).toBeGreaterThan(0);
      // ...and creates the row; from then on the row's spend is the truth, and the rows are never read.
      await expectStatus(await generate(prod, userId), 200);
      expect(await usageCostUsd(userId)).toBeGreaterThan(0);
      expect(await usageScans(userId)).toBe(0);
    });

    it("a generation costs two statements: one for the rate limit, keys and reservation, and one settlement (usage and key health together)", async () => {
      const { userId } = await userWithKeys();
      const client = (database.db as unknown as { $client: { query: (...args: unknown[]) => Promise<unknown> } }).$client;
      const original = client.query;
      const statements: string[] = [];
      client.query = function (this: unknown, ...args: unknown[]) {
        const text = typeof args[0] === "string" ? args[0] : ((args[0] as { text?: string })?.text ?? "");
        statements.push(text.replace(/\s+/g, " ").trim().slice(0, 60));
        return original.apply(this, args);
      };
      try {
        await expectStatus(await generate(prod, userId, { topic: TOPIC, keywords: ["k"] }), 200);
        await waitFor(
          () => statements.length >= 2,
          () => statements.join(" | "),
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
        const counted = [...statements];
        expect(counted, counted.join("\n")).toHaveLength(2);
        expect(counted[0]).toMatch(/^with (rl|k) as \(/);
        expect(counted[1]).toMatch(/^with settled as/);
        // Listing keys (with their health) is still one query.
        statements.length = 0;
        const listed = await expectStatus(await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token(userId) })), 200);
        expect(statements).toHaveLength(1);
        expect(listed.keys.map((k: { status: string }) => k.status)).toEqual(["ok", "ok"]);
      } finally {
        client.query = original;
      }
    });
  });
}
