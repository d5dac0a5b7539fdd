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
import { geminiKeyKind } from "./registry.js";
import { keyRejectionReasons, type KeyRejectionReason } from "./rejections.js";
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
  const upstreamReasons = errorInfoReasons(details);
  const reason = geminiRejectionReason(status, upstreamReasons, failure.upstreamMessage, failure.apiKey);
  if (reason !== undefined) {
    const upstreamReason = upstreamReasons.find((r) => /^[A-Z_]{3,64}$/.test(r));
    return new AppError("provider-rejected-key", {
      detail: `gemini rejected the saved API key (HTTP ${status}${upstreamReason ? ` ${upstreamReason}` : ""}): ${keyRejectionReasons[reason]}`,
      action: "POST /api/onboarding/api-keys",
      extra: { provider: "gemini", upstreamStatus: status, reason },
      cause,
    });
  }
  const extra = { provider: "gemini", upstreamStatus: status };
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
    // The model is retired or unknown (ai.google.dev/gemini-api/docs/deprecations): the
    // operator's configuration, never the user's key.
    return new AppError("model-unavailable", {
      detail: `gemini does not serve the model ${failure.model ? `"${failure.model}"` : "requested"} (HTTP 404: retired or unknown); the operator must set GEMINI_MODEL to a current model`,
      extra: { ...extra, ...(failure.model ? { model: failure.model } : {}) },
      cause,
    });
  }
  return new AppError("upstream-unavailable", {
    detail: status >= 500 ? `gemini is unavailable (HTTP ${status}); try again later` : `gemini refused the request (HTTP ${status})`,
    extra,
    cause,
  });
}

/**
 * Why Gemini refused the key, or undefined when the answer says nothing about the key. From
 * Google's documented answers (docs/provider-facts.md, read 2026-12-07):
 * - 400 `API_KEY_INVALID`: an unknown or malformed key;
 * - 401 `ACCESS_TOKEN_TYPE_UNSUPPORTED` ("Expected OAuth 2 access token…"): the answer to
 *   standard keys Google no longer takes, and to keys of a type a method does not accept;
 * - 403 `API_KEY_SERVICE_BLOCKED` (restricted to other APIs), `CONSUMER_SUSPENDED` (suspended,
 *   often leaked), and a bare 403 for an unrestricted standard key.
 */
function geminiRejectionReason(
  status: number,
  reasons: readonly string[],
  message: string,
  apiKey: string,
): KeyRejectionReason | undefined {
  const standard = geminiKeyKind(apiKey) === "standard";
  if (reasons.includes("API_KEY_INVALID") || (status === 400 && reasons.some((r) => r.startsWith("API_KEY_")))) return "key-invalid";
  if (status === 401) {
    const typeRefused = reasons.includes("ACCESS_TOKEN_TYPE_UNSUPPORTED") || message.includes("Expected OAuth 2 access token");
    if (standard) return "standard-key-retired";
    return typeRefused ? "key-type-unsupported" : "key-rejected";
  }
  if (status === 403) {
    if (reasons.includes("API_KEY_SERVICE_BLOCKED")) return "key-service-blocked";
    if (reasons.includes("CONSUMER_SUSPENDED") || reasons.includes("API_KEY_SUSPENDED")) return "key-suspended";
    return standard ? "key-unrestricted" : "key-rejected";
  }
  return undefined;
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
