/**
 * A local stand-in for generativelanguage.googleapis.com speaking what `@google/generative-ai` 0.24
 * (and `@ai-sdk/google` 3, the Vercel AI SDK's provider) sends and expects:
 * - `POST /v1beta/models/{model}:generateContent` → one GenerateContentResponse
 * - `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` → SSE, one
 *   `data: {GenerateContentResponse}\r\n\r\n` per chunk, usageMetadata with running totals
 * - `POST /v1beta/models/{model}:countTokens` → `{totalTokens}` (free, never billed: Google's
 *   billing FAQ, docs/provider-facts.md "countTokens is free", read 2026-12-07)
 * - `GET /v1beta/models?pageSize=N` → `{models: [...], nextPageToken}`
 * The key travels in `x-goog-api-key`; errors use Google's `{error: {code, message, status, details}}`.
 *
 * It behaves like the API of today (docs/provider-facts.md has each fact with its source and
 * the date read, 2026-12-07):
 * - authorization keys ("AQ.…", what AI Studio issues) work; standard keys ("AIza…") answer
 *   401 ACCESS_TOKEN_TYPE_UNSUPPORTED, as Google answers them since its standard-key cutoff
 *   (ai.google.dev/gemini-api/docs/api-key), unless `acceptStandardKeys`;
 * - retired models answer 404 NOT_FOUND (ai.google.dev/gemini-api/docs/deprecations);
 * - usageMetadata reports `thoughtsTokenCount` as Gemini 3.x models do (thinking is on by
 *   default and billed as output, ai.google.dev/gemini-api/docs/thinking), from the first chunk on.
 * - function calling: a request that declares functions (`tools[].functionDeclarations`), does
 *   not forbid calling them (`toolConfig.functionCallingConfig.mode` "NONE") and whose last turn
 *   carries no `functionResponse` is answered with a `functionCall` of the first declared
 *   function (`fakeFunctionArgs` of its parameters) instead of text, with a `thoughtSignature`
 *   on that part as Gemini 3.x models send it (@ai-sdk/google 3 replays it on the next step
 *   and warns when it is missing, citing ai.google.dev/gemini-api/docs/thought-signatures, read
 *   2026-12-07: Gemini 3 answers a missing one with a 4xx; docs/provider-facts.md "Thought signatures");
 *   a stream sends it as one chunk. Once the caller sent the function's result, the answer is
 *   the usual text. A request without declarations is answered as before.
 *
 * Billing (`billed`, `billedUsd(key)`), at the service's own price table
 * (lib/providers/prices.ts `geminiCostUsd`, for the model in the path): Gemini bills the
 * tokens it processed for a call it accepted, finished or not. A call is accepted when it is
 * answered 200: a generateContent is billed its prompt, thinking and output tokens; a stream
 * is billed its prompt and thinking tokens when its 200 goes out (thinking happens before
 * the first visible text, and every chunk reports it), then each chunk's output tokens as the
 * chunk is sent, so a stream the client cuts off costs what had been sent by then. A call
 * answered with an error status, held or hung without an answer, and the model list are not
 * billed.
 */
import { geminiCostUsd } from "../../lib/providers/prices.js";
import { startFakeUpstream, type BilledCall, type FakeExchange, type FakeUpstream } from "./index.js";

export type { FakeMode, RecordedRequest } from "./index.js";

/** What the fake streams by default: deterministic, markdown, citing sources [1] and [2]. */
export const FAKE_GEMINI_CHUNKS: readonly string[] = [
  "# Deterministic Test Article\n\n",
  "Research on the topic shows steady progress [1]. ",
  "Independent sources agree on the main points [2].\n\n",
  "## What it means\n\n",
  "Readers can rely on the cited work [1][2] for details.\n",
];

/** What `GET /v1beta/models` lists: current models (the default first). */
export const FAKE_GEMINI_MODELS = ["models/gemini-3.5-flash", "models/gemini-3.5-flash-lite", "models/gemini-3.1-pro-preview"];

/** Models past their shutdown date: generation answers 404 for them, as Gemini does. */
export const FAKE_RETIRED_GEMINI_MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "gemini-2.0-flash-lite"];

