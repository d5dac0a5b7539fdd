/**
 * Gemini through `@google/generative-ai`, always with the caller's own key: every client is
 * built for one key and one call site, never process-wide, and nothing here reads the
 * environment. Upstream failures become `AppError`s (see `mapGeminiFailure`); an abort by
 * the caller's signal is rethrown as a plain `AbortError` so request cancellation stays
 * distinguishable from upstream trouble.
 *
 * The SDK's own `timeout` option is not used: it arms a `setTimeout` that is never cleared
 * (it keeps the event loop alive after the call) and cannot tell a timeout from a caller
 * abort. Each call instead gets one AbortController fed by our timer and the caller's signal.
 */
import {
  GoogleGenerativeAI,
  GoogleGenerativeAIFetchError,
  GoogleGenerativeAIRequestInputError,
  type GenerateContentResponse,
  type GenerateContentRequest,
  type GenerationConfig,
} from "@google/generative-ai";
import { AppError, err, ok, type Result } from "../http/errors.js";
import { abortError, assertSendableKey, DEFAULT_RETRY_AFTER_SECONDS, parseRetryAfter, scrub, trimSlash } from "./upstream.js";

export const GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com";
const API_VERSION = "v1beta";

export interface GeminiConfig {
  /** The user's Gemini key; sent only as the `x-goog-api-key` header. */
  apiKey: string;
  /** e.g. "gemini-2.5-flash" (a "models/" prefix is optional). */
  model: string;
  /** Defaults to https://generativelanguage.googleapis.com (tests point it at a fake). */
  baseUrl?: string;
  /**
   * Upstream inactivity limit: the longest wait for the response to start and, when
   * streaming, between two chunks. Time the consumer spends between `next()` calls does not
   * count. Exceeding it aborts the request and throws `upstream-timeout`.
   */
  timeoutMs: number;
}

export interface GeminiTextRequest {
  systemInstruction?: string;
  prompt: string;
  /** The caller's signal (e.g. the client disconnecting); aborting it throws an AbortError. */
  signal?: AbortSignal;
  generationConfig?: Pick<GenerationConfig, "maxOutputTokens" | "temperature" | "topP" | "topK">;
}

/** Token counts as Google reports them; thinking tokens are billed as output. */
export interface GeminiUsage {
  promptTokenCount: number;
  candidatesTokenCount: number;
  totalTokenCount: number;
  /** Gemini 2.5 "thinking" tokens, when reported (billed at the output rate). */
  thoughtsTokenCount?: number;
}

export interface GeminiOutcome {
  text: string;
  /** Undefined when the upstream sent no usageMetadata. */
  usage: GeminiUsage | undefined;
  /** "STOP" normally; "MAX_TOKENS", "SAFETY", "RECITATION"… otherwise. */
  finishReason: string | undefined;
  /** Set when the prompt itself was blocked (then there is no text). */
  blockReason: string | undefined;
  model: string;
}

/**
 * Text deltas as they arrive. The request starts on the first `next()`; breaking out of the
 * loop aborts it. Single use. After the loop ends normally `final` holds the outcome.
 */
export interface GeminiTextStream extends AsyncIterable<string> {
  readonly final: GeminiOutcome | undefined;
}

export interface GeminiClient {
  readonly model: string;
  streamText(request: GeminiTextRequest): GeminiTextStream;
  generateText(request: GeminiTextRequest): Promise<GeminiOutcome>;
}

