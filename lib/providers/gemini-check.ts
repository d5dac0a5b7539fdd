/**
 * The Gemini key check behind `validate: true` on the key endpoints. Plain `fetch`, no SDK:
 * key endpoints must not pay for (or load) `@google/generative-ai`. Loaded with a dynamic
 * import by lib/keys/service.ts.
 */
import { AppError, err, ok, type Result } from "../http/errors.js";
import { upstreamCall } from "./abort.js";
import { GEMINI_API_VERSION, GEMINI_DEFAULT_BASE_URL } from "./gemini-endpoint.js";
import { geminiHttpError, mapGeminiFailure } from "./gemini-errors.js";
import { assertSendableKey, trimSlash } from "./upstream.js";

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
  const url = `${trimSlash(options.baseUrl ?? GEMINI_DEFAULT_BASE_URL)}/${GEMINI_API_VERSION}/models?pageSize=1`;
  const call = upstreamCall(options.signal, timeoutMs);
  let finished = false;
  try {
    const response = await fetch(url, { headers: { "x-goog-api-key": apiKey }, signal: call.signal });
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
    const mapped = mapGeminiFailure(error, { apiKey, abortedBy: call.abortedBy, timeoutMs });
    if (mapped instanceof AppError) return err(mapped);
    throw mapped;
  } finally {
    call.end(!finished);
  }
}
