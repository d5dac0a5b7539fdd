/**
 * Exa search through `exa-js`, always with the caller's own key and small, explicit
 * contents (see `EXA_CONTENTS`), so a research step costs one base-priced search and feeds
 * Gemini a few hundred tokens per source rather than 10,000 characters of page text.
 *
 * Two exa-js 2.x behaviours are worked around here:
 * - `new Exa(undefined | "")` silently falls back to `process.env.EXA_API_KEY`: the
 *   operator's key. We refuse an empty key before constructing the client.
 * - Its transport (`Exa.prototype.request`) calls `fetch` without an AbortSignal, so a
 *   timeout or a client disconnect could not cancel the HTTP request. `AbortableExa`
 *   overrides that one method with the same request (URL, the SDK's own headers, JSON body)
 *   plus a signal; body building, options and types stay the SDK's.
 */
import { Exa, type SearchResponse } from "exa-js";
import { AppError } from "../http/errors.js";
import { abortFailure, upstreamCall, type AbortCause } from "./abort.js";
import { assertSendableKey, DEFAULT_RETRY_AFTER_SECONDS, parseRetryAfter, scrub, trimSlash } from "./upstream.js";

import { EXA_DEFAULT_BASE_URL } from "./exa-endpoint.js";

export { EXA_DEFAULT_BASE_URL };
/** Exa's base price covers up to 10 results; more are billed per result. */
export const EXA_MAX_RESULTS = 10;
const DEFAULT_MAX_CHARACTERS = 1_000;

/**
 * What we ask Exa to return for each result: query-relevant highlights capped at
 * `maxCharacters` (per result), and no full text, summary, subpages or extras. Omitting
 * `contents` would make exa-js add `text: {maxCharacters: 10000}`.
 */
export function exaContents(maxCharacters: number = DEFAULT_MAX_CHARACTERS): { highlights: { maxCharacters: number } } {
  return { highlights: { maxCharacters } };
}
export const EXA_CONTENTS = exaContents();

export interface ExaSearchParams {
  /** The user's Exa key; sent only as the `x-api-key` header. */
  apiKey: string;
  /** Defaults to https://api.exa.ai (tests point it at a fake). */
  baseUrl?: string;
  query: string;
  /** Clamped to 1..10 (`EXA_MAX_RESULTS`). */
  numResults: number;
  /** The caller's signal (e.g. client disconnect); aborting it throws an AbortError. */
  signal?: AbortSignal;
  /** Whole-call limit; exceeding it aborts the request and throws `upstream-timeout`. */
  timeoutMs: number;
  /** Highlight characters per result, clamped to 100..4000; default 1000. */
  maxCharactersPerResult?: number;
  /** Only results from these domains (ALwrity's website step reads the user's own site). */
  includeDomains?: string[];
  /** No results from these domains (its competitor step leaves out the user's own site). */
  excludeDomains?: string[];
}

export interface ExaSource {
  title: string;
  url: string;
  /** Query-relevant passages, best first. */
  highlights: string[];
  /** The highlights joined, ready for a prompt. */
  text: string;
  publishedDate?: string;
}

export interface ExaSearchOutcome {
  results: ExaSource[];
  /** `costDollars.total` as Exa reported it. */
  costUsd?: number;
  requestId?: string;
}

/**
 * One search billed to the caller's key. Throws `AppError` (`provider-rejected-key`,
 * `rate-limited`, `upstream-unavailable`, `upstream-timeout`, or `missing-provider-key`
 * for an empty key) and an AbortError when `signal` aborts.
 */
export async function searchExa(params: ExaSearchParams): Promise<ExaSearchOutcome> {
  assertSendableKey(params.apiKey, "exa");
  const numResults = clamp(Math.trunc(params.numResults), 1, EXA_MAX_RESULTS);
  const maxCharacters = clamp(Math.trunc(params.maxCharactersPerResult ?? DEFAULT_MAX_CHARACTERS), 100, 4_000);
  // A whole-call limit: the clock is never paused.
  const call = upstreamCall(params.signal, params.timeoutMs);
  try {
    const exa = new AbortableExa(params.apiKey, trimSlash(params.baseUrl ?? EXA_DEFAULT_BASE_URL), call.signal);
    const response: SearchResponse<{ highlights: { maxCharacters: number } }> = await exa.search(params.query, {
      numResults,
      contents: exaContents(maxCharacters),
      ...(params.includeDomains?.length ? { includeDomains: params.includeDomains } : {}),
      ...(params.excludeDomains?.length ? { excludeDomains: params.excludeDomains } : {}),
    });
    return {
      results: (response.results ?? []).map((result) => {
        const highlights = Array.isArray(result.highlights) ? result.highlights.filter((h) => typeof h === "string") : [];
        return {
          title: result.title?.trim() || result.url,
          url: result.url,
          highlights,
          text: highlights.join(" … "),
          ...(result.publishedDate ? { publishedDate: result.publishedDate } : {}),
        };
      }),
      ...(typeof response.costDollars?.total === "number" ? { costUsd: response.costDollars.total } : {}),
      ...(response.requestId ? { requestId: response.requestId } : {}),
    };
  } catch (error) {
    throw mapExaFailure(error, { apiKey: params.apiKey, abortedBy: call.abortedBy, timeoutMs: params.timeoutMs });
  } finally {
    call.end(true); // the abort is a no-op once the body was read
  }
}