/** Thinking tokens the fake reports per generation by default (billed as output). */
export const FAKE_THOUGHTS_TOKENS = 24;

export interface FakeGeminiOptions {
  /** Text pieces streamed (one SSE event each) and joined for generateContent. */
  chunks?: readonly string[];
  /** Answer standard "AIza…" keys as before Google's cutoff (tests of the older keys' own paths). */
  acceptStandardKeys?: boolean;
  /** `thoughtsTokenCount` reported per generation (default FAKE_THOUGHTS_TOKENS; 0: none reported). */
  thoughtsTokens?: number;
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
  const settings: Settings = {
    chunks: options.chunks ?? FAKE_GEMINI_CHUNKS,
    acceptStandardKeys: options.acceptStandardKeys ?? false,
    thoughtsTokens: options.thoughtsTokens ?? FAKE_THOUGHTS_TOKENS,
  };
  const upstream = await startFakeUpstream({ keyHeader: "x-goog-api-key", handle: (exchange) => handle(exchange, settings) });
  return Object.assign(upstream, { expectedText: settings.chunks.join("") });
}

interface Settings {
  chunks: readonly string[];
  acceptStandardKeys: boolean;
  thoughtsTokens: number;
}

async function handle(exchange: FakeExchange, settings: Settings): Promise<void> {
  const { chunks, thoughtsTokens } = settings;
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
  if (!settings.acceptStandardKeys && request.apiKey.startsWith("AIza")) return sendTokenTypeUnsupported(exchange);

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

  const match = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|countTokens)$/.exec(request.path);
  if (request.method !== "POST" || !match) {
    return sendGoogleError(exchange, 404, "NOT_FOUND", `Method not found: ${request.method} ${request.path}`);
  }
  const model = match[1] ?? "";
  if (FAKE_RETIRED_GEMINI_MODELS.includes(model)) return sendModelNotFound(exchange, model);
  const promptTokens = Math.max(1, fakeTokenCount(promptText(request.body)));

  if (match[2] === "countTokens") {
    // Free at Google (billing FAQ, docs/provider-facts.md "countTokens is free"): never billed.
    const inner = (request.body as { generateContentRequest?: unknown } | null)?.generateContentRequest;
    return exchange.json(200, { totalTokens: Math.max(1, fakeTokenCount(promptText(inner ?? request.body))) });
  }

  const call = functionCallFor(request.body);
  if (call) return sendFunctionCall(exchange, match[2] === "streamGenerateContent", model, promptTokens, thoughtsTokens, call);

  if (match[2] === "generateContent") {
    const text = chunks.join("");
    const outputTokens = fakeTokenCount(text);
    if (exchange.closed()) return;
    bill(exchange, { operation: "generateContent", model, inputTokens: promptTokens, outputTokens: outputTokens + thoughtsTokens });
    return exchange.json(200, {
      candidates: [{ content: { parts: [{ text }], role: "model" }, finishReason: "STOP", index: 0 }],
      usageMetadata: usage(promptTokens, outputTokens, thoughtsTokens),
      modelVersion: model,
      responseId: "fake-response-id",
    });
  }

  if (request.query.alt !== "sse") {
    return sendGoogleError(exchange, 400, "INVALID_ARGUMENT", "the fake only streams with alt=sse");
  }
  const { res } = exchange;
  if (exchange.closed()) return;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
  // Accepted: the prompt and the thinking are billed from here on, whatever follows.
  const billed = bill(exchange, { operation: "streamGenerateContent", model, inputTokens: promptTokens, outputTokens: thoughtsTokens });
  let sentTokens = 0;
  for (const [index, text] of chunks.entries()) {
    if (mode.hangAfterChunks !== undefined && index === mode.hangAfterChunks) {
      if (!mode.resumeWhen) return; // stall, never end
      await mode.resumeWhen.catch(() => undefined);
    }
    if (index > 0 && !(await exchange.pause(mode.latencyMs))) return;
    if (exchange.closed()) return;
    sentTokens += fakeTokenCount(text);
    if (billed) rebill(billed, promptTokens, sentTokens + thoughtsTokens);
    const last = index === chunks.length - 1;
    const event = {
      candidates: [{ content: { parts: [{ text }], role: "model" }, index: 0, ...(last ? { finishReason: "STOP" } : {}) }],
      // Thinking happens before the first visible text: its count arrives with every chunk.
      usageMetadata: last
        ? usage(promptTokens, sentTokens, thoughtsTokens)
        : { promptTokenCount: promptTokens, ...thoughts(thoughtsTokens), totalTokenCount: promptTokens + thoughtsTokens },
      modelVersion: model,
      responseId: "fake-response-id",
    };
    res.write(`data: ${JSON.stringify(event)}\r\n\r\n`);
  }
  res.end();
}

