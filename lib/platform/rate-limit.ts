/**
 * Per-user rate limits kept in PostgreSQL, so they hold across serverless instances: one
 * fixed one-minute window per (user, bucket), counted by a single upsert on the database's
 * clock (instances' clocks may disagree; the database's is one).
 */
import { sql, type SQL } from "drizzle-orm";
import { AppError } from "../http/errors.js";
import type { Deps } from "./runtime.js";

/**
 * `key-checks`: `validate: true` key saves, counted before the upstream key check whatever it
 * answers (lib/keys/service.ts), so the service is no free oracle for keys found elsewhere.
 */
export type RateLimitBucket = "generate" | "key-writes" | "key-checks" | "gateway";
export const WINDOW_SECONDS = 60;

/**
 * Typing edits of a saved key (one character added or removed at its end: ALwrity's form
 * auto-saves on every keystroke) count in their own bucket with this ceiling instead of
 * `key-writes`: no person types ten characters a second for a minute, a script does.
 */
export const KEY_EDITS_PER_MINUTE = 600;

/** The per-minute limits as configured (lib/platform/env.ts `Config.rateLimits`). */
export interface RateLimits {
  generatePerMinute: number;
  keyWritesPerMinute: number;
  keyChecksPerMinute: number;
  /** Calls through the gateway (lib/gateway), per user. */
  gatewayPerMinute: number;
}

/** The per-minute limit of `bucket` (0: no limit). */
export function limitFor(rateLimits: RateLimits, bucket: RateLimitBucket): number {
  if (bucket === "gateway") return rateLimits.gatewayPerMinute;
  return bucket === "generate"
    ? rateLimits.generatePerMinute
    : bucket === "key-checks"
      ? rateLimits.keyChecksPerMinute
      : rateLimits.keyWritesPerMinute;
}

/**
 * The window to show in the RateLimit headers of a request counted in two buckets: the one
 * with fewer requests left (`first` on a tie; null: that bucket is off or was not counted).
 */
export function tighterRateLimit(first: RateLimitState | null, second: RateLimitState | null): RateLimitState | null {
  if (!first) return second;
  if (!second) return first;
  return second.remaining < first.remaining ? second : first;
}

/**
 * `error` with the RateLimit headers of `state` added (an error answered after the request
 * was counted, e.g. a key the provider refused). Not on a provider's own 429, which keeps
 * only its Retry-After: RateLimit headers on a 429 mean this service's limit.
 */
export function errorWithRateLimit<E>(error: E, state: RateLimitState | null): E {
  if (state && error instanceof AppError && error.code !== "rate-limited") Object.assign(error.headers, rateLimitHeaders(state));
  return error;
}

/** `response` with the RateLimit headers of `state` (for handlers that count their own limit; null: limits off). */
export function withRateLimit(response: Response, state: RateLimitState | null): Response {
  if (state) for (const [name, value] of Object.entries(rateLimitHeaders(state))) response.headers.set(name, value);
  return response;
}

/** The 429 for a window past its limit (Retry-After and RateLimit headers; the body gets retry_after). */
export function rateLimitedError(bucket: RateLimitBucket | "key-edits", state: RateLimitState): AppError {
  const what =
    bucket === "generate"
      ? "generations"
      : bucket === "key-edits"
        ? "edits of a saved key"
        : bucket === "key-checks"
          ? "key checks (validate: true)"
          : bucket === "gateway"
            ? "gateway calls"
            : "key changes";
  return new AppError("rate-limited", {
    detail: `at most ${state.limit} ${what} per minute; try again in ${state.resetSeconds} s`,
    headers: { "retry-after": String(state.resetSeconds), ...rateLimitHeaders(state) },
  });
}

export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

export function rateLimitHeaders(state: RateLimitState): Record<string, string> {
  return {
    ratelimit: `limit=${state.limit}, remaining=${state.remaining}, reset=${state.resetSeconds}`,
    "ratelimit-policy": `${state.limit};w=${WINDOW_SECONDS}`,
  };
}

/**
 * The upsert that counts one request of `userId` in `bucket`, returning `count` and `reset`
 * (seconds): a statement alone, or a CTE of a bigger one (the generation's first statement,
 * lib/generation/start.ts, counts it in the same round trip as the key read and the budget).
 * With `when` (SQL, boolean), the request is counted only when it holds (the gateway counts
 * a service credential's call only once the credential checked out in the same statement).
 */
export function rateLimitCountSql(userId: string, bucket: RateLimitBucket, when?: SQL): SQL {
  return sql`
    insert into rate_limits as r (user_id, bucket, window_start, count)
    ${when ? sql`select ${userId}, ${bucket}, date_trunc('minute', now()), 1 where ${when}` : sql`values (${userId}, ${bucket}, date_trunc('minute', now()), 1)`}
    on conflict (user_id, bucket) do update set
      count = case when r.window_start = excluded.window_start then r.count + 1 else 1 end,
      window_start = excluded.window_start
    returning count, ceil(extract(epoch from (window_start + interval '${sql.raw(String(WINDOW_SECONDS))} seconds' - now())))::int as reset`;
}

/**
 * The state after counting (`row` from `rateLimitCountSql`); throws 429 rate-limited (with
 * Retry-After and RateLimit headers) past the limit.
 */
export function rateLimitState(
  deps: Pick<Deps, "logger">,
  input: { userId: string; bucket: RateLimitBucket; limit: number; row: { count: unknown; reset: unknown } | undefined },
): RateLimitState {
  const { limit, row, bucket } = input;
  const used = Number(row?.count ?? 1);
  const state: RateLimitState = {
    limit,
    remaining: Math.max(0, limit - used),
    resetSeconds: Math.max(1, Number(row?.reset ?? WINDOW_SECONDS)),
  };
  if (used > limit) {
    deps.logger.info("rate limited", { userId: input.userId, bucket, limit });
    throw rateLimitedError(bucket, state);
  }
  return state;
}
