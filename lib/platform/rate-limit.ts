/**
 * Per-user rate limits kept in PostgreSQL, so they hold across serverless instances: one
 * fixed one-minute window per (user, bucket), counted by a single upsert on the database's
 * clock (instances' clocks may disagree; the database's is one).
 */
import { sql, type SQL } from "drizzle-orm";
import { AppError } from "../http/errors.js";
import type { Deps } from "./runtime.js";

export type RateLimitBucket = "generate" | "key-writes";
export const WINDOW_SECONDS = 60;

/**
 * Typing edits of a saved key (one character added or removed at its end: ALwrity's form
 * auto-saves on every keystroke) count in their own bucket with this ceiling instead of
 * `key-writes`: no person types ten characters a second for a minute, a script does.
 */
export const KEY_EDITS_PER_MINUTE = 600;

/** The per-minute limit of `bucket` (0: no limit). */
export function limitFor(rateLimits: { generatePerMinute: number; keyWritesPerMinute: number }, bucket: RateLimitBucket): number {
  return bucket === "generate" ? rateLimits.generatePerMinute : rateLimits.keyWritesPerMinute;
}

/** `response` with the RateLimit headers of `state` (for handlers that count their own limit; null: limits off). */
export function withRateLimit(response: Response, state: RateLimitState | null): Response {
  if (state) for (const [name, value] of Object.entries(rateLimitHeaders(state))) response.headers.set(name, value);
  return response;
}

/** The 429 for a window past its limit (Retry-After and RateLimit headers; the body gets retry_after). */
export function rateLimitedError(bucket: RateLimitBucket | "key-edits", state: RateLimitState): AppError {
  const what = bucket === "generate" ? "generations" : bucket === "key-edits" ? "edits of a saved key" : "key changes";
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
 */
export function rateLimitCountSql(userId: string, bucket: RateLimitBucket): SQL {
  return sql`
    insert into rate_limits as r (user_id, bucket, window_start, count)
    values (${userId}, ${bucket}, date_trunc('minute', now()), 1)
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
