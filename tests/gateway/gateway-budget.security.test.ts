/**
 * The gateway's money and keys fail closed, through the unchanged Gemini SDK over real HTTP:
 * - the monthly cap holds under 20 concurrent streamed calls (room for 5: exactly 5 reach
 *   Gemini, 15 get 402 before any upstream call, the spend stays within the cap);
 * - a stream the client aborts releases its reservation, stops the upstream request, and is
 *   charged as generation charges a call cut short (the reserved worst case, marked partial);
 * - production without a stored key answers 409 and never touches the operator's key (the
 *   fake sees no call), whatever the operator's .env and environment hold.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { GoogleGenerativeAIFetchError } from "@google/generative-ai";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { waitFor } from "../helpers/wait.js";
import {
  auditRows,
  authHeaders,
  geminiModel,
  ledger,
  serveApp,
  usageRows,
  type Served,
  newUser as newGatewayUser,
  settled,
} from "./gateway-kit.js";

const CONCURRENT = 20;
const ROOM_FOR = 5;
const prompt = {
  contents: [{ role: "user", parts: [{ text: "Budgets that hold under concurrency" }] }],
  generationConfig: { maxOutputTokens: 1_000 },
};

for (const backend of backends) {
  describe.skipIf(!backend.available)(`gateway budget and keys ${backendLabel(backend)}`, () => {
    const { gemini, exa } = useFakeUpstreams({ resetEach: true });
    let database: TestDatabase;
    let rt: TestRuntime;
    let served: Served;
    const operatorKey = sampleKeys(99_999).gemini;

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({
        database,
        mode: "production",
        env: {
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          RATE_LIMIT_GATEWAY_PER_MINUTE: "1000",
          UPSTREAM_TIMEOUT_MS: "60000",
          // The operator's own key, where a careless resolver would look: never used in production.
          GEMINI_API_KEY: operatorKey,
        },
      });
      writeFileSync(rt.envFile, `GEMINI_API_KEY=${operatorKey}\n`);
      served = await serveApp(rt);
    });
    afterAll(async () => {
      await served?.close();
      rt?.cleanup();
      await database?.destroy();
    });

    const newUser = (seed: number, withKey = true) => newGatewayUser(rt, "user_gwb", seed, withKey ? ["gemini"] : []);

    /** What one call of `prompt` reserves: read from the ledger while a probe call is held at Gemini. */
    async function worstCaseOfPrompt(): Promise<number> {
      const probe = await newUser(23_100);
      let release!: () => void;
      gemini.setMode({ holdUntil: new Promise<void>((resolve) => (release = resolve)) }, probe.keys.gemini);
      const call = geminiModel(served.url, authHeaders(probe.token)).generateContentStream(prompt);
      await waitFor(async () => (await ledger(database, probe.userId)).reservedUsd > 0, "probe reserved");
      const reserved = (await ledger(database, probe.userId)).reservedUsd;
      release();
      for await (const _ of (await call).stream);
      return reserved;
    }

    it(`${CONCURRENT} concurrent streamed calls with room for ${ROOM_FOR}: ${ROOM_FOR} reach Gemini, the rest get 402 first, the spend stays within the cap`, async () => {
      const worst = await worstCaseOfPrompt();
      expect(worst).toBeGreaterThan(0);
      const user = await newUser(23_101);
      const cap = Number((worst * (ROOM_FOR + 0.5)).toFixed(8));
      await expectStatus(await rt.fetch(request("PUT", "/api/usage/budget", { token: user.token, body: { monthlyUsd: cap } })), 200);
      gemini.reset();

      let release!: () => void;
      gemini.setMode({ holdUntil: new Promise<void>((resolve) => (release = resolve)) }, user.keys.gemini);
      const model = geminiModel(served.url, authHeaders(user.token));
      let refused = 0;
      const calls = Array.from({ length: CONCURRENT }, () =>
        model.generateContentStream(prompt).then(
          async (result) => {
            let text = "";
            for await (const chunk of result.stream) text += chunk.text();
            return text;
          },
          (error: unknown) => {
            expect(error).toBeInstanceOf(GoogleGenerativeAIFetchError);
            expect((error as GoogleGenerativeAIFetchError).status).toBe(402);
            refused += 1;
            return undefined;
          },
        ),
      );
      // Every call either waits at Gemini or was refused: only then may Gemini answer.
      await waitFor(
        () => gemini.requests.length + refused === CONCURRENT,
        () => `${gemini.requests.length} at gemini, ${refused} refused`,
      );
      expect(gemini.requests).toHaveLength(ROOM_FOR);
      expect(refused).toBe(CONCURRENT - ROOM_FOR);
      const during = await ledger(database, user.userId);
      expect(during.spentUsd + during.reservedUsd).toBeLessThanOrEqual(cap);
      release();
      const texts = await Promise.all(calls);
      expect(texts.filter((t) => t === gemini.expectedText)).toHaveLength(ROOM_FOR);

      await settled(database, user.userId);
      const after = await ledger(database, user.userId);
      expect(after.reservedUsd).toBe(0);
      expect(after.spentUsd).toBeLessThanOrEqual(cap);
      expect(after.spentUsd).toBeCloseTo(gemini.billedUsd(user.keys.gemini), 7);
      const outcomes = (await auditRows(database, user.userId)).map((row) => row.outcome);
      expect(outcomes.filter((o) => o === "budget-exceeded")).toHaveLength(CONCURRENT - ROOM_FOR);
      expect(outcomes.filter((o) => o === "ok")).toHaveLength(ROOM_FOR);
    });

    it("an aborted stream releases its reservation, closes the upstream request and is charged as a call cut short", async () => {
      const user = await newUser(23_102);
      gemini.setMode({ hangAfterChunks: 2 }, user.keys.gemini);
      const controller = new AbortController();
      const result = await geminiModel(served.url, authHeaders(user.token)).generateContentStream(prompt, { signal: controller.signal });
      result.response.catch(() => undefined); // rejects with the stream, asserted below
      await waitFor(async () => (await ledger(database, user.userId)).reservedUsd > 0, "reserved");
      const reserved = (await ledger(database, user.userId)).reservedUsd;
      let chunks = 0;
      await expect(
        (async () => {
          for await (const _ of result.stream) {
            chunks += 1;
            if (chunks === 2) controller.abort();
          }
        })(),
      ).rejects.toThrow();
      expect(chunks).toBe(2);

      await settled(database, user.userId);
      await gemini.waitForIdle(10_000);
      expect(gemini.inFlight()).toBe(0);
      const after = await ledger(database, user.userId);
      expect(after.reservedUsd).toBe(0);
      // Cut short after Gemini took it: the worst case reserved is charged, never less than Gemini billed.
      expect(after.spentUsd).toBeCloseTo(reserved, 7);
      expect(after.spentUsd).toBeGreaterThanOrEqual(gemini.billedUsd(user.keys.gemini));
      expect((await auditRows(database, user.userId)).map((row) => row.outcome)).toEqual(["cut-short"]);
      const usage = await usageRows(database, user.userId);
      expect(usage.map((u) => [u.operation, u.partial])).toEqual([["streamGenerateContent", true]]);
    });

    it("production without a stored key: 409 missing-provider-key, and the operator's key is never used (Gemini sees no call)", async () => {
      const user = await newUser(23_103, false);
      const model = geminiModel(served.url, authHeaders(user.token));
      for (const call of [() => model.generateContent("hi"), () => model.generateContentStream("hi"), () => model.countTokens("hi")]) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(GoogleGenerativeAIFetchError);
        expect((error as GoogleGenerativeAIFetchError).status).toBe(409);
      }
      expect(gemini.requests).toHaveLength(0);
      expect(gemini.billedUsd(operatorKey)).toBe(0);
      const outcomes = (await auditRows(database, user.userId)).map((row) => row.outcome);
      expect(outcomes).toEqual(["missing-provider-key", "missing-provider-key", "missing-provider-key"]);
      expect((await ledger(database, user.userId)).reservedUsd).toBe(0);
    });
  });
}