/** An HTTP failure seen by our transport, with what the mapping needs and nothing else. */
class ExaHttpError extends Error {
  constructor(
    readonly status: number,
    readonly retryAfter: string | null,
    readonly upstreamTag: string | undefined,
  ) {
    super(`exa answered HTTP ${status}${upstreamTag ? ` ${upstreamTag}` : ""}`);
    this.name = "ExaHttpError";
  }
}

/** exa-js with an AbortSignal on its one transport method (see the file comment). */
class AbortableExa extends Exa {
  constructor(
    apiKey: string,
    private readonly base: string,
    private readonly abortSignal: AbortSignal,
  ) {
    super(apiKey, base);
  }

  override async request<T = unknown>(
    endpoint: string,
    method: string,
    body?: unknown,
    params?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<T> {
    let url = this.base + endpoint;
    if (params && Object.keys(params).length > 0) {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(params)) {
        if (Array.isArray(value)) for (const item of value) query.append(key, String(item));
        else if (value !== undefined) query.append(key, String(value));
      }
      url += `?${query.toString()}`;
    }
    // The SDK's own headers (x-api-key, Content-Type, User-Agent); `headers` is private in its types.
    const sdkHeaders = Reflect.get(this, "headers") as Headers;
    const combined = new Headers(sdkHeaders);
    for (const [key, value] of Object.entries(headers ?? {})) combined.set(key, value);
    const response = await fetch(url, {
      method,
      headers: combined,
      body: body ? JSON.stringify(body) : undefined,
      signal: this.abortSignal,
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const tag = (json as { tag?: unknown; error?: { code?: unknown } } | undefined) ?? {};
      const upstreamTag = typeof tag.tag === "string" ? tag.tag : typeof tag.error?.code === "string" ? tag.error.code : undefined;
      throw new ExaHttpError(response.status, response.headers.get("retry-after"), upstreamTag);
    }
    if (json === undefined) throw new ExaHttpError(502, null, "NON_JSON_RESPONSE");
    return json as T;
  }
}

/** Maps what a search threw: AppError for upstream failures, AbortError for a caller abort. */
export function mapExaFailure(error: unknown, context: { apiKey: string; abortedBy: AbortCause | undefined; timeoutMs: number }): Error {
  const aborted = abortFailure(context.abortedBy, "exa", context.timeoutMs);
  if (aborted) return aborted;
  if (error instanceof AppError) return error;
  if (!(error instanceof ExaHttpError)) {
    return new AppError("upstream-unavailable", {
      detail: "could not reach exa; try again later",
      extra: { provider: "exa" },
      cause: new Error(scrub(error instanceof Error ? `${error.name}: ${error.message}` : String(error), context.apiKey)),
    });
  }
  const { status } = error;
  const extra = { provider: "exa", upstreamStatus: status };
  const cause = new Error(scrub(error.message, context.apiKey));
  if (status === 401 || status === 403) {
    return new AppError("provider-rejected-key", {
      detail: `exa rejected the saved API key (HTTP ${status}); save a working key`,
      action: "POST /api/onboarding/api-keys",
      extra: { ...extra, reason: status === 401 ? "key-invalid" : "key-rejected" },
      cause,
    });
  }
  if (status === 402) {
    return new AppError("provider-rejected-key", {
      detail: "exa refused the saved API key: its account is out of credits (HTTP 402); top it up or save another key",
      action: "POST /api/onboarding/api-keys",
      extra: { ...extra, reason: "out-of-credits" },
      cause,
    });
  }
  if (status === 429) {
    const seconds = parseRetryAfter(error.retryAfter) ?? DEFAULT_RETRY_AFTER_SECONDS;
    return new AppError("rate-limited", {
      detail: `exa rate limit reached for this API key; retry after ${seconds} s`,
      headers: { "Retry-After": String(seconds) },
      extra,
      cause,
    });
  }
  if (status === 504) {
    return new AppError("upstream-timeout", { detail: "exa timed out (HTTP 504); try again", extra, cause });
  }
  return new AppError("upstream-unavailable", {
    detail: status >= 500 ? `exa is unavailable (HTTP ${status}); try again later` : `exa refused the request (HTTP ${status})`,
    extra,
    cause,
  });
}

function clamp(value: number, min: number, max: number): number {
  return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : min;
}
