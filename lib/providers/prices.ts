/**
 * What Gemini charges: the price table of the models an operator may choose, the retired
 * models, and the cost of a call. No imports, so the configuration check (loaded by every
 * function) can ask whether a model is priced without loading the database schema.
 */

export interface ModelPrice {
  /** USD per million input tokens (text, prompts up to `longPrompt.aboveTokens` when set). */
  inputPerMillion: number;
  /** USD per million output tokens, thinking tokens included (Google bills them as output). */
  outputPerMillion: number;
  /** Dearer rates for prompts above a size (Pro models: above 200k tokens). */
  longPrompt?: { aboveTokens: number; inputPerMillion: number; outputPerMillion: number };
  /** Rates that replace these from a day on (UTC, YYYY-MM-DD): announced price changes. */
  from?: { date: string; inputPerMillion: number; outputPerMillion: number };
  /** Where the price was read, and when. */
  source: string;
}

/** The day the Gemini price table below was last read from Google's page (check-config warns past 180 days). */
export const GEMINI_PRICES_READ = "2026-12-07";

const GOOGLE_PRICING = `ai.google.dev/gemini-api/docs/pricing (paid tier, text), read ${GEMINI_PRICES_READ}`;

/**
 * Gemini list prices in USD per million tokens: Google's paid tier, text input. Thinking
 * tokens are billed at the output rate ("Output price (including thinking tokens)").
 * docs/provider-facts.md keeps the same table with its sources. Models past their shutdown
 * (the 2.0 and 2.5 Flash/Pro models, ai.google.dev/gemini-api/docs/deprecations) are not
 * priced: `retiredGeminiModels` names them. A model without a row needs the operator's
 * prices (GEMINI_PRICE_INPUT_PER_MILLION / GEMINI_PRICE_OUTPUT_PER_MILLION): production
 * refuses to start without them (lib/platform/config-check.ts), and development charges the dearest
 * row, never 0.
 */
export const geminiPrices: Readonly<Record<string, ModelPrice>> = {
  // GA since 2026-05-19; the default model (lib/platform/env.ts DEFAULT_GEMINI_MODEL).
  "gemini-3.5-flash": { inputPerMillion: 1.5, outputPerMillion: 9, source: GOOGLE_PRICING },
  "gemini-3.5-flash-lite": { inputPerMillion: 0.3, outputPerMillion: 2.5, source: GOOGLE_PRICING },
  // Introductory price through 2026-12-31, then double (as the pricing page announces).
  "gemini-3.8-flash": {
    inputPerMillion: 0.75,
    outputPerMillion: 3.75,
    from: { date: "2027-01-01", inputPerMillion: 1.5, outputPerMillion: 7.5 },
    source: GOOGLE_PRICING,
  },
  // GA since 2026-05-07.
  "gemini-3.1-flash-lite": { inputPerMillion: 0.25, outputPerMillion: 1.5, source: GOOGLE_PRICING },
  "gemini-3-flash-preview": { inputPerMillion: 0.5, outputPerMillion: 3, source: GOOGLE_PRICING },
  "gemini-3.1-pro-preview": {
    inputPerMillion: 2,
    outputPerMillion: 12,
    longPrompt: { aboveTokens: 200_000, inputPerMillion: 4, outputPerMillion: 18 },
    source: GOOGLE_PRICING,
  },
};

/**
 * Models past their shutdown date on ai.google.dev/gemini-api/docs/deprecations (read
 * 2026-12-07): Gemini answers 404 for them. check-config names one set in GEMINI_MODEL.
 */
export const retiredGeminiModels: Readonly<Record<string, string>> = {
  "gemini-2.0-flash": "2026-06-01",
  "gemini-2.0-flash-001": "2026-06-01",
  "gemini-2.0-flash-lite": "2026-06-01",
  "gemini-2.0-flash-lite-001": "2026-06-01",
  "gemini-2.5-flash": "2026-06-17",
  "gemini-2.5-pro": "2026-06-17",
};

/** Prices the operator gives for a model the table lacks (or to override it). */
export interface PriceOverride {
  inputPerMillion: number;
  outputPerMillion: number;
}

/** The name a model is looked up under: without "models/" or a "-latest" / "-NNN" version suffix. */
export function modelKey(model: string): string {
  return model.replace(/^models\//, "").replace(/-(latest|\d{3})$/, "");
}

/** The table's row for `model`, or undefined. */
export function tablePrice(model: string): ModelPrice | undefined {
  const name = model.replace(/^models\//, "");
  return geminiPrices[name] ?? geminiPrices[modelKey(name)];
}

/** Whether `model` is priced: by the operator's override or by the table. */
export function isPriced(model: string, override?: PriceOverride): boolean {
  return override !== undefined || tablePrice(model) !== undefined;
}

/** The dearest row of the table (by output price): what an unpriced model is charged in development. */
function dearestPrice(): ModelPrice {
  return Object.values(geminiPrices).reduce((a, b) => (b.outputPerMillion > a.outputPerMillion ? b : a));
}

/**
 * The price `model` is charged at: the operator's override, else its row, else (a model
 * without a price: development only, production refuses to start) the dearest row. Never 0.
 */
export function geminiPrice(model: string, override?: PriceOverride): ModelPrice {
  if (override) return { ...override, source: "GEMINI_PRICE_INPUT_PER_MILLION / GEMINI_PRICE_OUTPUT_PER_MILLION (operator)" };
  return tablePrice(model) ?? dearestPrice();
}

/** The rates of `price` in force at `at` for a prompt of `inputTokens`. */
export function ratesAt(price: ModelPrice, inputTokens: number, at = new Date()): { inputPerMillion: number; outputPerMillion: number } {
  if (price.longPrompt && inputTokens > price.longPrompt.aboveTokens) return price.longPrompt;
  if (price.from && at.toISOString().slice(0, 10) >= price.from.date) return price.from;
  return price;
}

/** USD cost of one Gemini call (thinking tokens belong in `outputTokens`). Never 0 for tokens used. */
export function geminiCostUsd(model: string, inputTokens: number, outputTokens: number, override?: PriceOverride, at = new Date()): number {
  const rates = ratesAt(geminiPrice(model, override), inputTokens, at);
  return (inputTokens * rates.inputPerMillion + outputTokens * rates.outputPerMillion) / 1_000_000;
}
