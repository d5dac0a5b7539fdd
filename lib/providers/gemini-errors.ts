/**
 * Gemini failures → what we throw: an `AppError` for upstream trouble, an AbortError for a
 * caller abort, programming errors unchanged. One status mapping (`geminiHttpError`) serves
 * the SDK's errors and the key check's plain `fetch`.
 *
 * This file does not import the SDK, so the key check (gemini-check.ts) never loads it: the
 * SDK's own error classes are recognised in gemini.ts, which passes their status and details
 * to `geminiHttpError`.
 */
import { AppError } from "../http/errors.js";
import { abortFailure, type AbortCause } from "./abort.js";
import { DEFAULT_RETRY_AFTER_SECONDS, parseRetryAfter, scrub } from "./upstream.js";

export interface GeminiFailureContext {
  apiKey: string;
  abortedBy: AbortCause | undefined;
  timeoutMs: number;
  model?: string;
}

/**
 * Maps what a Gemini call threw when it is not one of the SDK's HTTP or input errors (see
 * the file comment): the abort, an `AppError` as is, anything else as `upstream-unavailable`.
 */
export function mapGeminiFailure(error: unknown, context: GeminiFailureContext): Error {
  // Once our signal fired, whatever the SDK or fetch wrapped it in is just the abort.
  const aborted = abortFailure(context.abortedBy, "gemini", context.timeoutMs);
  if (aborted) return aborted;
  if (error instanceof AppError) return error;
  // Network failures ("Error fetching from …"), broken or unparsable streams.
  return new AppError("upstream-unavailable", {
    detail: "could not reach gemini or its answer was cut off; try again later",
    extra: { provider: "gemini" },
    cause: scrubbedCause(error, context.apiKey),
  });
}

export interface GeminiHttpFailure {
  status: number;
  details: unknown[] | undefined;
  retryAfterHeader: string | null;
  upstreamMessage: string;
  apiKey: string;
  model?: string;
}

/** One place for the upstream status → AppError mapping (SDK errors and `checkGeminiKey`). */
export function geminiHttpError(failure: GeminiHttpFailure): AppError {
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

function scrubbedCause(error: unknown, apiKey: string): Error {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new Error(scrub(message, apiKey));
}
