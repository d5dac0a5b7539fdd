/**
 * What a gateway call may cost at most, from the request alone: the amount reserved against
 * the caller's monthly cap before the upstream call (lib/generation/budget.ts). The charge is
 * then what the provider reported (Gemini's usageMetadata priced by lib/providers/prices.ts;
 * Exa's `costDollars.total`), or this bound when it reported nothing or the call was cut short
 * (the partial-call rule of lib/generation/generate.ts).
 */
import { geminiCostUsd, type PriceOverride } from "../providers/prices.js";
import type { ExaOperation } from "./schemas.js";

/** The output bound of a call that sets none, and the most a call may ask for (larger values are clamped). */
export const GATEWAY_MAX_OUTPUT_TOKENS = 8_192;

/**
 * Gemini: every byte of the body as an input token (SentencePiece never makes more tokens than
 * UTF-8 bytes of text, and the JSON around the text only adds bytes), and `maxOutputTokens`
 * as output (thinking included: Gemini bills thinking as output, and on Gemini 3.x it is observed to
 * count against `maxOutputTokens` — docs/provider-facts.md, "Thinking tokens and maxOutputTokens":
 * observed in bug reports, not stated by Google's thinking docs, read 2026-12-07).
 */
export function geminiWorstCaseUsd(model: string, bodyBytes: number, maxOutputTokens: number, override?: PriceOverride): number {
  return geminiCostUsd(model, bodyBytes, maxOutputTokens, override);
}

/**
 * Exa: bounds above its list prices (docs/provider-facts.md, read 2026-12-07), since the exact
 * price depends on options (search type, contents, summaries). findSimilar has no published
 * price (deprecated, absent from the pricing page) and is bounded as a search: a search or findSimilar at
 * USD 0.025 (the dearest, Deep Reasoning, is 0.015) plus 0.003 per result asked for (an extra
 * result and its summary are 0.002), contents at 0.003 per page (0.001 per content type, three
 * types), an answer at 0.025 (listed at 0.005). What is charged is what Exa reports.
 */
export const EXA_BOUNDS = { perRequest: 0.025, perResult: 0.003, perPage: 0.003, answer: 0.025 } as const;

export function exaWorstCaseUsd(operation: ExaOperation, body: { numResults?: number; urls?: unknown[]; ids?: unknown[] }): number {
  switch (operation) {
    case "search":
    case "findSimilar":
      return EXA_BOUNDS.perRequest + EXA_BOUNDS.perResult * (body.numResults ?? 10);
    case "contents":
      return EXA_BOUNDS.perPage * ((body.urls?.length ?? 0) + (body.ids?.length ?? 0));
    case "answer":
      return EXA_BOUNDS.answer;
  }
}
