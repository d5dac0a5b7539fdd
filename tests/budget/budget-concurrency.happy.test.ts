/**
 * The cap holds under concurrency and across instances: twenty generations at once for one
 * user with room for five, sent through two server instances (two runtimes; on PostgreSQL two
 * connection pools) over one database: exactly five reach Gemini, fifteen get 402 before any
 * upstream call, and the spend settled afterwards stays within the cap. And the reservation
 * statement itself, raced from two pools many times over.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes, randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { DEFAULT_GEMINI_MODEL } from "../../lib/platform/env.js";
import { budgetResponse, generateBody } from "../../lib/generation/schemas.js";
import { generationWorstCaseUsd } from "../../lib/generation/generate.js";
import { budgetStatus, reservationSql, usd } from "../../lib/generation/budget.js";
import { openDatabase, type Database } from "../../db/client.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { waitFor } from "../helpers/wait.js";

const KEYRING = generateKeyringEntry("budgetrace");
const CONCURRENT = 20;
const ROOM_FOR = 5;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`budget under concurrency, two instances ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    /** The second instance's own connection to the same database (PGlite: the same one). */
    let second: Database;
    const { gemini, exa } = useFakeUpstreams();
    let a: TestRuntime;
    let b: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      second = database.url ? await openDatabase({ driver: "pg", url: database.url, maxConnections: 20, namedStatements: true }) : database;
      const env = {
        KEY_ENCRYPTION_KEYS: KEYRING,
        GEMINI_BASE_URL: gemini.url,
        EXA_BASE_URL: exa.url,
        UPSTREAM_TIMEOUT_MS: "60000",
        RATE_LIMIT_GENERATE_PER_MINUTE: "0",
      };
      a = makeRuntime({ database, mode: "production", env });
      b = makeRuntime({ database: second, mode: "production", env });
    });
    afterAll(async () => {
      a?.cleanup();
      b?.cleanup();
      if (second && second !== database) await second.close();
      await database?.destroy();
    });

    it(`${CONCURRENT} concurrent generations with room for ${ROOM_FOR}: ${ROOM_FOR} run, the rest get 402 before any upstream call, the spend stays within the cap`, async () => {
      const userId = `user_race_${randomBytes(4).toString("hex")}`;
      const keys = sampleKeys(40_001);
      await expectStatus(
        await a.fetch(request("POST", "/api/onboarding/api-keys", { token: a.token(userId), body: { gemini: keys.gemini } })),
        200,
      );
      const body = { topic: "Budgets under concurrency", wordCount: 400 };
      const estimate = generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, generateBody.parse(body), false);
      // Room for five worst cases, not six.
      const cap = Number((estimate * (ROOM_FOR + 0.5)).toFixed(8));
      await expectStatus(await b.fetch(request("PUT", "/api/usage/budget", { token: b.token(userId), body: { monthlyUsd: cap } })), 200);

      // Gemini holds every call until released, so no generation settles (and frees room) early.
      let release!: () => void;
      gemini.setMode({ holdUntil: new Promise<void>((resolve) => (release = resolve)) }, keys.gemini);
      const statuses: number[] = [];
      const bodies: any[] = [];
      const pending = Array.from({ length: CONCURRENT }, (_, i) => {
        const rt = i % 2 === 0 ? a : b;
        return rt
          .fetch(request("POST", "/api/blog/generate", { token: rt.token(userId), body, headers: { accept: "application/json" } }))
          .then(async (response) => {
            statuses.push(response.status);
            bodies.push(await response.json());
          });
      });
      const reached = () => gemini.requests.filter((r) => r.apiKey === keys.gemini).length;
      // Every request is decided: refused, or waiting at Gemini.
      await waitFor(
        () => statuses.length + reached() >= CONCURRENT,
        () => `${statuses.length} answered, ${reached()} at gemini`,
        { timeoutMs: 30_000 },
      );
      expect(reached()).toBe(ROOM_FOR);
      expect(statuses.filter((s) => s === 402)).toHaveLength(CONCURRENT - ROOM_FOR);
      const held = await budgetStatus(database, a.runtime.config, userId);
      expect(held.reservedUsd).toBeCloseTo(ROOM_FOR * estimate, 7);
      expect(held.spentUsd).toBe(0);
      for (const problem of bodies) {
        expect(problem).toMatchObject({ code: "budget-exceeded", status: 402, monthlyUsd: cap });
        expect(problem.remainingUsd).toBeLessThan(estimate);
      }

      release();
      await Promise.all(pending);
      expect(statuses.filter((s) => s === 200)).toHaveLength(ROOM_FOR);
      const after = budgetResponse.parse(
        await expectStatus(await a.fetch(request("GET", "/api/usage/budget", { token: a.token(userId) })), 200),
      );
      expect(after.reservedUsd).toBe(0);
      expect(after.spentUsd).toBeGreaterThan(0);
      expect(after.spentUsd).toBeLessThanOrEqual(cap);
      const [row] = await database.rows<{ n: number; total: string | number }>(
        sql`select count(*)::int as n, coalesce(sum(cost_usd), 0) as total from usage_events where user_id = ${userId}`,
      );
      expect(row!.n).toBe(ROOM_FOR);
      expect(after.spentUsd).toBeCloseTo(Number(row!.total), 8);
    });

    it("the reservation statement, raced from two instances for many users: never more than fits", async () => {
      const config = { budget: { defaultMonthlyUsd: ROOM_FOR, maxMonthlyUsd: null } };
      const users = Array.from({ length: 8 }, (_, i) => `user_reserve_${i}_${randomBytes(3).toString("hex")}`);
      // Half the users start without a row (the insert path), half with one (the update path).
      for (const user of users.slice(0, 4))
        await database.rows(
          sql`insert into budgets (user_id, period_start) values (${user}, (date_trunc('month', now() at time zone 'UTC'))::date)`,
        );
      const outcomes = await Promise.all(
        users.flatMap((userId) =>
          Array.from({ length: CONCURRENT }, (_, i) =>
            (i % 2 === 0 ? database : second)
              .rows(reservationSql(config, { userId, id: randomUUID(), amount: sql`${usd(1)}::numeric` }))
              .then((rows) => ({ userId, ok: rows.length > 0 })),
          ),
        ),
      );
      for (const userId of users) {
        expect(
          outcomes.filter((o) => o.userId === userId && o.ok),
          userId,
        ).toHaveLength(ROOM_FOR);
        const status = await budgetStatus(database, config, userId);
        expect(status).toMatchObject({ monthlyUsd: ROOM_FOR, reservedUsd: ROOM_FOR, remainingUsd: 0 });
      }
    });
  });
}
