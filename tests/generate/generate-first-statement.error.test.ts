/**
 * The generation's one statement before any upstream call (lib/generation/start.ts): rate limit,
 * key read and budget reservation together. What it must never do: reserve for a request it
 * refuses (429, 409), leave a reservation behind when the stored Gemini key does not decrypt,
 * or reserve the research amount for a request that turned research off.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { generationWorstCaseUsd } from "../../lib/generation/generate.js";
import { generateBody } from "../../lib/generation/schemas.js";
import { DEFAULT_GEMINI_MODEL } from "../../lib/platform/env.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const KEYRING = generateKeyringEntry("firststmt");
const TOPIC = "One round trip before the first byte";
const { gemini, exa } = useFakeUpstreams();
let seed = 90_000;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`a generation's first statement ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    let limited: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      const env = { KEY_ENCRYPTION_KEYS: KEYRING, GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, BUDGET_DEFAULT_USD: "50" };
      prod = makeRuntime({ database, mode: "production", env: { ...env, RATE_LIMIT_GENERATE_PER_MINUTE: "0" } });
      limited = makeRuntime({ database, mode: "production", env: { ...env, RATE_LIMIT_GENERATE_PER_MINUTE: "1" } });
    });
    afterAll(async () => {
      await database?.destroy();
    });

    async function user(rt: TestRuntime, providers: Array<"gemini" | "exa"> = ["gemini", "exa"]) {
      const userId = `user_first_${randomBytes(4).toString("hex")}`;
      const all = sampleKeys(++seed);
      const keys = Object.fromEntries(providers.map((p) => [p, all[p]]));
      if (providers.length > 0)
        await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: keys })), 200);
      return { userId, token: rt.token(userId) };
    }

    const generate = (rt: TestRuntime, token: string, body: unknown) =>
      rt.fetch(request("POST", "/api/blog/generate", { token, body, headers: { accept: "application/json" } }));

    async function budgetRow(userId: string) {
      const [row] = await database.rows<{ reservations: unknown; spent_usd: string }>(
        sql`select reservations, spent_usd::text as spent_usd from budgets where user_id = ${userId}`,
      );
      const reservations = typeof row?.reservations === "string" ? JSON.parse(row.reservations) : row?.reservations;
      return { exists: row !== undefined, reservations: (reservations ?? []) as Array<{ id: string; usd: number | string }> };
    }

    it("a rate-limited generation reserves nothing and calls no upstream", async () => {
      const { userId, token } = await user(limited);
      await expectStatus(await generate(limited, token, { topic: TOPIC, research: false }), 200);
      const calls = gemini.requests.length + exa.requests.length;
      const response = await generate(limited, token, { topic: TOPIC, research: false });
      const problem = await expectStatus(response, 429);
      expect(problem.code).toBe("rate-limited");
      expect(response.headers.get("ratelimit")).toMatch(/remaining=0/);
      expect((await budgetRow(userId)).reservations).toEqual([]);
      expect(gemini.requests.length + exa.requests.length).toBe(calls);
    });

    it("a 2xx generation carries the RateLimit headers counted in the same statement", async () => {
      const { token } = await user(limited);
      const response = await generate(limited, token, { topic: TOPIC, research: false });
      await expectStatus(response, 200);
      expect(response.headers.get("ratelimit")).toMatch(/^limit=1, remaining=0, reset=\d+$/);
      expect(response.headers.get("ratelimit-policy")).toBe("1;w=60");
    });

    it("without a gemini key: 409 and no reservation", async () => {
      const { userId, token } = await user(prod, ["exa"]);
      const problem = await expectStatus(await generate(prod, token, { topic: TOPIC }), 409);
      expect(problem.code).toBe("missing-provider-key");
      // Not even reserved and given back: a fresh user still has no budget row.
      expect(await budgetRow(userId)).toEqual({ exists: false, reservations: [] });
    });

    it("a stored gemini key that no longer decrypts: 409 and the reservation is given back", async () => {
      const { userId, token } = await user(prod);
      // Another row's ciphertext (AAD of another user): it does not decrypt here.
      const other = await user(prod);
      await database.rows(sql`
        update api_keys set key_ciphertext = (
          select k.key_ciphertext from api_keys k join onboarding_sessions s on s.id = k.session_id
          where s.user_id = ${other.userId} and k.provider = 'gemini')
        where provider = 'gemini' and session_id = (select id from onboarding_sessions where user_id = ${userId})`);
      const problem = await expectStatus(await generate(prod, token, { topic: TOPIC }), 409);
      expect(problem.code).toBe("missing-provider-key");
      expect(problem.detail).toMatch(/could not be decrypted/);
      const row = await budgetRow(userId);
      expect(row.exists, "the reservation was made in the same statement").toBe(true);
      expect(row.reservations).toEqual([]);
    });

    it("reserves the research amount only when research will run (an exa key and research not turned off)", async () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      gemini.setMode({ holdUntil: held });
      exa.setMode({ holdUntil: held });
      const pendings: Promise<string>[] = [];
      try {
        const cases: Array<{ providers: Array<"gemini" | "exa">; research: boolean; expectResearch: boolean }> = [
          { providers: ["gemini", "exa"], research: true, expectResearch: true },
          { providers: ["gemini", "exa"], research: false, expectResearch: false },
          { providers: ["gemini"], research: true, expectResearch: false },
        ];
        for (const c of cases) {
          const { userId, token } = await user(prod, c.providers);
          const body = { topic: TOPIC, keywords: ["a", "b", "c"], research: c.research };
          const pending = generate(prod, token, body).then((r) => r.text());
          const deadline = Date.now() + 10_000;
          while ((await budgetRow(userId)).reservations.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
          const [reservation] = (await budgetRow(userId)).reservations;
          const expectedUsd = generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, generateBody.parse(body), c.expectResearch);
          expect(Number(reservation?.usd), JSON.stringify(c)).toBeCloseTo(expectedUsd, 8);
          pendings.push(pending);
        }
      } finally {
        release();
        await Promise.all(pendings);
        gemini.reset();
        exa.reset();
      }
    });
  });
}
