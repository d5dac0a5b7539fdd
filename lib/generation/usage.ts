/**
 * Usage metering: one `usage_events` row per upstream call made with a user's key, so each
 * user can see exactly what their keys paid for ("who pays for what" in the seed).
 */
import { sql, type SQL } from "drizzle-orm";

/**
 * Exa `/search` with contents: USD 7 per 1,000 requests of up to 10 results, text and
 * highlights included (exa.ai/docs/reference/pricing; "Exa Pricing Update", 2026-03-03,
 * exa.ai/docs/changelog/pricing-update). Generation asks for 5 results with highlights, so
 * one search is billed exactly this; what is recorded is Exa's own `costDollars.total`.
 */
export const EXA_SEARCH_PRICE_USD = 0.007;

export interface UsageRecord {
  userId: string;
  provider: "gemini" | "exa";
  operation: string;
  model?: string | null;
  inputTokens?: number;
  outputTokens?: number;
  costUsd: number;
  requestId: string;
  /** The id the server made for the request (stored beside the client's requestId). */
  serverRequestId?: string;
  /** Cut short (the client left, the stream failed): tokens up to that point. */
  partial?: boolean;
  /** Some token counts are estimated (`estimateTokens`), not reported by the provider. */
  tokensEstimated?: boolean;
}

/**
 * A token count estimated from text, for calls the provider never reported on (a stream cut
 * short before its final usageMetadata): Google's rule of thumb, about 4 characters a token.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export interface UsageTotals {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** How many of `requests` were cut short (see UsageRecord.partial); present when any were. */
  partialRequests?: number;
}

export interface UsageSummary {
  userId: string;
  from: string;
  to: string;
  totals: Record<string, UsageTotals>;
  daily: ({ date: string; provider: string } & UsageTotals)[];
}

/** A USD amount rounded to 8 decimals: the precision of `usage_events.cost_usd` (numeric(14, 8)). */
export function roundUsd(n: number): number {
  return Math.round(n * 1e8) / 1e8;
}

/** One row of `usageSummarySql` (one provider on one UTC day), as drivers return it. */
export interface UsageSummaryRow {
  day: string;
  provider: string;
  requests: string | number;
  input_tokens: string | number;
  output_tokens: string | number;
  cost_usd: string | number;
  partial_requests: string | number;
}

/** The caller's usage between two instants [from, to), as rows per UTC day and provider, ordered (`toUsageSummary` sums them). */
export function usageSummarySql(userId: string, range: { from: Date; to: Date }): SQL {
  return sql`
    select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as day, provider,
           count(*) as requests, coalesce(sum(input_tokens), 0) as input_tokens,
           coalesce(sum(output_tokens), 0) as output_tokens, coalesce(sum(cost_usd), 0) as cost_usd,
           count(*) filter (where partial) as partial_requests
    from usage_events
    where user_id = ${userId} and created_at >= ${range.from.toISOString()}::timestamptz and created_at < ${range.to.toISOString()}::timestamptz
    group by 1, 2
    order by 1, 2`;
}

/** `usageSummarySql` rows (in its order) as totals and days. */
export function toUsageSummary(userId: string, range: { from: Date; to: Date }, rows: readonly UsageSummaryRow[]): UsageSummary {
  const totals: Record<string, UsageTotals> = {};
  const daily: UsageSummary["daily"] = [];
  for (const row of rows) {
    const entry: UsageTotals = {
      requests: Number(row.requests),
      inputTokens: Number(row.input_tokens),
      outputTokens: Number(row.output_tokens),
      costUsd: roundUsd(Number(row.cost_usd)),
    };
    const partial = Number(row.partial_requests);
    if (partial > 0) entry.partialRequests = partial;
    daily.push({ date: row.day, provider: row.provider, ...entry });
    const t = (totals[row.provider] ??= { requests: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 });
    t.requests += entry.requests;
    t.inputTokens += entry.inputTokens;
    t.outputTokens += entry.outputTokens;
    t.costUsd = roundUsd(t.costUsd + entry.costUsd);
    if (partial > 0) t.partialRequests = (t.partialRequests ?? 0) + partial;
  }
  return { userId, from: range.from.toISOString(), to: range.to.toISOString(), totals, daily };
}
