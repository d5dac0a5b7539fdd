/**
 * A local stand-in for api.exa.ai speaking what `exa-js` 2.x sends: `POST /search` with the
 * key in `x-api-key` and a JSON body `{query, numResults, contents: {...}}`; also `/findSimilar`
 * (as a search: deprecated, no published price of its own), `/contents` and `/answer` (what the gateway passes through). Results are
 * deterministic; contents are returned only as requested (highlights capped per result by
 * `highlights.maxCharacters`, text by `text.maxCharacters`), and `costDollars.total` follows
 * Exa's published shape. Errors use Exa's `{requestId, error, tag}` body (exa.ai/docs/admin/error-codes;
 * the tag names per status are the fake's choice: Exa's tag set is open-ended). Each shape and
 * price, with its source and the date read (2026-12-07), is a row of docs/provider-facts.md.
 *
 * Billing (`billed`, `billedUsd(key)`): Exa charges a search it took, answered or not: a
 * search it would answer 200 is billed `costDollars.total` as soon as it arrives, so a
 * search held, hung or cut off by the client costs what an answered one does. A search
 * answered with an error status (a failure mode, a missing key, a bad body) is not billed.
 */
import { startFakeUpstream, type FakeExchange, type FakeUpstream } from "./index.js";

export type { FakeMode, RecordedRequest } from "./index.js";

/** Cost the fake reports for a search of up to 10 results (Exa's base price, 2026). */
export const FAKE_EXA_SEARCH_COST = 0.007;
/** Cost per result beyond 10. */
export const FAKE_EXA_EXTRA_RESULT_COST = 0.001;

/** A long page body, so a request without a text cap visibly costs a lot of tokens. */
const PAGE_TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(400);

export type FakeExa = FakeUpstream;

export function fakeExaResult(query: string, index: number) {
  const n = index + 1;
  return {
    id: `https://example.com/source-${n}`,
    url: `https://example.com/source-${n}`,
    title: `Source ${n} about ${query}`,
    publishedDate: "2025-01-0" + ((index % 9) + 1) + "T00:00:00.000Z",
    author: `Author ${n}`,
    highlights: [`Highlight one of source ${n} on ${query}.`, `Highlight two of source ${n}, with more detail.`],
  };
}

export async function startFakeExa(): Promise<FakeExa> {
  return startFakeUpstream({ keyHeader: "x-api-key", handle });
}

/** What a search costs (`costDollars.total` and its parts) for `numResults` results with `contents`. */
export function fakeExaSearchCost(numResults: number, contents: { summary?: unknown } = {}) {
  const extra = Math.max(0, numResults - 10) * FAKE_EXA_EXTRA_RESULT_COST;
  const summaries = contents.summary ? numResults * 0.001 : 0;
  const total = Math.round((FAKE_EXA_SEARCH_COST + extra + summaries) * 1e6) / 1e6;
  return { total, search: FAKE_EXA_SEARCH_COST + extra, summaries };
}

interface SearchBody {
  query?: unknown;
  numResults?: unknown;
  contents?: {
    text?: true | { maxCharacters?: number };
    highlights?: true | { maxCharacters?: number };
    summary?: unknown;
  };
}

/** The results a search body asks for (1..100, default 10). */
const resultCount = (body: SearchBody) => Math.max(1, Math.min(typeof body.numResults === "number" ? body.numResults : 10, 100));

/** What the fake charges per page of `/contents` and per `/answer` (the gateway's tests). */
export const FAKE_EXA_CONTENTS_PAGE_COST = 0.001;
export const FAKE_EXA_ANSWER_COST = 0.005;

interface OtherBody {
  url?: unknown;
  urls?: unknown;
  ids?: unknown;
  query?: unknown;
}

/** `/contents` pages asked for. */
const pageCount = (body: OtherBody) => (Array.isArray(body.urls) ? body.urls.length : 0) + (Array.isArray(body.ids) ? body.ids.length : 0);

/** What the fake bills a request it answers 200 (then Exa bills it), or undefined when it answers an error. */
function billFor(exchange: FakeExchange): { operation: string; usd: number } | undefined {
  const { request, mode } = exchange;
  if (!request.apiKey || mode.fail !== undefined || request.method !== "POST") return undefined;
  const body = (request.body ?? {}) as SearchBody & OtherBody;
  const query = typeof body.query === "string" && body.query !== "";
  if (request.path === "/search" && query) return { operation: "search", usd: fakeExaSearchCost(resultCount(body), body.contents).total };
  if (request.path === "/findSimilar" && typeof body.url === "string") {
    return { operation: "findSimilar", usd: fakeExaSearchCost(resultCount(body), body.contents).total };
  }
  if (request.path === "/contents" && pageCount(body) > 0)
    return { operation: "contents", usd: pageCount(body) * FAKE_EXA_CONTENTS_PAGE_COST };
  if (request.path === "/answer" && query) return { operation: "answer", usd: FAKE_EXA_ANSWER_COST };
  return undefined;
}

