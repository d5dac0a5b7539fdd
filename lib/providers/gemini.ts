/**
 * Gemini through `@google/generative-ai`, always with the caller's own key: every client is
 * built for one key and one call site, never process-wide, and nothing here reads the
 * environment. Upstream failures become `AppError`s (see `mapGeminiFailure`); an abort by
 * the caller's signal is rethrown as a plain `AbortError` so request cancellation stays
 * distinguishable from upstream trouble.
 *
 * The SDK's own `timeout` option is not used: it arms a `setTimeout` that is never cleared
 * (it keeps the event loop alive after the call) and cannot tell a timeout from a caller
 * abort. Each call instead gets one signal from `upstreamCall` (abort.ts), fed by our
 * timeout and the caller's signal.
 *
 * The key check is in gemini-check.ts and the failure mapping in gemini-errors.ts; neither
 * loads the SDK.
 */
import {
  GoogleGenerativeAI,
  GoogleGenerativeAIFetchError,
  GoogleGenerativeAIRequestInputError,
  type GenerateContentResponse,
  type GenerateContentRequest,
  type GenerationConfig,
} from "@google/generative-ai";
import { upstreamCall, type UpstreamCall } from "./abort.js";
import { GEMINI_API_VERSION, GEMINI_DEFAULT_BASE_URL } from "./gemini-endpoint.js";
import { geminiHttpError, mapGeminiFailure, type GeminiFailureContext } from "./gemini-errors.js";
import { assertSendableKey, trimSlash } from "./upstream.js";

export { GEMINI_DEFAULT_BASE_URL };

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

/** What a stream had received when it was read last, whether it ended, failed or was aborted. */
export interface GeminiStreamProgress {
  /** The request left for Gemini (it may bill a call it answers only after we gave up). */
  sent: boolean;
  /** Gemini answered 200 and began streaming: from then on it bills the call, finished or not. */
  accepted: boolean;
  /** The visible text received so far. */
  text: string;
  /**
   * The last `usageMetadata` received, counts as sent: a stream reports the prompt's count
   * early and the output's only at the end, so a cut-short stream usually lacks the latter.
   */
  lastUsage: { promptTokenCount?: number; candidatesTokenCount?: number; thoughtsTokenCount?: number } | undefined;
}

/**
 * Text deltas as they arrive. The request starts on the first `next()`; breaking out of the
 * loop aborts it. Single use. After the loop ends normally `final` holds the outcome;
 * `progress` tells what had arrived at any time, also after an abort or a failure.
 */
export interface GeminiTextStream extends AsyncIterable<string> {
  readonly final: GeminiOutcome | undefined;
  readonly progress: GeminiStreamProgress;
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
      { baseUrl, apiVersion: GEMINI_API_VERSION },
    );
  const contents = (request: GeminiTextRequest): GenerateContentRequest => ({
    contents: [{ role: "user", parts: [{ text: request.prompt }] }],
  });
  const fail = (error: unknown, call: UpstreamCall): never => {
    throw mapSdkFailure(error, { apiKey: config.apiKey, abortedBy: call.abortedBy, timeoutMs: config.timeoutMs, model: modelName });
  };

  return {
    model: modelName,

    streamText(request) {
      let final: GeminiOutcome | undefined;
      let started = false;
      let sent = false;
      let accepted = false;
      const acc = new OutcomeBuilder(modelName);
      async function* run(): AsyncGenerator<string, void, undefined> {
        // Inactivity limit: the clock runs only while we wait for the upstream.
        const call = upstreamCall(request.signal, config.timeoutMs);
        let finished = false;
        try {
          // An already aborted signal sends nothing: fetch rejects before any byte leaves.
          sent = !call.signal.aborted;
          const result = await getModel(request).generateContentStream(contents(request), { signal: call.signal });
          // The SDK returns once Gemini answered 200 (it throws on any other status).
          accepted = true;
          // The SDK tees the body into `stream` and this aggregate promise; its failures
          // also surface through `stream`, so only keep it from becoming unhandled.
          result.response.catch(() => undefined);
          for await (const chunk of result.stream) {
            const text = acc.add(chunk);
            if (text) {
              call.pause();
              yield text;
              // The caller may have aborted while holding the chunk; SDK may still have some buffered.
              if (call.abortedBy) fail(undefined, call);
              call.resume();
            }
          }
          final = acc.build();
          finished = true;
        } catch (error) {
          fail(error, call);
        } finally {
          // Early `break`/`return` by the consumer, or an error: stop the upstream request.
          call.end(!finished);
        }
      }
      return {
        get final() {
          return final;
        },
        get progress() {
          return { sent, accepted, text: acc.text(), lastUsage: acc.lastUsage() };
        },
        [Symbol.asyncIterator]() {
          if (started) throw new Error("a GeminiTextStream can be iterated only once");
          started = true;
          return run();
        },
      };
    },

    async generateText(request) {
      const call = upstreamCall(request.signal, config.timeoutMs);
      let finished = false;
      try {
        const { response } = await getModel(request).generateContent(contents(request), { signal: call.signal });
        const acc = new OutcomeBuilder(modelName);
        acc.add(response);
        finished = true;
        return acc.build();
      } catch (error) {
        return fail(error, call);
      } finally {
        call.end(!finished);
      }
    },
  };
}

/**
 * `mapGeminiFailure` plus the SDK's own error classes, recognised here so that
 * gemini-errors.ts (and the key check using it) never loads the SDK. An abort wins over
 * whatever the SDK wrapped it in.
 */
function mapSdkFailure(error: unknown, context: GeminiFailureContext): Error {
  if (context.abortedBy === undefined) {
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
  }
  return mapGeminiFailure(error, context);
}

/** Accumulates chunks (or one whole response) into the final outcome. */
class OutcomeBuilder {
  private readonly texts: string[] = [];
  private usage: GeminiUsage | undefined;
  private rawUsage: GeminiStreamProgress["lastUsage"];
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
      this.rawUsage = {
        ...(typeof usage.promptTokenCount === "number" ? { promptTokenCount: usage.promptTokenCount } : {}),
        ...(typeof usage.candidatesTokenCount === "number" ? { candidatesTokenCount: usage.candidatesTokenCount } : {}),
        ...(typeof usage.thoughtsTokenCount === "number" ? { thoughtsTokenCount: usage.thoughtsTokenCount } : {}),
      };
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

  text(): string {
    return this.texts.join("");
  }

  lastUsage(): GeminiStreamProgress["lastUsage"] {
    return this.rawUsage;
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
