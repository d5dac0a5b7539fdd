import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/http/errors.js";
import { isAbortError } from "../../lib/providers/abort.js";
import { createGemini, type GeminiConfig, type GeminiTextStream } from "../../lib/providers/gemini.js";
import { checkGeminiKey } from "../../lib/providers/gemini-check.js";
import { FAKE_GEMINI_CHUNKS, FAKE_THOUGHTS_TOKENS, fakeTokenCount, startFakeGemini, type FakeMode } from "../../testkit/fakes/gemini.js";
import { keyRejectionReasons } from "../../lib/providers/rejections.js";
import { useFakeGemini } from "../helpers/upstreams.js";

const KEY_A = "AQ.Ab8R_tester_a_000000000000000000000000000000000001";
const KEY_B = "AQ.Ab8R_tester_b_000000000000000000000000000000000002";
const MODEL = "gemini-3.5-flash";
/** A standard key: Google rejects these since its cutoff, and the fake does too. */
const STANDARD_KEY = "AIzaSyA_standard_0000000000000000000001";
const SYSTEM = "You write blog posts.";
const PROMPT = "Write about deterministic testing of streaming APIs.";

const fake = useFakeGemini({ resetEach: true });

function client(overrides: Partial<GeminiConfig> = {}) {
  return createGemini({ apiKey: KEY_A, model: MODEL, baseUrl: fake.url, timeoutMs: 2_000, ...overrides });
}

async function collect(stream: GeminiTextStream): Promise<string[]> {
  const deltas: string[] = [];
  for await (const delta of stream) deltas.push(delta);
  return deltas;
}

/** The thrown value, asserted to be an AppError. */
async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  if (!(error instanceof AppError)) throw new Error(`expected an AppError, got ${String(error)}`);
  return error;
}

/** Everything about an error that could reach a response or a log line. */
function exposed(error: AppError): string {
  const cause = error.cause instanceof Error ? error.cause.message : String(error.cause ?? "");
  return JSON.stringify({
    message: error.message,
    detail: error.detail,
    action: error.action,
    extra: error.extra,
    headers: error.headers,
    cause,
    stack: error.stack,
  });
}

const promptTokens = fakeTokenCount(`${SYSTEM} ${PROMPT}`);

