/**
 * What the Gemini and Exa clients share: key checks before sending, Retry-After, scrubbing.
 * Aborts and timeouts are in abort.ts.
 */
import { AppError } from "../http/errors.js";
import { redact, truncate } from "../platform/log.js";

/** Seconds advertised in Retry-After when the upstream says nothing. */
export const DEFAULT_RETRY_AFTER_SECONDS = 30;

/**
 * Refuses a key before any request: an empty one (an SDK may fall back to the operator's
 * environment) and one a header cannot carry (`Headers` would throw a TypeError quoting it).
 */
export function assertSendableKey(apiKey: string, provider: "gemini" | "exa"): void {
  if (!apiKey) {
    throw new AppError("missing-provider-key", {
      detail: `no ${provider} key saved for this user; POST /api/onboarding/api-keys`,
      action: "POST /api/onboarding/api-keys",
      extra: { provider },
    });
  }
  if (!/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new AppError("invalid-key-format", {
      detail: `the saved ${provider} key contains characters that cannot be sent; save it again`,
      action: "POST /api/onboarding/api-keys",
      extra: { provider },
    });
  }
}

/** Retry-After as seconds (delta-seconds or an HTTP date), at least 1. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Math.max(1, Number(trimmed));
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(1, Math.ceil((date - Date.now()) / 1000));
}

/** Longest upstream text kept (an error body can be arbitrarily long). */
const MAX_UPSTREAM_TEXT = 2_000;

/** Removes the key (and anything key-shaped) from upstream text before it goes anywhere; cut to 2,000 characters. */
export function scrub(text: string, apiKey: string): string {
  return redact(truncate(apiKey ? text.split(apiKey).join("[redacted]") : text, MAX_UPSTREAM_TEXT));
}

/** `url` without its trailing slashes (a scan: linear whatever the input). */
export function trimSlash(url: string): string {
  let end = url.length;
  while (end > 0 && url[end - 1] === "/") end--;
  return url.slice(0, end);
}
