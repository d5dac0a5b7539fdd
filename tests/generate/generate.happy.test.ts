/**
 * POST /api/blog/generate end to end in-process: the real Gemini and Exa SDKs through our
 * wrappers against the local fakes (testkit/fakes), keys saved through the real endpoint and
 * read back by the real resolver, usage rows in a real database.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { EXA_CONTENTS } from "../../lib/providers/exa.js";
import { estimateTokens, EXA_SEARCH_PRICE_USD } from "../../lib/generation/usage.js";
import { MAX_OUTPUT_TOKENS, worstCaseInputTokens } from "../../lib/generation/generate.js";
import { geminiCostUsd } from "../../lib/providers/prices.js";
import { generateBody, generateResult } from "../../lib/generation/schemas.js";
import { problemSchema } from "../../lib/http/schemas.js";
import { DEFAULT_GEMINI_MODEL, type RawEnv } from "../../lib/platform/env.js";
import { FAKE_GEMINI_CHUNKS, FAKE_THOUGHTS_TOKENS, fakeTokenCount } from "../../testkit/fakes/gemini.js";
import { FAKE_EXA_SEARCH_COST } from "../../testkit/fakes/exa.js";
import type { FakeMode } from "../../testkit/fakes/index.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { readEvents, SseReader, validateGenerationEvents, type ParsedEvent } from "../helpers/sse.js";
import { startTimedProxy } from "../helpers/timed-proxy.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { waitFor } from "../helpers/wait.js";

/** One key ring for every runtime of this file, so keys saved by one runtime are readable by another. */
const KEYRING = generateKeyringEntry("blogtest");
/**
 * For the disconnect tests: longer than vitest's test timeout, so only the abort can close the
 * upstream; were it not wired, the test would time out instead of being rescued by this timer.
 */
const NO_TIMEOUT = "600000";
const TOPIC = "How deterministic fakes make streaming tests reliable";

const { gemini, exa } = useFakeUpstreams({ resetEach: true });
let seed = 1_000;
/** Fresh, distinct keys per call. */
const freshKeys = () => sampleKeys(++seed);
const freshUser = (label: string) => `user_${label}_${randomBytes(4).toString("hex")}`;

afterEach(async () => {
  // Whatever a test did, nothing may keep running upstream after it.
  await Promise.all([gemini.waitForIdle(3_000), exa.waitForIdle(3_000)]);
});