/** Bills a call at the price table's rate for its model (see the file comment). */
function bill(
  exchange: FakeExchange,
  call: { operation: string; model: string; inputTokens: number; outputTokens: number },
): BilledCall | undefined {
  return exchange.bill({ ...call, usd: geminiCostUsd(call.model, call.inputTokens, call.outputTokens) });
}

/** A stream's bill after more of it was sent. */
function rebill(entry: BilledCall, inputTokens: number, outputTokens: number): void {
  entry.inputTokens = inputTokens;
  entry.outputTokens = outputTokens;
  entry.usd = geminiCostUsd(entry.model ?? "", inputTokens, outputTokens);
}

/** The thought signature the fake puts on a functionCall part (Gemini 3.x sends one; callers send it back). */
export const FAKE_THOUGHT_SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ==";

/** A function call as the fake makes it. */
export interface FakeFunctionCall {
  name: string;
  args: Record<string, unknown>;
}

interface DeclaredParameters {
  type?: string;
  properties?: Record<string, DeclaredParameters>;
  required?: string[];
  enum?: unknown[];
}

/**
 * The arguments the fake calls a function with, from its declared parameters (the OpenAPI
 * subset Gemini takes): each required property gets its enum's first value, or "fake-<name>"
 * for a string, 1 for a number or an integer, true for a boolean, [] for an array, and the
 * same rules one level down for an object.
 */
export function fakeFunctionArgs(parameters: unknown): Record<string, unknown> {
  const schema = (parameters ?? {}) as DeclaredParameters;
  const args: Record<string, unknown> = {};
  for (const name of schema.required ?? []) {
    const property = schema.properties?.[name] ?? {};
    args[name] = fakeValue(name, property);
  }
  return args;
}

function fakeValue(name: string, property: DeclaredParameters): unknown {
  if (property.enum && property.enum.length > 0) return property.enum[0];
  switch (property.type?.toLowerCase()) {
    case "number":
    case "integer":
      return 1;
    case "boolean":
      return true;
    case "array":
      return [];
    case "object":
      return fakeFunctionArgs(property);
    default:
      return `fake-${name}`;
  }
}

/** The call the fake answers with (see the file comment), or undefined: answer with text. */
function functionCallFor(body: unknown): FakeFunctionCall | undefined {
  const b = body as {
    tools?: Array<{ functionDeclarations?: Array<{ name?: string; parameters?: unknown }> }>;
    toolConfig?: { functionCallingConfig?: { mode?: string } };
    contents?: Array<{ parts?: Array<{ functionResponse?: unknown }> }>;
  } | null;
  const declared = (b?.tools ?? []).flatMap((tool) => tool.functionDeclarations ?? []);
  const first = declared[0];
  if (first?.name === undefined) return undefined;
  if (b?.toolConfig?.functionCallingConfig?.mode?.toUpperCase() === "NONE") return undefined;
  const last = b?.contents?.at(-1);
  if ((last?.parts ?? []).some((part) => part.functionResponse !== undefined)) return undefined;
  return { name: first.name, args: fakeFunctionArgs(first.parameters) };
}