describe("gemini streamText", () => {
  it("streams several deltas and reports the final usage", async () => {
    const stream = client().streamText({ systemInstruction: SYSTEM, prompt: PROMPT });
    const deltas = await collect(stream);

    expect(deltas.length).toBeGreaterThanOrEqual(3);
    expect(deltas.join("")).toBe(fake.expectedText);
    expect(deltas.join("")).toContain("[1]");
    expect(stream.final).toEqual({
      text: fake.expectedText,
      usage: {
        promptTokenCount: promptTokens,
        candidatesTokenCount: fakeTokenCount(fake.expectedText),
        // Gemini 3.x thinks by default and reports it (billed as output).
        thoughtsTokenCount: FAKE_THOUGHTS_TOKENS,
        totalTokenCount: promptTokens + fakeTokenCount(fake.expectedText) + FAKE_THOUGHTS_TOKENS,
      },
      finishReason: "STOP",
      blockReason: undefined,
      model: MODEL,
    });
  });

  it("sends exactly what the SDK sends: SSE path, key header, system instruction and prompt", async () => {
    await collect(client().streamText({ systemInstruction: SYSTEM, prompt: PROMPT }));

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe(`/v1beta/models/${MODEL}:streamGenerateContent`);
    expect(request?.query).toEqual({ alt: "sse" });
    expect(request?.apiKey).toBe(KEY_A);
    expect(request?.headers["x-goog-api-client"]).toMatch(/^genai-js\//);
    expect(JSON.stringify(request?.query)).not.toContain(KEY_A);
    expect(request?.body).toMatchObject({
      contents: [{ role: "user", parts: [{ text: PROMPT }] }],
      systemInstruction: { role: "system", parts: [{ text: SYSTEM }] },
    });
  });

  it("does not start a request before iteration, and final is undefined until the end", async () => {
    const stream = client().streamText({ prompt: PROMPT });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fake.requests).toHaveLength(0);
    expect(stream.final).toBeUndefined();
    await collect(stream);
    expect(stream.final?.text).toBe(fake.expectedText);
  });

  it("carries each caller's own key on concurrent calls", async () => {
    const [a, b] = await Promise.all([
      collect(client({ apiKey: KEY_A }).streamText({ prompt: "prompt for A" })),
      collect(client({ apiKey: KEY_B }).streamText({ prompt: "prompt for B" })),
    ]);
    expect(a.join("")).toBe(fake.expectedText);
    expect(b.join("")).toBe(fake.expectedText);

    const byPrompt = new Map(
      fake.requests.map((r) => [(r.body as { contents: Array<{ parts: Array<{ text: string }> }> }).contents[0]?.parts[0]?.text, r.apiKey]),
    );
    expect(byPrompt.get("prompt for A")).toBe(KEY_A);
    expect(byPrompt.get("prompt for B")).toBe(KEY_B);
  });

  it("fails only the user whose key is rejected while another user's call succeeds", async () => {
    fake.setMode({ fail: 401 }, KEY_B);
    const [a, b] = await Promise.allSettled([
      collect(client({ apiKey: KEY_A }).streamText({ prompt: PROMPT })),
      collect(client({ apiKey: KEY_B }).streamText({ prompt: PROMPT })),
    ]);
    expect(a.status).toBe("fulfilled");
    expect(b.status).toBe("rejected");
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(AppError);
    expect(((b as PromiseRejectedResult).reason as AppError).code).toBe("provider-rejected-key");
  });

  const mappings: Array<{ name: string; mode: FakeMode; code: AppError["code"]; status: number; retryAfter?: string }> = [
    { name: "401", mode: { fail: 401 }, code: "provider-rejected-key", status: 422 },
    { name: "403 (message quoting the key)", mode: { fail: 403 }, code: "provider-rejected-key", status: 422 },
    { name: "400 API_KEY_INVALID", mode: { fail: "invalid-key" }, code: "provider-rejected-key", status: 422 },
    { name: "429 with RetryInfo", mode: { fail: 429, retryAfterSeconds: 37 }, code: "rate-limited", status: 429, retryAfter: "37" },
    { name: "429 without RetryInfo", mode: { fail: 429 }, code: "rate-limited", status: 429, retryAfter: "30" },
    { name: "500", mode: { fail: 500 }, code: "upstream-unavailable", status: 502 },
    { name: "503", mode: { fail: 503 }, code: "upstream-unavailable", status: 502 },
    { name: "other 400", mode: { fail: 400 }, code: "upstream-unavailable", status: 502 },
    { name: "404 model", mode: { fail: 404 }, code: "model-unavailable", status: 503 },
    { name: "401 ACCESS_TOKEN_TYPE_UNSUPPORTED", mode: { fail: "key-type-unsupported" }, code: "provider-rejected-key", status: 422 },
    { name: "403 API_KEY_SERVICE_BLOCKED", mode: { fail: "service-blocked" }, code: "provider-rejected-key", status: 422 },
    { name: "bare 403", mode: { fail: "unrestricted-key" }, code: "provider-rejected-key", status: 422 },
  ];

  for (const mapping of mappings) {
    it(`maps upstream ${mapping.name} to ${mapping.code}, naming gemini and never the key`, async () => {
      fake.setMode(mapping.mode);
      const error = await appErrorOf(collect(client().streamText({ prompt: PROMPT })));

      expect(error.code).toBe(mapping.code);
      expect(error.status).toBe(mapping.status);
      expect(error.extra.provider).toBe("gemini");
      expect(error.detail).toContain("gemini");
      if (mapping.retryAfter) expect(error.headers["Retry-After"]).toBe(mapping.retryAfter);
      if (mapping.code === "provider-rejected-key") expect(error.action).toBe("POST /api/onboarding/api-keys");
      expect(exposed(error)).not.toContain(KEY_A);
      expect(exposed(error)).not.toContain("AIza");
    });
  }

  // One row per fact in docs/provider-facts.md "Gemini answers": the reason the user sees and what to do.
  const reasons: Array<{ name: string; key: string; mode?: FakeMode; reason: keyof typeof keyRejectionReasons; says: RegExp }> = [
    {
      name: "an authorization key Google does not know (400 API_KEY_INVALID)",
      key: KEY_A,
      mode: { fail: "invalid-key" },
      reason: "key-invalid",
      says: /API_KEY_INVALID/,
    },
    {
      name: "a standard key after Google's cutoff (401 ACCESS_TOKEN_TYPE_UNSUPPORTED)",
      key: STANDARD_KEY,
      reason: "standard-key-retired",
      says: /AI Studio \(aistudio\.google\.com\/apikey\)/,
    },
    {
      name: "an authorization key refused for the method (401 ACCESS_TOKEN_TYPE_UNSUPPORTED)",
      key: KEY_A,
      mode: { fail: "key-type-unsupported" },
      reason: "key-type-unsupported",
      says: /ACCESS_TOKEN_TYPE_UNSUPPORTED/,
    },
    {
      name: "an unrestricted standard key (bare 403)",
      key: STANDARD_KEY,
      mode: { fail: "unrestricted-key" },
      reason: "key-unrestricted",
      says: /restrict/,
    },
    {
      name: "a key restricted to other APIs (403 API_KEY_SERVICE_BLOCKED)",
      key: KEY_A,
      mode: { fail: "service-blocked" },
      reason: "key-service-blocked",
      says: /Generative Language API/,
    },
    {
      name: "a suspended key (403 CONSUMER_SUSPENDED, quoting the key)",
      key: KEY_A,
      mode: { fail: 403 },
      reason: "key-suspended",
      says: /suspended/,
    },
  ];
  for (const row of reasons) {
    it(`says why and what to do for ${row.name}: reason ${row.reason}`, async () => {
      if (row.mode) fake.setMode(row.mode, row.key);
      const error = await appErrorOf(collect(client({ apiKey: row.key }).streamText({ prompt: PROMPT })));
      expect(error.code).toBe("provider-rejected-key");
      expect(error.extra.reason).toBe(row.reason);
      expect(error.detail).toContain(keyRejectionReasons[row.reason]);
      expect(error.detail).toMatch(row.says);
      expect(exposed(error)).not.toContain(row.key);
    });
  }

  it("a retired model is the operator's problem: 503 model-unavailable naming GEMINI_MODEL, not the key", async () => {
    const error = await appErrorOf(collect(client({ model: "gemini-2.5-flash" }).streamText({ prompt: PROMPT })));
    expect(error.code).toBe("model-unavailable");
    expect(error.status).toBe(503);
    expect(error.detail).toContain("GEMINI_MODEL");
    expect(error.detail).toContain('"gemini-2.5-flash"');
    expect(error.extra.reason).toBeUndefined();
  });

  it("maps an unreachable upstream to upstream-unavailable", async () => {
    const gone = await startFakeGemini();
    const url = gone.url;
    await gone.close();
    const error = await appErrorOf(collect(client({ baseUrl: url }).streamText({ prompt: PROMPT })));
    expect(error.code).toBe("upstream-unavailable");
    expect(exposed(error)).not.toContain(KEY_A);
  });

  it("times out a hanging upstream with upstream-timeout within the configured time and closes the request", async () => {
    fake.setMode({ hang: true });
    const started = Date.now();
    const error = await appErrorOf(collect(client({ timeoutMs: 300 }).streamText({ prompt: PROMPT })));
    const elapsed = Date.now() - started;

    expect(error.code).toBe("upstream-timeout");
    expect(error.status).toBe(504);
    expect(error.extra.provider).toBe("gemini");
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1_500);
    await fake.waitForIdle();
    expect(fake.inFlight()).toBe(0);
  });

  it("times out a stream that stalls after some chunks", async () => {
    fake.setMode({ hangAfterChunks: 2 });
    const deltas: string[] = [];
    const error = await appErrorOf(
      (async () => {
        for await (const delta of client({ timeoutMs: 300 }).streamText({ prompt: PROMPT })) deltas.push(delta);
      })(),
    );
    expect(deltas).toHaveLength(2);
    expect(error.code).toBe("upstream-timeout");
    await fake.waitForIdle();
  });

  it("treats the timeout as inactivity: a slow but steady stream longer than timeoutMs succeeds", async () => {
    fake.setMode({ latencyMs: 120 }); // 5 chunks ≈ 600 ms in total, never 300 ms idle
    const started = Date.now();
    const deltas = await collect(client({ timeoutMs: 300 }).streamText({ prompt: PROMPT }));
    expect(Date.now() - started).toBeGreaterThan(300);
    expect(deltas.join("")).toBe(fake.expectedText);
  });

  it("does not count the consumer's own pauses against the timeout", async () => {
    const deltas: string[] = [];
    for await (const delta of client({ timeoutMs: 200 }).streamText({ prompt: PROMPT })) {
      deltas.push(delta);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(deltas.join("")).toBe(fake.expectedText);
  });

  it("rethrows a caller abort before the response as an AbortError (not mapped) and leaves nothing in flight", async () => {
    fake.setMode({ hang: true });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await collect(client({ timeoutMs: 5_000 }).streamText({ prompt: PROMPT, signal: controller.signal })).catch(
      (e: unknown) => e,
    );

    expect(error).not.toBeInstanceOf(AppError);
    expect(isAbortError(error)).toBe(true);
    expect(fake.requests).toHaveLength(1);
    await fake.waitForIdle();
    expect(fake.inFlight()).toBe(0);
  });

  it("rethrows a caller abort mid-stream as an AbortError and closes the upstream stream", async () => {
    fake.setMode({ latencyMs: 150 });
    const controller = new AbortController();
    const deltas: string[] = [];
    const error = await (async () => {
      for await (const delta of client({ timeoutMs: 5_000 }).streamText({ prompt: PROMPT, signal: controller.signal })) {
        deltas.push(delta);
        if (deltas.length === 1) setTimeout(() => controller.abort(), 20);
      }
    })().catch((e: unknown) => e);

    expect(isAbortError(error)).toBe(true);
    expect(deltas.length).toBeLessThan(FAKE_GEMINI_CHUNKS.length);
    await fake.waitForIdle();
    expect(fake.inFlight()).toBe(0);
  });

  it("aborts the upstream request when the consumer stops iterating early", async () => {
    // The fake would otherwise keep this stream open forever.
    fake.setMode({ hangAfterChunks: 1 });
    const stream = client({ timeoutMs: 5_000 }).streamText({ prompt: PROMPT });
    for await (const delta of stream) {
      expect(delta).toBeTruthy();
      break;
    }
    await fake.waitForIdle();
    expect(fake.inFlight()).toBe(0);
    expect(stream.final).toBeUndefined();
  });

  it("throws an AbortError without calling upstream when the signal is already aborted", async () => {
    const error = await collect(client().streamText({ prompt: PROMPT, signal: AbortSignal.abort() })).catch((e: unknown) => e);
    expect(isAbortError(error)).toBe(true);
    expect(fake.requests).toHaveLength(0);
  });

  it("refuses an empty key with missing-provider-key, without a request", () => {
    expect(() => createGemini({ apiKey: "", model: MODEL, baseUrl: fake.url, timeoutMs: 1_000 })).toThrow(AppError);
    try {
      createGemini({ apiKey: "", model: MODEL, baseUrl: fake.url, timeoutMs: 1_000 });
    } catch (error) {
      expect((error as AppError).code).toBe("missing-provider-key");
    }
    expect(fake.requests).toHaveLength(0);
  });

  it("refuses a key a header cannot carry without echoing it", () => {
    const bad = "AIzaSy bad\nkey-value-0000000000000000";
    let caught: unknown;
    try {
      createGemini({ apiKey: bad, model: MODEL, baseUrl: fake.url, timeoutMs: 1_000 });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AppError);
    expect(exposed(caught as AppError)).not.toContain("key-value");
  });
});

