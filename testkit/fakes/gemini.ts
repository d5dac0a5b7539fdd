/**
 * A local stand-in for generativelanguage.googleapis.com speaking what
 * `@google/generative-ai` 0.24 sends and expects:
 * - `POST /v1beta/models/{model}:generateContent` → one GenerateContentResponse
 * - `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` → SSE, one
 *   `data: {GenerateContentResponse}\r\n\r\n` per chunk, usageMetadata with running totals
 * - `GET /v1beta/models?pageSize=N` → `{models: [...], nextPageToken}`
 * The key travels in `x-goog-api-key`; errors use Google's `{error: {code, message, status, details}}`.
 */
import { startFakeUpstream, type FakeExchange, type FakeUpstream } from "./index.js";

export type { FakeMode, RecordedRequest } from "./index.js";

/** What the fake streams by default: deterministic, markdown, citing sources [1] and [2]. */
export const FAKE_GEMINI_CHUNKS: readonly string[] = [
  "# Deterministic Test Article\n\n",
  "Research on the topic shows steady progress [1]. ",
  "Independent sources agree on the main points [2].\n\n",
  "## What it means\n\n",
  "Readers can rely on the cited work [1][2] for details.\n",
];

export const FAKE_GEMINI_MODELS = ["models/gemini-2.5-flash", "models/gemini-2.5-pro", "models/gemini-2.0-flash"];

export interface FakeGeminiOptions {
  /** Text pieces streamed (one SSE event each) and joined for generateContent. */
  chunks?: readonly string[];
}

export interface FakeGemini extends FakeUpstream {
  /** The text a successful call produces. */
  readonly expectedText: string;
}