/** Builds a client bound to one user's key. Cheap: build one per request. */
export function createGemini(config: GeminiConfig): GeminiClient {
  assertSendableKey(config.apiKey, "gemini");
  const modelName = config.model.replace(/^models\//, "");
  const baseUrl = trimSlash(config.baseUrl ?? GEMINI_DEFAULT_BASE_URL);
  const genAI = new GoogleGenerativeAI(config.apiKey);
  const getModel = (request: GeminiTextRequest) =>
    genAI.getGenerativeModel(
      {
        model: modelName,
        ...(request.systemInstruction ? { systemInstruction: request.systemInstruction } : {}),
        ...(request.generationConfig ? { generationConfig: request.generationConfig } : {}),
      },
      { baseUrl, apiVersion: API_VERSION },
    );
  const contents = (request: GeminiTextRequest): GenerateContentRequest => ({
    contents: [{ role: "user", parts: [{ text: request.prompt }] }],
  });
  const fail = (error: unknown, scope: CallScope): never => {
    throw mapGeminiFailure(error, { apiKey: config.apiKey, abortedBy: scope.abortedBy, timeoutMs: config.timeoutMs, model: modelName });
  };

  return {
    model: modelName,

    streamText(request) {
      let final: GeminiOutcome | undefined;
      let started = false;
      async function* run(): AsyncGenerator<string, void, undefined> {
        const scope = callScope(request.signal, config.timeoutMs);
        const acc = new OutcomeBuilder(modelName);
        let finished = false;
        try {
          scope.arm();
          const result = await getModel(request).generateContentStream(contents(request), { signal: scope.signal });
          // The SDK tees the body into `stream` and this aggregate promise; its failures
          // also surface through `stream`, so only keep it from becoming unhandled.
          result.response.catch(() => undefined);
          for await (const chunk of result.stream) {
            const text = acc.add(chunk);
            if (text) {
              scope.pause();
              yield text;
              // The caller may have aborted while holding the chunk; SDK may still have some buffered.
              if (scope.abortedBy) fail(undefined, scope);
              scope.arm();
            }
          }
          final = acc.build();
          finished = true;
        } catch (error) {
          fail(error, scope);
        } finally {
          // Early `break`/`return` by the consumer, or an error: stop the upstream request.
          scope.dispose(!finished);
        }
      }
      return {
        get final() {
          return final;
        },
        [Symbol.asyncIterator]() {
          if (started) throw new Error("a GeminiTextStream can be iterated only once");
          started = true;
          return run();
        },
      };
    },

    async generateText(request) {
      const scope = callScope(request.signal, config.timeoutMs);
      let finished = false;
      try {
        scope.arm();
        const { response } = await getModel(request).generateContent(contents(request), { signal: scope.signal });
        const acc = new OutcomeBuilder(modelName);
        acc.add(response);
        finished = true;
        return acc.build();
      } catch (error) {
        return fail(error, scope);
      } finally {
        scope.dispose(!finished);
      }
    },
  };
}

export interface GeminiKeyCheck {
  /** Name of the one model listed, e.g. "models/gemini-2.5-flash". */
  sampleModel: string | undefined;
}

/**
 * Checks a key with a free call (`GET /v1beta/models?pageSize=1`; the SDK has no list call).
 * Returns `provider-rejected-key` for a key Google refuses, `rate-limited`,
 * `upstream-unavailable` or `upstream-timeout` when the answer says nothing about the key.
 * A caller abort throws an AbortError.
 */
export async function checkGeminiKey(
  apiKey: string,
  options: { baseUrl?: string; signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<Result<GeminiKeyCheck>> {
  assertSendableKey(apiKey, "gemini");
  const timeoutMs = options.timeoutMs ?? 10_000;
  const url = `${trimSlash(options.baseUrl ?? GEMINI_DEFAULT_BASE_URL)}/${API_VERSION}/models?pageSize=1`;
  const scope = callScope(options.signal, timeoutMs);
  let finished = false;
  try {
    scope.arm();
    const response = await fetch(url, { headers: { "x-goog-api-key": apiKey }, signal: scope.signal });
    const body: unknown = await response.json().catch(() => undefined);
    finished = true;
    if (response.ok) {
      const models = (body as { models?: Array<{ name?: unknown }> } | undefined)?.models;
      const name = models?.[0]?.name;
      return ok({ sampleModel: typeof name === "string" ? name : undefined });
    }
    const error = (body as { error?: { message?: unknown; details?: unknown } } | undefined)?.error;
    return err(
      geminiHttpError({
        status: response.status,
        details: Array.isArray(error?.details) ? error.details : undefined,
        retryAfterHeader: response.headers.get("retry-after"),
        upstreamMessage: typeof error?.message === "string" ? error.message : "",
        apiKey,
      }),
    );
  } catch (error) {
    const mapped = mapGeminiFailure(error, { apiKey, abortedBy: scope.abortedBy, timeoutMs });
    if (mapped instanceof AppError) return err(mapped);
    throw mapped;
  } finally {
    scope.dispose(!finished);
  }
}

/** True for the error thrown when the caller's own signal aborted a call. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

/**
 * Turns anything a Gemini call threw into what we throw: an `AppError` for upstream
 * failures, an AbortError for a caller abort, and programming errors unchanged.
 */
export function mapGeminiFailure(
  error: unknown,
  context: { apiKey: string; abortedBy: AbortCause | undefined; timeoutMs: number; model?: string },
): Error {
  // Once our controller fired, whatever the SDK wrapped it in is just the abort.
  if (context.abortedBy === "caller") return abortError();
  if (context.abortedBy === "timeout") {
    return new AppError("upstream-timeout", {
      detail: `gemini did not respond within ${context.timeoutMs} ms; try again`,
      extra: { provider: "gemini" },
    });
  }
  if (error instanceof AppError) return error;
  if (error instanceof GoogleGenerativeAIFetchError) {
    return geminiHttpError({
      status: error.status ?? 0,
      details: error.errorDetails,
      retryAfterHeader: null,
      upstreamMessage: error.message,
      apiKey: context.apiKey,
      model: context.model,
    });
  }
  if (error instanceof GoogleGenerativeAIRequestInputError) return error;
  // Network failures ("Error fetching from …"), broken or unparsable streams.
  return new AppError("upstream-unavailable", {
    detail: "could not reach gemini or its answer was cut off; try again later",
    extra: { provider: "gemini" },
    cause: scrubbedCause(error, context.apiKey),
  });
}

interface GeminiHttpFailure {
  status: number;
  details: unknown[] | undefined;
  retryAfterHeader: string | null;
  upstreamMessage: string;
  apiKey: string;
  model?: string;
}

/** One place for the upstream status → AppError mapping (SDK errors and `checkGeminiKey`). */
function geminiHttpError(failure: GeminiHttpFailure): AppError {
  const { status, details } = failure;
  const cause = new Error(scrub(`gemini answered HTTP ${status}: ${failure.upstreamMessage}`, failure.apiKey));
  const extra = { provider: "gemini", upstreamStatus: status };
  const keyReason = errorInfoReasons(details).find((reason) => reason.startsWith("API_KEY_"));
  // Google answers an unknown or malformed key with 400 API_KEY_INVALID, a suspended or
  // restricted one with 403, and 401 for bad credentials in general.
  if (status === 401 || status === 403 || (status === 400 && keyReason !== undefined)) {
    return new AppError("provider-rejected-key", {
      detail: `gemini rejected the saved API key (HTTP ${status}${keyReason ? ` ${keyReason}` : ""}); save a working key`,
      action: "POST /api/onboarding/api-keys",
      extra,
      cause,
    });
  }
  if (status === 429) {
    const seconds = retryDelaySeconds(details) ?? parseRetryAfter(failure.retryAfterHeader) ?? DEFAULT_RETRY_AFTER_SECONDS;
    return new AppError("rate-limited", {
      detail: `gemini rate limit or quota reached for this API key; retry after ${seconds} s`,
      headers: { "Retry-After": String(seconds) },
      extra,
      cause,
    });
  }
  if (status === 504) {
    return new AppError("upstream-timeout", { detail: "gemini timed out (HTTP 504); try again", extra, cause });
  }
  if (status === 404) {
    return new AppError("upstream-unavailable", {
      detail: `gemini does not know the model ${failure.model ? `"${failure.model}"` : "requested"} (HTTP 404); the operator must fix GEMINI_MODEL`,
      extra,
      cause,
    });
  }
  return new AppError("upstream-unavailable", {
    detail: status >= 500 ? `gemini is unavailable (HTTP ${status}); try again later` : `gemini refused the request (HTTP ${status})`,
    extra,
    cause,
  });
}

/** `reason` of every google.rpc.ErrorInfo in an error's details. */
function errorInfoReasons(details: unknown[] | undefined): string[] {
  const reasons: string[] = [];
  for (const detail of details ?? []) {
    const reason = (detail as { reason?: unknown } | null)?.reason;
    if (typeof reason === "string") reasons.push(reason);
  }
  return reasons;
}

/** google.rpc.RetryInfo.retryDelay ("37s", "0.5s") rounded up to whole seconds. */
function retryDelaySeconds(details: unknown[] | undefined): number | undefined {
  for (const detail of details ?? []) {
    const d = detail as { "@type"?: unknown; retryDelay?: unknown } | null;
    if (typeof d?.retryDelay !== "string") continue;
    const match = /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay.trim());
    if (match) return Math.max(1, Math.ceil(Number(match[1])));
  }
  return undefined;
}


/** Accumulates chunks (or one whole response) into the final outcome. */
class OutcomeBuilder {
  private readonly texts: string[] = [];
  private usage: GeminiUsage | undefined;
  private finishReason: string | undefined;
  private blockReason: string | undefined;

  constructor(private readonly model: string) {}

  /** Returns the chunk's visible text. Reads parts directly: the SDK's `text()` throws on a SAFETY finish. */
  add(chunk: GenerateContentResponse): string {
    const candidate = chunk.candidates?.[0];
    let text = "";
    for (const part of candidate?.content?.parts ?? []) {
      const maybeThought = part as { text?: unknown; thought?: unknown };
      if (typeof maybeThought.text === "string" && maybeThought.thought !== true) text += maybeThought.text;
    }
    if (candidate?.finishReason) this.finishReason = candidate.finishReason;
    if (chunk.promptFeedback?.blockReason) this.blockReason = chunk.promptFeedback.blockReason;
    const usage = chunk.usageMetadata as (GeminiUsage & Record<string, unknown>) | undefined;
    if (usage) {
      // Streams repeat usageMetadata with running totals; the last one is final.
      this.usage = {
        promptTokenCount: usage.promptTokenCount ?? 0,
        candidatesTokenCount: usage.candidatesTokenCount ?? 0,
        totalTokenCount: usage.totalTokenCount ?? 0,
        ...(typeof usage.thoughtsTokenCount === "number" ? { thoughtsTokenCount: usage.thoughtsTokenCount } : {}),
      };
    }
    if (text) this.texts.push(text);
    return text;
  }

  build(): GeminiOutcome {
    return {
      text: this.texts.join(""),
      usage: this.usage,
      finishReason: this.finishReason,
      blockReason: this.blockReason,
      model: this.model,
    };
  }
}

type AbortCause = "timeout" | "caller";

interface CallScope {
  readonly signal: AbortSignal;
  readonly abortedBy: AbortCause | undefined;
  /** (Re)starts the inactivity timer. */
  arm(): void;
  /** Stops the timer while the consumer holds a chunk. */
  pause(): void;
  /** Clears timer and listener; aborts the request when it did not finish. */
  dispose(abortRequest: boolean): void;
}

/** One AbortController per call, fired by our timer or the caller's signal, remembering which. */
function callScope(callerSignal: AbortSignal | undefined, timeoutMs: number): CallScope {
  if (callerSignal?.aborted) throw abortError();
  const controller = new AbortController();
  let abortedBy: AbortCause | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onCallerAbort = () => {
    abortedBy ??= "caller";
    controller.abort();
  };
  callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
  const pause = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  return {
    signal: controller.signal,
    get abortedBy() {
      return abortedBy;
    },
    arm() {
      pause();
      timer = setTimeout(() => {
        abortedBy ??= "timeout";
        controller.abort();
      }, timeoutMs);
    },
    pause,
    dispose(abortRequest) {
      pause();
      callerSignal?.removeEventListener("abort", onCallerAbort);
      if (abortRequest && !controller.signal.aborted) controller.abort();
    },
  };
}




function scrubbedCause(error: unknown, apiKey: string): Error {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new Error(scrub(message, apiKey));
}