describe("gemini generateText", () => {
  it("returns the whole text and usage from generateContent", async () => {
    const outcome = await client().generateText({ systemInstruction: SYSTEM, prompt: PROMPT });
    expect(outcome.text).toBe(fake.expectedText);
    expect(outcome.finishReason).toBe("STOP");
    expect(outcome.usage?.promptTokenCount).toBe(promptTokens);
    expect(outcome.usage?.candidatesTokenCount).toBe(fakeTokenCount(fake.expectedText));
    expect(fake.requests[0]?.path).toBe(`/v1beta/models/${MODEL}:generateContent`);
    expect(fake.requests[0]?.apiKey).toBe(KEY_A);
  });

  it("maps failures the same way", async () => {
    fake.setMode({ fail: 429, retryAfterSeconds: 5 });
    const error = await appErrorOf(client().generateText({ prompt: PROMPT }));
    expect(error.code).toBe("rate-limited");
    expect(error.headers["Retry-After"]).toBe("5");
  });

  it("times out with upstream-timeout", async () => {
    fake.setMode({ hang: true });
    const error = await appErrorOf(client({ timeoutMs: 200 }).generateText({ prompt: PROMPT }));
    expect(error.code).toBe("upstream-timeout");
    await fake.waitForIdle();
  });

  it("rethrows a caller abort as an AbortError and leaves nothing in flight", async () => {
    fake.setMode({ hang: true });
    const error = await client({ timeoutMs: 5_000 })
      .generateText({ prompt: PROMPT, signal: AbortSignal.timeout(100) })
      .catch((e: unknown) => e);
    expect(isAbortError(error)).toBe(true);
    await fake.waitForIdle();
    expect(fake.inFlight()).toBe(0);
  });
});