async function handle(exchange: FakeExchange): Promise<void> {
  const { request, mode } = exchange;
  const bill = billFor(exchange);
  // Taken, so billed: whether the answer arrives or the client leaves first.
  if (bill) exchange.bill(bill);
  if (mode.holdUntil) await mode.holdUntil.catch(() => undefined);
  if (mode.hang) return;
  if (!(await exchange.pause(mode.latencyMs))) return;
  const requestId = `fake-${exchange.request.path.replace(/\W/g, "")}-${Date.now()}`;

  if (!request.apiKey) {
    return exchange.json(401, { requestId, error: "Missing API key. Pass it in the x-api-key header.", tag: "MISSING_API_KEY" });
  }
  if (mode.fail !== undefined) {
    const status = typeof mode.fail === "number" ? mode.fail : 400;
    const bodies: Record<number, { error: string; tag: string }> = {
      400: { error: "Invalid request body", tag: "INVALID_REQUEST_BODY" },
      401: { error: "Invalid API key", tag: "INVALID_API_KEY" },
      402: { error: "You have run out of credits", tag: "NO_MORE_CREDITS" },
      403: { error: "API key is not allowed to access this endpoint", tag: "ACCESS_DENIED" },
      429: { error: "Rate limit exceeded", tag: "RATE_LIMIT_EXCEEDED" },
      500: { error: "Internal server error", tag: "INTERNAL_ERROR" },
      503: { error: "Service unavailable", tag: "SERVICE_UNAVAILABLE" },
    };
    const headers: Record<string, string> =
      status === 429 && mode.retryAfterSeconds !== undefined ? { "retry-after": String(mode.retryAfterSeconds) } : {};
    return exchange.json(status, { requestId, ...(bodies[status] ?? { error: `fake failure ${status}`, tag: "FAKE" }) }, headers);
  }
  if (bill && request.path === "/contents") {
    const other = request.body as OtherBody;
    const urls = [...(Array.isArray(other.urls) ? other.urls : []), ...(Array.isArray(other.ids) ? other.ids : [])];
    return exchange.json(200, {
      requestId,
      results: urls.map((url, index) => ({ id: String(url), url: String(url), title: `Page ${index + 1}`, text: PAGE_TEXT.slice(0, 200) })),
      costDollars: { total: bill.usd, contents: { text: bill.usd } },
    });
  }
  if (bill && request.path === "/answer") {
    const query = String((request.body as OtherBody).query);
    return exchange.json(200, {
      requestId,
      answer: `A deterministic answer about ${query}.`,
      citations: [fakeExaResult(query, 0)].map(({ highlights: _, ...rest }) => rest),
      costDollars: { total: bill.usd },
    });
  }
  if (request.method !== "POST" || (request.path !== "/search" && request.path !== "/findSimilar")) {
    return exchange.json(404, { requestId, error: `Not found: ${request.method} ${request.path}`, tag: "NOT_FOUND" });
  }

  const body = { ...((request.body ?? {}) as SearchBody & OtherBody) };
  if (request.path === "/findSimilar") body.query = typeof body.url === "string" ? `pages like ${body.url}` : "";
  if (typeof body.query !== "string" || body.query === "") {
    return exchange.json(400, { requestId, error: "query is required", tag: "INVALID_REQUEST_BODY" });
  }
  const count = resultCount(body);
  const contents = body.contents ?? {};
  const results = Array.from({ length: count }, (_, index) => {
    const base = fakeExaResult(body.query as string, index);
    const { highlights, ...rest } = base;
    const result: Record<string, unknown> = { ...rest };
    if (contents.highlights) {
      const cap = typeof contents.highlights === "object" ? contents.highlights.maxCharacters : undefined;
      result.highlights = highlights.map((h) => (cap ? h.slice(0, cap) : h));
      result.highlightScores = highlights.map((_, i) => 0.9 - i * 0.1);
    }
    if (contents.text) {
      const cap = typeof contents.text === "object" ? contents.text.maxCharacters : undefined;
      result.text = cap ? PAGE_TEXT.slice(0, cap) : PAGE_TEXT;
    }
    if (contents.summary) result.summary = `Summary of source ${index + 1}.`;
    return result;
  });
  const { total, search, summaries } = fakeExaSearchCost(count, contents);
  return exchange.json(200, {
    requestId,
    resolvedSearchType: "neural",
    results,
    searchTime: 12.5,
    costDollars: {
      total,
      search: { neural: search },
      ...(summaries ? { contents: { summary: summaries } } : {}),
    },
  });
}