/** A functionCall answer, whole or as a one-chunk stream; billed like text (its words as output). */
function sendFunctionCall(
  exchange: FakeExchange,
  stream: boolean,
  model: string,
  promptTokens: number,
  thoughtsTokens: number,
  call: FakeFunctionCall,
): void {
  if (exchange.closed()) return;
  if (stream && exchange.request.query.alt !== "sse") {
    return sendGoogleError(exchange, 400, "INVALID_ARGUMENT", "the fake only streams with alt=sse");
  }
  const outputTokens = Math.max(1, fakeTokenCount(`${call.name} ${JSON.stringify(call.args)}`));
  const operation = stream ? "streamGenerateContent" : "generateContent";
  bill(exchange, { operation, model, inputTokens: promptTokens, outputTokens: outputTokens + thoughtsTokens });
  const answer = {
    candidates: [
      {
        content: { parts: [{ functionCall: call, thoughtSignature: FAKE_THOUGHT_SIGNATURE }], role: "model" },
        finishReason: "STOP",
        index: 0,
      },
    ],
    usageMetadata: usage(promptTokens, outputTokens, thoughtsTokens),
    modelVersion: model,
    responseId: "fake-response-id",
  };
  if (!stream) return exchange.json(200, answer);
  const { res } = exchange;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.write(`data: ${JSON.stringify(answer)}\r\n\r\n`);
  res.end();
}

function thoughts(thoughtsTokenCount: number) {
  return thoughtsTokenCount > 0 ? { thoughtsTokenCount } : {};
}

function usage(promptTokenCount: number, candidatesTokenCount: number, thoughtsTokenCount: number) {
  return {
    promptTokenCount,
    candidatesTokenCount,
    ...thoughts(thoughtsTokenCount),
    totalTokenCount: promptTokenCount + candidatesTokenCount + thoughtsTokenCount,
  };
}

/**
 * Google's answer to a key of a type it does not take for the call: what standard keys get
 * since the cutoff (seen verbatim in google-gemini/gemini-cli#29275 and the fixes of
 * Kilo-Org/kilocode#12162 and NousResearch/hermes-agent#68285, 2026-07 to 2026-09).
 */
function sendTokenTypeUnsupported(exchange: FakeExchange): void {
  const method = exchange.request.path.endsWith(":streamGenerateContent") ? "StreamGenerateContent" : "GenerateContent";
  sendGoogleError(
    exchange,
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        metadata: {
          service: "generativelanguage.googleapis.com",
          method: `google.ai.generativelanguage.v1beta.GenerativeService.${method}`,
        },
      },
    ],
  );
}

/** Gemini's 404 for a model it does not serve (retired or never existed). */
function sendModelNotFound(exchange: FakeExchange, model: string): void {
  sendGoogleError(
    exchange,
    404,
    "NOT_FOUND",
    `models/${model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`,
  );
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
    case "key-type-unsupported":
      return sendTokenTypeUnsupported(exchange);
    case "service-blocked": {
      // A key restricted to other APIs (as in continuedev/continue#12781, 2026-06).
      const message =
        "Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.GenerativeService.StreamGenerateContent are blocked.";
      return sendGoogleError(exchange, 403, "PERMISSION_DENIED", message, [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "API_KEY_SERVICE_BLOCKED",
          domain: "googleapis.com",
          metadata: { consumer: "projects/000000000000", service: "generativelanguage.googleapis.com" },
        },
        { "@type": "type.googleapis.com/google.rpc.LocalizedMessage", locale: "en-US", message },
      ]);
    }
    case "unrestricted-key":
      // What an unrestricted standard key gets: a bare 403 (google-gemini/gemini-cli#25607).
      return sendGoogleError(exchange, 403, "PERMISSION_DENIED", "The caller does not have permission");
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
          {
            "@type": "type.googleapis.com/google.rpc.Help",
            links: [{ description: "Learn more", url: "https://ai.google.dev/gemini-api/docs/rate-limits" }],
          },
          ...(mode.retryAfterSeconds !== undefined
            ? [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: `${mode.retryAfterSeconds}s` }]
            : []),
        ],
      );
    case 500:
      return sendGoogleError(
        exchange,
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
      );
    case 503:
      return sendGoogleError(exchange, 503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    case 400:
      return sendGoogleError(exchange, 400, "INVALID_ARGUMENT", "Request contains an invalid argument.");
    case 404:
      return sendModelNotFound(exchange, "unknown");
    default: {
      const status = typeof mode.fail === "number" ? mode.fail : 500;
      return sendGoogleError(exchange, status, "UNKNOWN", `fake failure ${status}`);
    }
  }
}

function sendGoogleError(exchange: FakeExchange, code: number, status: string, message: string, details?: unknown[]): void {
  exchange.json(code, { error: { code, message, status, ...(details ? { details } : {}) } });
}