/** Whitespace-separated words: a deterministic stand-in for token counts. */
export function fakeTokenCount(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

export async function startFakeGemini(options: FakeGeminiOptions = {}): Promise<FakeGemini> {
  const chunks = options.chunks ?? FAKE_GEMINI_CHUNKS;
  const upstream = await startFakeUpstream({ keyHeader: "x-goog-api-key", handle: (exchange) => handle(exchange, chunks) });
  return Object.assign(upstream, { expectedText: chunks.join("") });
}

async function handle(exchange: FakeExchange, chunks: readonly string[]): Promise<void> {
  const { request, mode } = exchange;
  if (mode.holdUntil) await mode.holdUntil.catch(() => undefined);
  if (mode.hang) return; // never answer; the connection stays open until the client leaves
  if (!(await exchange.pause(mode.latencyMs))) return;

  if (request.apiKey === undefined || request.apiKey === "") {
    return sendGoogleError(
      exchange,
      403,
      "PERMISSION_DENIED",
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    );
  }
  if (mode.fail !== undefined) return sendFailure(exchange);

  if (request.method === "GET" && request.path === "/v1beta/models") {
    const pageSize = Math.max(1, Math.min(Number(request.query.pageSize ?? 50) || 50, FAKE_GEMINI_MODELS.length));
    return exchange.json(200, {
      models: FAKE_GEMINI_MODELS.slice(0, pageSize).map((name) => ({
        name,
        displayName: name.replace("models/", ""),
        supportedGenerationMethods: ["generateContent", "countTokens"],
      })),
      ...(pageSize < FAKE_GEMINI_MODELS.length ? { nextPageToken: "fake-next-page" } : {}),
    });
  }

  const match = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(request.path);
  if (request.method !== "POST" || !match) {
    return sendGoogleError(exchange, 404, "NOT_FOUND", `Method not found: ${request.method} ${request.path}`);
  }
  const model = match[1] ?? "";
  const promptTokens = Math.max(1, fakeTokenCount(promptText(request.body)));

  if (match[2] === "generateContent") {
    const text = chunks.join("");
    const outputTokens = fakeTokenCount(text);
    return exchange.json(200, {
      candidates: [{ content: { parts: [{ text }], role: "model" }, finishReason: "STOP", index: 0 }],
      usageMetadata: usage(promptTokens, outputTokens),
      modelVersion: model,
      responseId: "fake-response-id",
    });
  }

  if (request.query.alt !== "sse") {
    return sendGoogleError(exchange, 400, "INVALID_ARGUMENT", "the fake only streams with alt=sse");
  }
  const { res } = exchange;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
  let sentTokens = 0;
  for (const [index, text] of chunks.entries()) {
    if (mode.hangAfterChunks !== undefined && index >= mode.hangAfterChunks) return; // stall, never end
    if (index > 0 && !(await exchange.pause(mode.latencyMs))) return;
    if (exchange.closed()) return;
    sentTokens += fakeTokenCount(text);
    const last = index === chunks.length - 1;
    const event = {
      candidates: [
        { content: { parts: [{ text }], role: "model" }, index: 0, ...(last ? { finishReason: "STOP" } : {}) },
      ],
      usageMetadata: last ? usage(promptTokens, sentTokens) : { promptTokenCount: promptTokens, totalTokenCount: promptTokens },
      modelVersion: model,
      responseId: "fake-response-id",
    };
    res.write(`data: ${JSON.stringify(event)}\r\n\r\n`);
  }
  res.end();
}

function usage(promptTokenCount: number, candidatesTokenCount: number) {
  return { promptTokenCount, candidatesTokenCount, totalTokenCount: promptTokenCount + candidatesTokenCount };
}

/** systemInstruction and every user text part, as sent by the SDK. */
function promptText(body: unknown): string {
  const b = body as {
    systemInstruction?: { parts?: Array<{ text?: string }> };
    contents?: Array<{ parts?: Array<{ text?: string }> }>;
  } | null;
  const parts = [...(b?.systemInstruction?.parts ?? []), ...(b?.contents ?? []).flatMap((c) => c.parts ?? [])];
  return parts.map((p) => p.text ?? "").join(" ");
}

function sendFailure(exchange: FakeExchange): void {
  const { mode, request } = exchange;
  switch (mode.fail) {
    case "invalid-key":
      return sendGoogleError(exchange, 400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "API_KEY_INVALID",
          domain: "googleapis.com",
          metadata: { service: "generativelanguage.googleapis.com" },
        },
        {
          "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
          locale: "en-US",
          message: "API key not valid. Please pass a valid API key.",
        },
      ]);
    case 401:
      return sendGoogleError(exchange, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    case 403:
      // Google really does quote the key here ("Consumer 'api_key:…'"): callers must not echo it.
      return sendGoogleError(
        exchange,
        403,
        "PERMISSION_DENIED",
        `Permission denied: Consumer 'api_key:${request.apiKey ?? ""}' has been suspended.`,
        [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "CONSUMER_SUSPENDED", domain: "googleapis.com" }],
      );
    case 429:
      return sendGoogleError(
        exchange,
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        [
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [{ quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests" }],
          },
          { "@type": "type.googleapis.com/google.rpc.Help", links: [{ description: "Learn more", url: "https://ai.google.dev/gemini-api/docs/rate-limits" }] },
          ...(mode.retryAfterSeconds !== undefined
            ? [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: `${mode.retryAfterSeconds}s` }]
            : []),
        ],
      );
    case 500:
      return sendGoogleError(exchange, 500, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting");
    case 503:
      return sendGoogleError(exchange, 503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    case 400:
      return sendGoogleError(exchange, 400, "INVALID_ARGUMENT", "Request contains an invalid argument.");
    case 404:
      return sendGoogleError(exchange, 404, "NOT_FOUND", "models/unknown is not found for API version v1beta.");
    default: {
      const status = typeof mode.fail === "number" ? mode.fail : 500;
      return sendGoogleError(exchange, status, "UNKNOWN", `fake failure ${status}`);
    }
  }
}

function sendGoogleError(exchange: FakeExchange, code: number, status: string, message: string, details?: unknown[]): void {
  exchange.json(code, { error: { code, message, status, ...(details ? { details } : {}) } });
}