function generateRequest(options: { token?: string; body: unknown; json?: boolean; signal?: AbortSignal }): Request {
  const headers = new Headers({ "content-type": "application/json" });
  headers.set("accept", options.json ? "application/json" : "text/event-stream");
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  return new Request("http://localhost/api/blog/generate", {
    method: "POST",
    headers,
    body: JSON.stringify(options.body),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Event names joined, e.g. "status,sources,status,delta,delta,usage,done". */
const names = (events: ParsedEvent[]) => events.map((e) => e.event).join(",");
const DOCUMENTED_ORDER = /^(status,)+sources,status,(delta,)+usage,done$/;

function expectDocumentedOrder(events: ParsedEvent[]) {
  expect(names(events)).toMatch(DOCUMENTED_ORDER);
  const sourcesAt = events.findIndex((e) => e.event === "sources");
  for (const e of events.slice(0, sourcesAt)) expect(e.data.phase).toBe("research");
  expect(events[sourcesAt + 1]?.data).toMatchObject({ phase: "writing" });
}

const last = <T>(items: T[]): T => {
  if (items.length === 0) throw new Error("empty");
  return items[items.length - 1]!;
};

for (const backend of backends) {
  describe.skipIf(!backend.available)(`blog generation ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const runtimes: TestRuntime[] = [];
    const usedKeys: string[] = [];

    /** A runtime whose upstreams are the fakes; `env` overrides. */
    function runtime(mode: "development" | "production", env: RawEnv = {}): TestRuntime {
      const rt = makeRuntime({
        database,
        mode,
        env: {
          KEY_ENCRYPTION_KEYS: KEYRING,
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          UPSTREAM_TIMEOUT_MS: "5000",
          RATE_LIMIT_GENERATE_PER_MINUTE: "0",
          DEV_USER_ID: freshUser("dev"),
          ...env,
        },
      });
      runtimes.push(rt);
      return rt;
    }

    let prod: TestRuntime;

    async function saveKeys(rt: TestRuntime, userId: string, keys: Record<string, string>) {
      usedKeys.push(...Object.values(keys));
      await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: keys })), 200);
    }

    /** A production user with fresh keys (only the providers named). */
    async function userWith(providers: Array<"gemini" | "exa"> = ["gemini", "exa"], rt: TestRuntime = prod) {
      const userId = freshUser("gen");
      const all = freshKeys();
      const keys: Record<string, string> = {};
      for (const p of providers) keys[p] = all[p];
      if (providers.length > 0) await saveKeys(rt, userId, keys);
      return { userId, token: rt.token(userId), keys: all };
    }

    async function usageRows(userId: string) {
      return database.rows<{
        provider: string;
        operation: string;
        input_tokens: number;
        output_tokens: number;
        cost_usd: string;
        request_id: string;
        partial: boolean;
        tokens_estimated: boolean;
      }>(
        sql`select provider, operation, input_tokens, output_tokens, cost_usd::text as cost_usd, request_id, partial, tokens_estimated
            from usage_events where user_id = ${userId} order by provider, id`,
      );
    }

    /** Usage is written as the generator finishes, which may be just after the client left. */
    async function eventuallyUsageRows(userId: string, expected: number) {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const rows = await usageRows(userId);
        if (rows.length >= expected || Date.now() > deadline) return rows;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    beforeAll(async () => {
      database = await backend.open();
      prod = runtime("production");
    });
    afterAll(async () => {
      // Keys never reach a log line, whatever happened above.
      const logs = runtimes.flatMap((rt) => rt.logs).join("\n");
      for (const key of usedKeys) expect(logs).not.toContain(key);
      for (const rt of runtimes) rt.cleanup();
      await database.destroy();
    });

    it("streams the documented events in order, each valid against its schema, and bills the caller's keys", async () => {
      const user = await userWith();
      const response = await prod.fetch(
        generateRequest({ token: user.token, body: { topic: TOPIC, keywords: ["testing", "streams", "fakes"] } }),
      );
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      expect(response.headers.get("x-request-id")).toBeTruthy();
      const { events, raw } = await readEvents(response);

      expectDocumentedOrder(events);
      validateGenerationEvents(events);
      expect(events[0]?.data).toEqual({ phase: "research" });
      expect(events.find((e) => e.event === "status" && e.data.research)?.data).toMatchObject({ phase: "research", research: "used" });

      const done = last(events).data;
      const deltas = events.filter((e) => e.event === "delta").map((e) => e.data.text as string);
      expect(deltas.length).toBeGreaterThanOrEqual(3);
      expect(deltas.join("")).toBe(gemini.expectedText);
      expect(done.markdown).toBe(gemini.expectedText);
      expect(done.title).toBe("Deterministic Test Article");
      expect(done.keySource).toBe("database");
      // Cited: numbered sources, de-duplicated across the three searches (the fake returns the same URLs).
      const sources = events.find((e) => e.event === "sources")!.data;
      expect(sources.length).toBeGreaterThanOrEqual(2);
      expect(new Set(sources.map((s: { url: string }) => s.url)).size).toBe(sources.length);
      expect(done.sources).toEqual(sources);
      expect(done.markdown).toMatch(/\[1\]/);

      // Every upstream call carried this user's keys; three searches, one writing call.
      expect(exa.requests).toHaveLength(3);
      expect(exa.requests.every((r) => r.apiKey === user.keys.exa)).toBe(true);
      expect(gemini.requests).toHaveLength(1);
      expect(gemini.requests[0]?.apiKey).toBe(user.keys.gemini);
      expect(gemini.requests[0]?.path).toBe(`/v1beta/models/${DEFAULT_GEMINI_MODEL}:streamGenerateContent`);
      // The numbered sources reached Gemini's prompt, and the system instruction asks for [n] citations.
      const sent = JSON.stringify(gemini.requests[0]?.body);
      expect(sent).toContain(`[1] ${sources[0].title}`);
      expect(sent).toContain("[n]");

      // usage event = done.usage = what the fakes reported, priced with the table.
      const usage = events.find((e) => e.event === "usage")!.data;
      expect(done.usage).toEqual(usage);
      expect(usage.gemini.model).toBe(DEFAULT_GEMINI_MODEL);
      // Thinking tokens are output tokens: Google bills them at the output rate.
      expect(usage.gemini.outputTokens).toBe(fakeTokenCount(gemini.expectedText) + FAKE_THOUGHTS_TOKENS);
      expect(usage.gemini.inputTokens).toBeGreaterThan(0);
      expect(usage.gemini.costUsd).toBeCloseTo(geminiCostUsd(DEFAULT_GEMINI_MODEL, usage.gemini.inputTokens, usage.gemini.outputTokens), 8);
      // The default model is priced from the table (today's Flash: $1.50 / $9.00 per million), never 0.
      expect(usage.gemini.costUsd).toBeCloseTo((usage.gemini.inputTokens * 1.5 + usage.gemini.outputTokens * 9) / 1e6, 8);
      expect(usage.gemini.costUsd).toBeGreaterThan(0);
      expect(usage.exa).toEqual({ requests: 3, costUsd: 3 * FAKE_EXA_SEARCH_COST });
      expect(usage.totalCostUsd).toBeCloseTo(usage.gemini.costUsd + usage.exa.costUsd, 8);

      // One usage row per upstream call, under this request's id.
      const rows = await eventuallyUsageRows(user.userId, 4);
      expect(rows.map((r) => `${r.provider}:${r.operation}`)).toEqual(["exa:search", "exa:search", "exa:search", "gemini:generate"]);
      expect(new Set(rows.map((r) => r.request_id))).toEqual(new Set([response.headers.get("x-request-id")]));
      const geminiRow = rows[3]!;
      expect([geminiRow.input_tokens, geminiRow.output_tokens]).toEqual([usage.gemini.inputTokens, usage.gemini.outputTokens]);
      // A finished call: complete, and every count reported by the provider.
      expect(rows.every((r) => !r.partial && !r.tokens_estimated)).toBe(true);

      for (const key of Object.values(user.keys)) expect(raw).not.toContain(key);
    });

    it("JSON mode returns the same content as the stream's done event", async () => {
      const user = await userWith();
      const body = { topic: TOPIC, keywords: ["testing"], tone: "playful", wordCount: 400 };
      const { events } = await readEvents(await prod.fetch(generateRequest({ token: user.token, body })));
      const done = last(events);
      expect(done.event).toBe("done");

      const response = await prod.fetch(generateRequest({ token: user.token, body, json: true }));
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
      const result = await expectStatus(response, 200);
      expect(generateResult.parse(result)).toEqual(result);
      expect(result).toEqual(done.data);
      // Tone and length reached the system instruction.
      const instruction = JSON.stringify((gemini.requests[1]?.body as { systemInstruction?: unknown } | undefined)?.systemInstruction);
      expect(instruction).toContain("playful");
      expect(instruction).toContain("400 words");
    });

    it("runs the research searches concurrently, with small explicit contents and never full text", async () => {
      const proxy = await startTimedProxy(exa.url);
      try {
        const rt = runtime("production", { EXA_BASE_URL: proxy.url });
        const user = await userWith(["gemini", "exa"], rt);
        exa.setMode({ latencyMs: 200 });
        const { events } = await readEvents(
          await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC, keywords: ["alpha", "beta", "gamma"] } })),
        );
        expect(last(events).event).toBe("done");

        const searches = proxy.exchanges.filter((x) => x.path === "/search");
        expect(searches).toHaveLength(3);
        // Overlap: every search started before any of them finished.
        const lastStart = Math.max(...searches.map((x) => x.startedAt));
        const firstEnd = Math.min(...searches.map((x) => x.endedAt ?? Infinity));
        expect(lastStart).toBeLessThan(firstEnd);

        const queries = exa.requests.map((r) => (r.body as { query: string }).query);
        expect(new Set(queries).size).toBe(3);
        for (const r of exa.requests) {
          const body = r.body as { contents?: Record<string, unknown>; numResults?: number };
          expect(body.contents).toEqual(EXA_CONTENTS);
          expect(body.contents).not.toHaveProperty("text");
          expect(JSON.stringify(body)).not.toMatch(/"text"\s*:\s*true/);
          expect(body.numResults).toBeGreaterThanOrEqual(1);
          expect(body.numResults).toBeLessThanOrEqual(10);
        }
      } finally {
        await proxy.close();
      }
    });

    it("development mode uses the .env keys (not the database's), and says so in keySource", async () => {
      const dev = runtime("development");
      const envKeys = freshKeys();
      usedKeys.push(envKeys.gemini, envKeys.exa);
      writeFileSync(dev.envFile, `# dev keys\nGEMINI_API_KEY=${envKeys.gemini}\nEXA_API_KEY=${envKeys.exa}\n`);
      // The dev user also has other keys in the database: development must not use them.
      const devUserId = dev.runtime.config.devUserId;
      await saveKeys(prod, devUserId, { gemini: freshKeys().gemini, exa: freshKeys().exa });

      const { events } = await readEvents(await dev.fetch(generateRequest({ body: { topic: TOPIC } })));
      expectDocumentedOrder(events);
      expect(last(events).data.keySource).toBe("env");
      expect(gemini.requests.map((r) => r.apiKey)).toEqual([envKeys.gemini]);
      expect(exa.requests.length).toBeGreaterThan(0);
      expect(exa.requests.every((r) => r.apiKey === envKeys.exa)).toBe(true);
      expect(dev.logs.some((l) => l.includes("[DEV MODE] Using .env file"))).toBe(true);

      const json = await expectStatus(await dev.fetch(generateRequest({ body: { topic: TOPIC }, json: true })), 200);
      expect(json.keySource).toBe("env");
    });

    it("production never uses the .env file or the process environment's keys", async () => {
      const operator = freshKeys();
      usedKeys.push(operator.gemini, operator.exa);
      const rt = runtime("production", { GEMINI_API_KEY: operator.gemini, EXA_API_KEY: operator.exa });
      writeFileSync(rt.envFile, `GEMINI_API_KEY=${operator.gemini}\nEXA_API_KEY=${operator.exa}\n`);
      const userId = freshUser("nokeys");
      for (const json of [false, true]) {
        const response = await rt.fetch(generateRequest({ token: rt.token(userId), body: { topic: TOPIC }, json }));
        const problem = await expectStatus(response, 409);
        expect(response.headers.get("content-type")).toBe("application/problem+json");
        expect(problem).toMatchObject({ code: "missing-provider-key", provider: "gemini", action: "POST /api/onboarding/api-keys" });
        expect(JSON.stringify(problem)).not.toContain(operator.gemini);
      }
      expect(gemini.requests).toHaveLength(0);
      expect(exa.requests).toHaveLength(0);
    });

    it("a user with an Exa key but no Gemini key gets 409 before any upstream call", async () => {
      const user = await userWith(["exa"]);
      const problem = await expectStatus(await prod.fetch(generateRequest({ token: user.token, body: { topic: TOPIC } })), 409);
      expect(problem).toMatchObject({ code: "missing-provider-key", provider: "gemini", status: 409 });
      expect(problemSchema.parse(problem)).toBeTruthy();
      expect(gemini.requests).toHaveLength(0);
      expect(exa.requests).toHaveLength(0);
      expect(await usageRows(user.userId)).toEqual([]);
    });

    it("without an Exa key the post is written without sources and a status event says research was skipped", async () => {
      const user = await userWith(["gemini"]);
      const { events } = await readEvents(await prod.fetch(generateRequest({ token: user.token, body: { topic: TOPIC } })));
      expectDocumentedOrder(events);
      validateGenerationEvents(events);
      expect(events[0]?.data).toMatchObject({ phase: "research", research: "skipped" });
      expect(events[0]?.data.message).toMatch(/no exa key/);
      expect(events.find((e) => e.event === "sources")?.data).toEqual([]);
      const done = last(events).data;
      expect(done.sources).toEqual([]);
      expect(done.markdown).toBe(gemini.expectedText);
      expect(done.usage.exa).toEqual({ requests: 0, costUsd: 0 });
      expect(exa.requests).toHaveLength(0);
      expect(JSON.stringify(gemini.requests[0]?.body)).toContain("No research sources are available");
    });

    for (const [label, mode] of [
      ["down (500)", { fail: 500 }],
      ["rejecting the key (401)", { fail: 401 }],
    ] as Array<[string, FakeMode]>) {
      it(`with Exa ${label} the post is still written, without sources, and a status event says research failed`, async () => {
        const user = await userWith();
        exa.setMode(mode, user.keys.exa);
        const { events } = await readEvents(
          await prod.fetch(generateRequest({ token: user.token, body: { topic: TOPIC, keywords: ["a1", "b2", "c3"] } })),
        );
        expectDocumentedOrder(events);
        validateGenerationEvents(events);
        const failed = events.find((e) => e.event === "status" && e.data.research);
        expect(failed?.data).toMatchObject({ phase: "research", research: "failed" });
        expect(failed?.data.message).toMatch(/exa research failed/);
        const done = last(events).data;
        expect(done.sources).toEqual([]);
        expect(done.markdown).toBe(gemini.expectedText);
        // Failed searches are not billed.
        expect(done.usage.exa).toEqual({ requests: 0, costUsd: 0 });
        expect(exa.requests).toHaveLength(3);
        expect(gemini.requests).toHaveLength(1);
        const rows = await eventuallyUsageRows(user.userId, 1);
        expect(rows.map((r) => r.provider)).toEqual(["gemini"]);
      });
    }

    const geminiFailures: Array<{ label: string; mode: FakeMode; code: string; status: number; retryAfter?: string }> = [
      { label: "401", mode: { fail: 401 }, code: "provider-rejected-key", status: 422 },
      { label: "403 (whose message quotes the key)", mode: { fail: 403 }, code: "provider-rejected-key", status: 422 },
      { label: "400 API_KEY_INVALID", mode: { fail: "invalid-key" }, code: "provider-rejected-key", status: 422 },
      { label: "429", mode: { fail: 429, retryAfterSeconds: 7 }, code: "rate-limited", status: 429, retryAfter: "7" },
      { label: "500", mode: { fail: 500 }, code: "upstream-unavailable", status: 502 },
      { label: "a hang", mode: { hang: true }, code: "upstream-timeout", status: 504 },
      { label: "a stall mid-stream", mode: { hangAfterChunks: 2 }, code: "upstream-timeout", status: 504 },
    ];
    for (const failure of geminiFailures) {
      it(`Gemini ${failure.label} → ${failure.code}: an SSE error event, and a ${failure.status} problem in JSON mode`, async () => {
        const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: "300" });
        const user = await userWith(["gemini", "exa"], rt);
        gemini.setMode(failure.mode, user.keys.gemini);

        const { events, raw } = await readEvents(await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC } })));
        validateGenerationEvents(events);
        const error = last(events);
        expect(error.event, names(events)).toBe("error");
        expect(events.filter((e) => e.event === "error")).toHaveLength(1);
        expect(events.some((e) => e.event === "done" || e.event === "usage")).toBe(false);
        expect(error.data.problem).toMatchObject({ code: failure.code, status: failure.status, provider: "gemini" });
        if (failure.mode.hangAfterChunks) expect(events.filter((e) => e.event === "delta")).toHaveLength(2);
        for (const key of Object.values(user.keys)) expect(raw).not.toContain(key);

        const response = await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC }, json: true }));
        const problem = await expectStatus(response, failure.status);
        expect(response.headers.get("content-type")).toBe("application/problem+json");
        expect(problem).toMatchObject({ code: failure.code, status: failure.status, provider: "gemini" });
        if (failure.retryAfter) expect(response.headers.get("retry-after")).toBe(failure.retryAfter);
        for (const key of Object.values(user.keys)) expect(JSON.stringify(problem)).not.toContain(key);

        // Timed-out requests were closed, not left hanging.
        await gemini.waitForIdle(2_000);
        expect(gemini.inFlight()).toBe(0);
        // The searches that completed are billed (one per request); a writing call Gemini
        // refused with an HTTP error is not; one sent and never finished (a hang, a stall) is,
        // at its reserved worst case (partial): Gemini's bill for it is unknown.
        const unfinished = failure.mode.hangAfterChunks !== undefined || failure.mode.hang === true;
        const rows = await eventuallyUsageRows(user.userId, unfinished ? 4 : 2);
        expect(rows.map((r) => `${r.provider}${r.partial ? " (partial)" : ""}`)).toEqual(
          unfinished ? ["exa", "exa", "gemini (partial)", "gemini (partial)"] : ["exa", "exa"],
        );
        const worstCase = geminiCostUsd(
          DEFAULT_GEMINI_MODEL,
          worstCaseInputTokens(generateBody.parse({ topic: TOPIC }), true),
          MAX_OUTPUT_TOKENS,
        );
        for (const row of rows.filter((r) => r.partial)) expect(Number(row.cost_usd)).toBeCloseTo(worstCase, 8);
      });
    }

    it("a client that cancels the stream mid-writing leaves no upstream request running; the cut-short writing call is billed as partial", async () => {
      const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: NO_TIMEOUT });
      const user = await userWith(["gemini", "exa"], rt);
      gemini.setMode({ hangAfterChunks: 2 }, user.keys.gemini); // the stream stalls after two chunks, open
      const reader = new SseReader(await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC, keywords: ["k1"] } })));
      const seen = await reader.until((e) => e.event === "delta");
      expect(names(seen)).toMatch(/^(status,)+sources,status,delta$/);
      await reader.until((e) => e.event === "delta");
      expect(gemini.inFlight()).toBe(1);

      await reader.cancel();
      await gemini.waitForIdle(2_000);
      expect(gemini.inFlight()).toBe(0);
      expect(exa.inFlight()).toBe(0);
      const rows = await eventuallyUsageRows(user.userId, 3);
      expect(rows.map((r) => `${r.provider}${r.partial ? " (partial)" : ""}`)).toEqual(["exa", "exa", "gemini (partial)"]);
      expect(rt.logs.some((l) => l.includes("client went away"))).toBe(true);
    });

    it("aborting the request's signal mid-writing closes the upstream stream too", async () => {
      const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: NO_TIMEOUT });
      const user = await userWith(["gemini", "exa"], rt);
      gemini.setMode({ hangAfterChunks: 2 }, user.keys.gemini);
      const controller = new AbortController();
      const reader = new SseReader(
        await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC }, signal: controller.signal })),
      );
      await reader.until((e) => e.event === "delta");
      expect(gemini.inFlight()).toBe(1);

      controller.abort();
      // The stream ends without an error event (nobody is listening), and the upstream is closed.
      const rest = await reader.all();
      expect(rest.some((e) => e.event === "error" || e.event === "done")).toBe(false);
      await gemini.waitForIdle(2_000);
      expect(gemini.inFlight()).toBe(0);
      const rows = await eventuallyUsageRows(user.userId, 2);
      expect(rows.map((r) => `${r.provider}${r.partial ? " (partial)" : ""}`)).toEqual(["exa", "gemini (partial)"]);
    });

    it("aborting during research closes the searches and never starts writing", async () => {
      const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: NO_TIMEOUT });
      const user = await userWith(["gemini", "exa"], rt);
      exa.setMode({ hang: true }, user.keys.exa);
      const controller = new AbortController();
      const reader = new SseReader(
        await rt.fetch(
          generateRequest({ token: user.token, body: { topic: TOPIC, keywords: ["x1", "y2", "z3"] }, signal: controller.signal }),
        ),
      );
      await reader.until((e) => e.event === "status");
      // All three searches are open upstream.
      await waitFor(
        () => exa.inFlight() === 3,
        () => `${exa.inFlight()} searches open`,
        { timeoutMs: 5_000 },
      );

      controller.abort();
      await reader.all();
      await exa.waitForIdle(2_000);
      expect(exa.inFlight()).toBe(0);
      expect(gemini.requests).toHaveLength(0);
      // The stream closed after the generator finished (its usage write included). The three
      // searches were sent and cut off: Exa may have billed them, so each is charged its price.
      const rows = await eventuallyUsageRows(user.userId, 3);
      expect(rows.map((r) => `${r.provider}${r.partial ? " (partial)" : ""}`)).toEqual(["exa (partial)", "exa (partial)", "exa (partial)"]);
      for (const row of rows) expect(Number(row.cost_usd)).toBeCloseTo(EXA_SEARCH_PRICE_USD, 8);
    });

    it("JSON mode: a client that aborts mid-writing closes the upstream stream; answered 499, not logged as a server error", async () => {
      const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: NO_TIMEOUT });
      const user = await userWith(["gemini", "exa"], rt);
      gemini.setMode({ hangAfterChunks: 2 }, user.keys.gemini);
      const controller = new AbortController();
      const pending = rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC }, json: true, signal: controller.signal }));
      await waitFor(
        () => gemini.inFlight() === 1,
        () => `${gemini.inFlight()} gemini requests open`,
        { timeoutMs: 5_000 },
      );
      // JSON mode shows the client no chunk: give the two chunks time to reach the server, so the
      // stream was accepted (and is billed) before the client leaves.
      await new Promise((resolve) => setTimeout(resolve, 300));

      controller.abort();
      const response = await pending;
      expect(response.status).toBe(499);
      await gemini.waitForIdle(2_000);
      expect(gemini.inFlight()).toBe(0);
      const rows = await eventuallyUsageRows(user.userId, 2);
      expect(rows.map((r) => `${r.provider}${r.partial ? " (partial)" : ""}`)).toEqual(["exa", "gemini (partial)"]);
      expect(rt.logs.some((l) => /"level":"error"/.test(l))).toBe(false);
      expect(rt.logs.some((l) => l.includes("client went away"))).toBe(true);
    });

    it("a stream cut short records the tokens so far (the prompt as Gemini reported it, the output estimated, thinking counted), charged the worst case, marked partial, shown in GET /api/usage", async () => {
      const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: NO_TIMEOUT });
      const user = await userWith(["gemini"], rt);
      gemini.setMode({ hangAfterChunks: 2 }, user.keys.gemini);
      const controller = new AbortController();
      const reader = new SseReader(
        await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC }, signal: controller.signal })),
      );
      await reader.until((e) => e.event === "delta");
      await reader.until((e) => e.event === "delta");
      controller.abort();
      await reader.all();
      await gemini.waitForIdle(2_000);

      const [row, ...others] = await eventuallyUsageRows(user.userId, 1);
      expect(others).toEqual([]);
      // The fake reports the prompt's count (its word count) with every chunk and the output's
      // only with the last: the input is Gemini's number, the output our estimate of two chunks.
      const sent = gemini.requests[0]!.body as {
        systemInstruction: { parts: { text: string }[] };
        contents: { parts: { text: string }[] }[];
      };
      const promptWords = fakeTokenCount(
        [...sent.systemInstruction.parts, ...sent.contents.flatMap((c) => c.parts)].map((p) => p.text).join(" "),
      );
      expect(row).toMatchObject({ provider: "gemini", operation: "generate", partial: true, tokens_estimated: true });
      expect(row!.input_tokens).toBe(promptWords);
      // The output: our estimate of two chunks plus the thinking tokens Gemini reported up front.
      expect(row!.output_tokens).toBe(estimateTokens(FAKE_GEMINI_CHUNKS.slice(0, 2).join("")) + FAKE_THOUGHTS_TOKENS);
      // Charged the call's reserved worst case, never the visible text alone.
      const worstCase = geminiCostUsd(
        DEFAULT_GEMINI_MODEL,
        worstCaseInputTokens(generateBody.parse({ topic: TOPIC }), false),
        MAX_OUTPUT_TOKENS,
      );
      expect(Number(row!.cost_usd)).toBeCloseTo(worstCase, 8);
      expect(Number(row!.cost_usd)).toBeGreaterThan(geminiCostUsd(DEFAULT_GEMINI_MODEL, row!.input_tokens, row!.output_tokens));
      expect(rt.logs.some((l) => l.includes("usage recorded as partial") && l.includes('"tokensEstimated":true'))).toBe(true);

      const summary = await expectStatus(await rt.fetch(request("GET", "/api/usage", { token: user.token })), 200);
      expect(summary.totals.gemini).toMatchObject({
        requests: 1,
        partialRequests: 1,
        inputTokens: row!.input_tokens,
        outputTokens: row!.output_tokens,
      });
    });

    it("a client already gone when streaming starts causes no upstream call", async () => {
      const rt = runtime("production", { UPSTREAM_TIMEOUT_MS: NO_TIMEOUT });
      const user = await userWith(["gemini", "exa"], rt);
      const controller = new AbortController();
      controller.abort();
      const response = await rt.fetch(generateRequest({ token: user.token, body: { topic: TOPIC }, signal: controller.signal }));
      const { events } = await readEvents(response);
      expect(events.some((e) => e.event === "done" || e.event === "error")).toBe(false);
      expect(exa.requests).toHaveLength(0);
      expect(gemini.requests).toHaveLength(0);
      expect(await usageRows(user.userId)).toEqual([]);
    });

    const badBodies: Array<{ label: string; body: unknown; pointer: string }> = [
      { label: "topic too short", body: { topic: "ab" }, pointer: "/topic" },
      { label: "topic missing", body: { keywords: ["a"] }, pointer: "/topic" },
      { label: "too many keywords", body: { topic: TOPIC, keywords: Array.from({ length: 11 }, (_, i) => `k${i}`) }, pointer: "/keywords" },
      { label: "wordCount too small", body: { topic: TOPIC, wordCount: 100 }, pointer: "/wordCount" },
      { label: "wordCount too large", body: { topic: TOPIC, wordCount: 5000 }, pointer: "/wordCount" },
      { label: "an unknown field", body: { topic: TOPIC, model: "gemini-2.5-pro" }, pointer: "/model" },
    ];
    for (const bad of badBodies) {
      it(`a body with ${bad.label} → 400 pointing at ${bad.pointer}, and no upstream call`, async () => {
        const user = await userWith();
        for (const json of [false, true]) {
          const problem = await expectStatus(await prod.fetch(generateRequest({ token: user.token, body: bad.body, json })), 400);
          expect(problem.code).toBe("invalid-request");
          expect(problem.errors.map((e: { pointer: string }) => e.pointer)).toContain(bad.pointer);
        }
        expect(gemini.requests).toHaveLength(0);
        expect(exa.requests).toHaveLength(0);
      });
    }

    it("requires a session token in production", async () => {
      const problem = await expectStatus(await prod.fetch(generateRequest({ body: { topic: TOPIC } })), 401);
      expect(problem.code).toBe("unauthorized");
      expect(gemini.requests).toHaveLength(0);
    });

    it("limits generations per user per minute: the third of two allowed answers 429 with Retry-After and RateLimit headers", async () => {
      const rt = runtime("production", { RATE_LIMIT_GENERATE_PER_MINUTE: "2" });
      const user = await userWith(["gemini"], rt);
      const other = await userWith(["gemini"], rt);
      await awayFromMinuteBoundary(database);
      const body = { topic: TOPIC, research: false };
      await expectStatus(await rt.fetch(generateRequest({ token: user.token, body, json: true })), 200);
      await expectStatus(await rt.fetch(generateRequest({ token: user.token, body, json: true })), 200);
      const response = await rt.fetch(generateRequest({ token: user.token, body, json: true }));
      const problem = await expectStatus(response, 429);
      expect(problem.code).toBe("rate-limited");
      const retryAfter = Number(response.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(response.headers.get("ratelimit")).toBe(`limit=2, remaining=0, reset=${retryAfter}`);
      expect(response.headers.get("ratelimit-policy")).toBe("2;w=60");
      // The refused call reached no upstream; another user is not affected.
      expect(gemini.requests).toHaveLength(2);
      await expectStatus(await rt.fetch(generateRequest({ token: other.token, body, json: true })), 200);
    });
  });
}

/** The limiter uses fixed one-minute windows on the database clock: stay clear of a window edge. */
async function awayFromMinuteBoundary(database: TestDatabase) {
  const [row] = await database.rows<{ s: string | number }>(sql`select extract(second from now()) as s`);
  const seconds = Number(row?.s ?? 0);
  if (seconds > 50) await new Promise((resolve) => setTimeout(resolve, (61 - seconds) * 1000));
}
