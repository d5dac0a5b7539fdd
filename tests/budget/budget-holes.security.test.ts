/**
 * The monthly cap cannot be got around (docs/blog-generation.md "What a call costs"). Named
 * regressions of holes found by trying, each failing on the code before its fix:
 * - aborting after the first chunk: a stand-in that reports 1,000 prompt and 8,000 thinking
 *   tokens and then stalls billed far more than the partial rows recorded;
 * - an Exa search sent and aborted was charged nothing, though Exa bills it;
 * - deleting the account reset the month: at the cap, DELETE /api/me, save the key again,
 *   generate: 200.
 * (Key-check probes and typing edits have their own files in tests/keys/.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { DEFAULT_GEMINI_MODEL } from "../../lib/platform/env.js";
import { budgetResponse, generateBody } from "../../lib/generation/schemas.js";
import { generationWorstCaseUsd } from "../../lib/generation/generate.js";
import { EXA_SEARCH_PRICE_USD } from "../../lib/generation/usage.js";
import { geminiCostUsd } from "../../lib/providers/prices.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { waitFor } from "../helpers/wait.js";

const KEYRING = generateKeyringEntry("holes");
const TOPIC = "Heat pumps in old houses";
/** What the stand-in reports before it stalls: a current model thinks before it writes. */
const THOUGHTS = 8_000;
let seed = 88_000;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`the cap holds ${backendLabel(backend)}`, () => {
    // A Gemini stand-in that thinks 8,000 tokens (reported with the first chunk) before writing.
    const { gemini, exa } = useFakeUpstreams({ resetEach: true, gemini: { thoughtsTokens: THOUGHTS } });
    let database: TestDatabase;
    let rt: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({
        database,
        mode: "production",
        env: {
          KEY_ENCRYPTION_KEYS: KEYRING,
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          UPSTREAM_TIMEOUT_MS: "20000",
          RATE_LIMIT_GENERATE_PER_MINUTE: "0",
          RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
        },
      });
    });
    afterAll(async () => {
      rt.cleanup();
      await database.destroy();
    });

    async function user(providers: ("gemini" | "exa")[] = ["gemini"]) {
      const userId = `user_holes_${randomBytes(4).toString("hex")}`;
      const all = sampleKeys(++seed);
      const keys = Object.fromEntries(providers.map((p) => [p, all[p]]));
      await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: keys })), 200);
      return { userId, keys: all };
    }
    const budget = async (userId: string) =>
      budgetResponse.parse(await expectStatus(await rt.fetch(request("GET", "/api/usage/budget", { token: rt.token(userId) })), 200));
    const setCap = async (userId: string, monthlyUsd: number) =>
      expectStatus(await rt.fetch(request("PUT", "/api/usage/budget", { token: rt.token(userId), body: { monthlyUsd } })), 200);
    const generate = (userId: string, signal?: AbortSignal, body: Record<string, unknown> = { topic: TOPIC }) => {
      const req = request("POST", "/api/blog/generate", { token: rt.token(userId), body, headers: { accept: "text/event-stream" } });
      return rt.fetch(signal ? new Request(req, { signal }) : req);
    };
    async function settled(userId: string): Promise<void> {
      await waitFor(async () => (await budget(userId)).reservedUsd === 0, "the reservation settled", { timeoutMs: 10_000 });
    }

    it("aborting after the first chunk: every aborted writing call is charged its worst case, so the cap binds", async () => {
      const { userId, keys } = await user();
      gemini.setMode({ hangAfterChunks: 1 }, keys.gemini);
      const cap = 0.5;
      await setCap(userId, cap);
      const worstCase = generationWorstCaseUsd(DEFAULT_GEMINI_MODEL, generateBody.parse({ topic: TOPIC }), false);
      let billed = 0;
      let refused = 0;
      for (let i = 0; i < 10; i++) {
        const controller = new AbortController();
        const response = await generate(userId, controller.signal);
        if (response.status === 402) {
          refused++;
          await response.body?.cancel();
          continue;
        }
        expect(response.status).toBe(200);
        const reader = response.body!.getReader();
        // The first chunk (and with it the prompt's and the thinking's counts) has arrived.
        let text = "";
        while (!text.includes("event: delta")) text += new TextDecoder().decode((await reader.read()).value ?? new Uint8Array());
        controller.abort();
        await reader.cancel().catch(() => undefined);
        await gemini.waitForIdle(5_000);
        await settled(userId);
        // What Gemini bills for this call at least: the prompt and the thinking it reported.
        const request_ = gemini.requests.at(-1)!.body as {
          systemInstruction: { parts: { text: string }[] };
          contents: { parts: { text: string }[] }[];
        };
        const promptWords = [...request_.systemInstruction.parts, ...request_.contents.flatMap((c) => c.parts)]
          .map((p) => p.text)
          .join(" ")
          .split(/\s+/)
          .filter(Boolean).length;
        billed += geminiCostUsd(DEFAULT_GEMINI_MODEL, promptWords, THOUGHTS);
      }
      const { spentUsd } = await budget(userId);
      // Recorded spend covers what the stand-in would bill, and the cap bound after a few calls.
      expect(spentUsd).toBeGreaterThanOrEqual(billed);
      expect(refused).toBeGreaterThan(0);
      expect(spentUsd).toBeLessThanOrEqual(cap + worstCase);
    });

    it("an Exa search sent and cut off by the client is charged its price", async () => {
      const { userId, keys } = await user(["gemini", "exa"]);
      exa.setMode({ hang: true }, keys.exa);
      const controller = new AbortController();
      const response = await generate(userId, controller.signal, { topic: TOPIC, keywords: ["a1", "b2", "c3"] });
      expect(response.status).toBe(200);
      const reader = response.body!.getReader();
      await reader.read(); // the stream runs as it is read: the research status is out
      await waitFor(
        () => exa.inFlight() === 3,
        () => `${exa.inFlight()} searches open`,
        { timeoutMs: 5_000 },
      );
      controller.abort();
      await reader.cancel().catch(() => undefined);
      await exa.waitForIdle(5_000);
      await settled(userId);
      expect((await budget(userId)).spentUsd).toBeCloseTo(3 * EXA_SEARCH_PRICE_USD, 8);
      expect(gemini.requests).toHaveLength(0);
    });

    it("deleting the account keeps the month's spend: at the cap, DELETE /api/me, save the key again, generate → still 402", async () => {
      const cap = 0.2;
      const first = await user();
      await setCap(first.userId, cap);
      // Spend up to the cap: generations that finish, until the next one no longer fits.
      for (let i = 0; i < 20; i++) {
        const response = await generate(first.userId);
        await response.text();
        if (response.status === 402) break;
        expect(response.status).toBe(200);
        await settled(first.userId);
      }
      const before = await budget(first.userId);
      expect(before.spentUsd).toBeGreaterThan(0);
      expect((await generate(first.userId)).status).toBe(402);

      await expectStatus(await rt.fetch(request("DELETE", "/api/me", { token: rt.token(first.userId) })), 204);
      // Re-created: the same Clerk user saves the key again; the operator's default cap (none
      // here) is what applies, so set the same cap back as a returning user would.
      await expectStatus(
        await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(first.userId), body: { gemini: first.keys.gemini } })),
        200,
      );
      await setCap(first.userId, cap);
      const after = await budget(first.userId);
      expect(after.spentUsd).toBeCloseTo(before.spentUsd, 8);
      expect((await generate(first.userId)).status).toBe(402);
      // The export shows what is kept.
      const exported = await expectStatus(await rt.fetch(request("GET", "/api/me/export", { token: rt.token(first.userId) })), 200);
      expect(exported.budget.spentUsd).toBeCloseTo(before.spentUsd, 8);
      // Nothing else survived: no usage rows, no keys but the one saved again.
      const [row] = await database.rows<{ n: number | string }>(
        sql`select count(*) as n from usage_events where user_id = ${first.userId}`,
      );
      expect(Number(row!.n)).toBe(0);
    });
  });
}
