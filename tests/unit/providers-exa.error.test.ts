import { describe, expect, it, vi } from "vitest";
import { AppError } from "../../lib/http/errors.js";
import { EXA_CONTENTS, searchExa, type ExaSearchParams } from "../../lib/providers/exa.js";
import { FAKE_EXA_SEARCH_COST, startFakeExa, type FakeMode } from "../../testkit/fakes/exa.js";
import { useFakeExa } from "../helpers/upstreams.js";

const KEY_A = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
const KEY_B = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
const QUERY = "deterministic testing of streaming APIs";

const fake = useFakeExa({ resetEach: true });

function search(overrides: Partial<ExaSearchParams> = {}) {
  return searchExa({ apiKey: KEY_A, baseUrl: fake.url, query: QUERY, numResults: 3, timeoutMs: 2_000, ...overrides });
}

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

const isAbortError = (error: unknown) => error instanceof Error && error.name === "AbortError";

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

describe("searchExa", () => {
  it("returns titled sources with highlights and the reported cost", async () => {
    const outcome = await search();
    expect(outcome.costUsd).toBe(FAKE_EXA_SEARCH_COST);
    expect(outcome.requestId).toBeTruthy();
    expect(outcome.results).toHaveLength(3);
    expect(outcome.results[0]).toEqual({
      title: `Source 1 about ${QUERY}`,
      url: "https://example.com/source-1",
      highlights: [`Highlight one of source 1 on ${QUERY}.`, "Highlight two of source 1, with more detail."],
      text: `Highlight one of source 1 on ${QUERY}. … Highlight two of source 1, with more detail.`,
      publishedDate: "2025-01-01T00:00:00.000Z",
    });
  });

  it("sends the key only in x-api-key and a body with small explicit contents (no page text)", async () => {
    await search();
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe("/search");
    expect(request?.apiKey).toBe(KEY_A);
    expect(request?.headers["user-agent"]).toMatch(/^exa-node /);
    expect(request?.body).toEqual({ query: QUERY, numResults: 3, contents: { highlights: { maxCharacters: 1000 } } });
    expect(JSON.stringify(request?.body)).not.toContain(KEY_A);
    expect(EXA_CONTENTS).toEqual({ highlights: { maxCharacters: 1000 } });
  });

  it("clamps numResults to the 10 the base price covers and the per-result cap", async () => {
    await search({ numResults: 50, maxCharactersPerResult: 20 });
    await search({ numResults: 0, maxCharactersPerResult: 1_000_000 });
    expect(fake.requests[0]?.body).toMatchObject({ numResults: 10, contents: { highlights: { maxCharacters: 100 } } });
    expect(fake.requests[1]?.body).toMatchObject({ numResults: 1, contents: { highlights: { maxCharacters: 4000 } } });
  });

  it("carries each caller's own key on concurrent calls, and fails only the rejected one", async () => {
    fake.setMode({ fail: 401 }, KEY_B);
    const [a, b] = await Promise.allSettled([search({ apiKey: KEY_A, query: "query A" }), search({ apiKey: KEY_B, query: "query B" })]);
    expect(a.status).toBe("fulfilled");
    expect(b.status).toBe("rejected");
    expect(((b as PromiseRejectedResult).reason as AppError).code).toBe("provider-rejected-key");
    const byQuery = new Map(fake.requests.map((r) => [(r.body as { query: string }).query, r.apiKey]));
    expect(byQuery.get("query A")).toBe(KEY_A);
    expect(byQuery.get("query B")).toBe(KEY_B);
  });

  const mappings: Array<{ mode: FakeMode; code: AppError["code"]; status: number; retryAfter?: string }> = [
    { mode: { fail: 401 }, code: "provider-rejected-key", status: 422 },
    { mode: { fail: 403 }, code: "provider-rejected-key", status: 422 },
    { mode: { fail: 402 }, code: "provider-rejected-key", status: 422 },
    { mode: { fail: 429, retryAfterSeconds: 12 }, code: "rate-limited", status: 429, retryAfter: "12" },
    { mode: { fail: 429 }, code: "rate-limited", status: 429, retryAfter: "30" },
    { mode: { fail: 500 }, code: "upstream-unavailable", status: 502 },
    { mode: { fail: 503 }, code: "upstream-unavailable", status: 502 },
    { mode: { fail: 400 }, code: "upstream-unavailable", status: 502 },
  ];
  for (const mapping of mappings) {
    const name = `${String(mapping.mode.fail)}${mapping.mode.retryAfterSeconds ? " with Retry-After" : ""}`;
    it(`maps upstream ${name} to ${mapping.code}, naming exa and never the key`, async () => {
      fake.setMode(mapping.mode);
      const error = await appErrorOf(search());
      expect(error.code).toBe(mapping.code);
      expect(error.status).toBe(mapping.status);
      expect(error.extra.provider).toBe("exa");
      expect(error.detail).toContain("exa");
      if (mapping.retryAfter) expect(error.headers["Retry-After"]).toBe(mapping.retryAfter);
      expect(exposed(error)).not.toContain(KEY_A);
    });
  }

  it("maps an unreachable upstream to upstream-unavailable", async () => {
    const gone = await startFakeExa();
    const url = gone.url;
    await gone.close();
    const error = await appErrorOf(search({ baseUrl: url }));
    expect(error.code).toBe("upstream-unavailable");
    expect(exposed(error)).not.toContain(KEY_A);
  });

  it("times out a hanging upstream with upstream-timeout within the configured time and closes the request", async () => {
    fake.setMode({ hang: true });
    const started = Date.now();
    const error = await appErrorOf(search({ timeoutMs: 300 }));
    const elapsed = Date.now() - started;
    expect(error.code).toBe("upstream-timeout");
    expect(error.status).toBe(504);
    expect(error.extra.provider).toBe("exa");
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1_500);
    await fake.waitForIdle(1_000);
    expect(fake.inFlight()).toBe(0);
  });

  it("succeeds when the upstream is slow but within the timeout", async () => {
    fake.setMode({ latencyMs: 150 });
    const outcome = await search({ timeoutMs: 1_000 });
    expect(outcome.results).toHaveLength(3);
  });

  it("rethrows a caller abort as an AbortError (not mapped) and leaves nothing in flight", async () => {
    fake.setMode({ hang: true });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await search({ timeoutMs: 5_000, signal: controller.signal }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(AppError);
    expect(isAbortError(error)).toBe(true);
    expect(fake.requests).toHaveLength(1);
    await fake.waitForIdle(1_000);
    expect(fake.inFlight()).toBe(0);
  });

  it("throws an AbortError without calling upstream when the signal is already aborted", async () => {
    const error = await search({ signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(isAbortError(error)).toBe(true);
    expect(fake.requests).toHaveLength(0);
  });

  it("never falls back to the operator's EXA_API_KEY for an empty key", async () => {
    vi.stubEnv("EXA_API_KEY", KEY_B);
    try {
      const error = await appErrorOf(search({ apiKey: "" }));
      expect(error.code).toBe("missing-provider-key");
      expect(error.extra.provider).toBe("exa");
      expect(fake.requests).toHaveLength(0);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