describe("checkGeminiKey", () => {
  it("lists one model with the key in x-goog-api-key and answers ok", async () => {
    const result = await checkGeminiKey(KEY_A, { baseUrl: fake.url });
    expect(result).toEqual({ ok: true, value: { sampleModel: "models/gemini-3.5-flash" } });
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({ method: "GET", path: "/v1beta/models", query: { pageSize: "1" }, apiKey: KEY_A });
  });

  for (const mode of [{ fail: 401 }, { fail: 403 }, { fail: "invalid-key" }] satisfies FakeMode[]) {
    it(`answers provider-rejected-key for ${String(mode.fail)}`, async () => {
      fake.setMode(mode, KEY_B);
      const result = await checkGeminiKey(KEY_B, { baseUrl: fake.url });
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.error.code).toBe("provider-rejected-key");
      expect(result.error.status).toBe(422);
      expect(result.error.extra.provider).toBe("gemini");
      expect(exposed(result.error)).not.toContain(KEY_B);
      // Another user's key is unaffected.
      expect((await checkGeminiKey(KEY_A, { baseUrl: fake.url })).ok).toBe(true);
    });
  }

  it("answers rate-limited with Retry-After for 429", async () => {
    fake.setMode({ fail: 429, retryAfterSeconds: 12 });
    const result = await checkGeminiKey(KEY_A, { baseUrl: fake.url });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe("rate-limited");
      expect(result.error.headers["Retry-After"]).toBe("12");
    }
  });

  it("answers upstream-unavailable for 503 and upstream-timeout for a hang", async () => {
    fake.setMode({ fail: 503 });
    const unavailable = await checkGeminiKey(KEY_A, { baseUrl: fake.url });
    expect(!unavailable.ok && unavailable.error.code).toBe("upstream-unavailable");

    fake.setMode({ hang: true });
    const timedOut = await checkGeminiKey(KEY_A, { baseUrl: fake.url, timeoutMs: 200 });
    expect(!timedOut.ok && timedOut.error.code).toBe("upstream-timeout");
    await fake.waitForIdle();
  });

  it("throws an AbortError when the caller aborts", async () => {
    fake.setMode({ hang: true });
    const error = await checkGeminiKey(KEY_A, { baseUrl: fake.url, signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
    expect(isAbortError(error)).toBe(true);
    await fake.waitForIdle();
    expect(fake.inFlight()).toBe(0);
  });
});
