/**
 * The AI work of ALwrity's wizard (website style analysis, competitor discovery, persona) on
 * the caller's OWN keys, through the machinery of blog generation: one statement counts the
 * `generate` rate limit, reads the keys and reserves the worst case against the monthly cap
 * (lib/generation/start.ts); Exa (optional, text limited) then one Gemini call; one statement
 * settles the reservation to the real cost, writes the usage rows (`GET /api/usage`) and the
 * keys' health (lib/generation/budget.ts). `keySource` is the same as generation's: the .env
 * file in development, the caller's stored keys in production (never the operator's).
 *
 * ALwrity shows these steps' failures as sentences from a 2xx body (`{success: false, error}`),
 * so refusals (no key, over the cap, rate limited, the provider refused the key) are returned
 * as a result with a sentence, never thrown: the route phrases them as ALwrity reads them.
 */
import { AppError } from "../../http/errors.js";
import type { Deps } from "../../platform/runtime.js";
import type { KeySource } from "../../keys/resolver.js";
import { startGeneration } from "../../generation/start.js";
import { budgetExceeded, settleGeneration } from "../../generation/budget.js";
import { EXA_SEARCH_PRICE_USD, type UsageRecord } from "../../generation/usage.js";
import { combineVerdicts, rejectionReasonOf, verdictOf, type KeyHealthUpdate, type KeyVerdict } from "../../keys/health.js";
import type { KeyRejectionReason } from "../../providers/rejections.js";
import { geminiCostUsd } from "../../providers/prices.js";
import { redact } from "../../platform/log.js";

type AiDeps = Pick<Deps, "config" | "logger" | "requestId" | "serverRequestId" | "database" | "keyring" | "once">;

/** Gemini's output limit for one wizard step (thinking tokens count against it and are billed as output). */
export const AI_MAX_OUTPUT_TOKENS = 4_096;
/** Exa results read per step, and the characters of text taken from each (bounds the prompt and the cost). */
export const AI_EXA_RESULTS = 6;
export const AI_EXA_CHARS_PER_RESULT = 800;
const PROMPT_OVERHEAD_TOKENS = 256;

export interface AiSource {
  title: string;
  url: string;
  text: string;
  highlights: string[];
  publishedDate?: string;
}

export interface AiJob {
  /** The `usage_events.operation` of its calls, e.g. `alwrity-style-analysis`. */
  operation: string;
  /** An Exa search first (the site's pages, or its competitors); absent: Gemini only. */
  exa?: { query: string; includeDomains?: string[]; excludeDomains?: string[]; required: boolean };
  systemInstruction: string;
  /** The prompt, given the Exa results (empty without a search). */
  prompt: (sources: AiSource[]) => string;
}

export type AiOutcome =
  | { ok: true; text: string; sources: AiSource[]; keySource: KeySource; costUsd: number }
  | { ok: false; code: string; error: string };

const bytes = (text: string) => Buffer.byteLength(text, "utf8");

/** The most input tokens the Gemini call can send: prompt as built, every source at its largest (4 bytes a character). */
function worstCaseInputTokens(job: AiJob, research: boolean): number {
  const perSource = 4 * (300 + 500 + AI_EXA_CHARS_PER_RESULT) + 16;
  return PROMPT_OVERHEAD_TOKENS + bytes(job.systemInstruction) + bytes(job.prompt([])) + (research ? AI_EXA_RESULTS * perSource : 0);
}

/** Whether the provider answered with an HTTP error (then it did not bill the call). */
const answeredWithError = (error: unknown) => error instanceof AppError && typeof error.extra.upstreamStatus === "number";

const sentence = (error: AppError) => error.detail ?? error.code;

/**
 * Runs one wizard step's AI work on the caller's keys. Never throws an AppError: every
 * refusal is `{ok: false, code, error}` with a sentence. Aborts (the client left) still settle.
 */
export async function runAiStep(deps: AiDeps, userId: string, job: AiJob, signal: AbortSignal): Promise<AiOutcome> {
  const { config, logger, requestId } = deps;
  const model = config.gemini.model;
  const price = config.gemini.price;
  const estimate = (research: boolean) =>
    geminiCostUsd(model, worstCaseInputTokens(job, research), AI_MAX_OUTPUT_TOKENS, price) + (research ? EXA_SEARCH_PRICE_USD : 0);
  let started: Awaited<ReturnType<typeof startGeneration>>;
  try {
    started = await startGeneration(deps, { userId, researchRequested: job.exa !== undefined, estimate });
  } catch (error) {
    // Over the rate limit: a sentence. The database down and the rest: the app's problem answer (503…).
    if (error instanceof AppError && error.code === "rate-limited") return { ok: false, code: error.code, error: sentence(error) };
    throw error;
  }
  const resolved = started.keys;
  logger.redactAlso(resolved.keys.gemini, resolved.keys.exa);
  if (!started.ok && started.reason === "missing-gemini") {
    return {
      ok: false,
      code: "missing-provider-key",
      error:
        resolved.source === "env"
          ? "No Gemini API key is in this service's .env file: configure it in step 1 (API keys) and try again."
          : resolved.unreadable.includes("gemini")
            ? "Your saved Gemini API key can no longer be read: save it again in step 1 (API keys) and try again."
            : "No Gemini API key is saved for your account: configure it in step 1 (API keys) and try again.",
    };
  }
  if (!started.ok) {
    const refusal = budgetExceeded(started.status, started.amountUsd);
    return { ok: false, code: refusal.code, error: sentence(refusal) };
  }
  const reservation = started.reservation;
  const usage: UsageRecord[] = [];
  const verdicts: Partial<Record<"gemini" | "exa", KeyVerdict>> = {};
  const reasons: Partial<Record<"gemini" | "exa", KeyRejectionReason>> = {};
  let chargeUsd = 0;
  try {
    let sources: AiSource[] = [];
    if (job.exa && !resolved.keys.exa && job.exa.required) {
      return {
        ok: false,
        code: "missing-provider-key",
        error: "No Exa API key is saved for your account: add one in step 1 (API keys) to run this step, or continue without it.",
      };
    }
    if (job.exa && resolved.keys.exa) {
      const { searchExa } = await import("../../providers/exa.js");
      const sent = !signal.aborted;
      try {
        const outcome = await searchExa({
          apiKey: resolved.keys.exa,
          baseUrl: config.exa.baseUrl,
          query: job.exa.query,
          numResults: AI_EXA_RESULTS,
          maxCharactersPerResult: AI_EXA_CHARS_PER_RESULT,
          ...(job.exa.includeDomains ? { includeDomains: job.exa.includeDomains } : {}),
          ...(job.exa.excludeDomains ? { excludeDomains: job.exa.excludeDomains } : {}),
          signal,
          timeoutMs: config.upstreamTimeoutMs,
        });
        const cost = outcome.costUsd ?? EXA_SEARCH_PRICE_USD;
        chargeUsd += cost;
        usage.push({ userId, provider: "exa", operation: job.operation, model: null, costUsd: cost, requestId });
        verdicts.exa = "ok";
        sources = outcome.results.map((r) => ({
          title: clip(r.title, 300),
          url: clip(r.url, 500),
          text: clip(r.text, AI_EXA_CHARS_PER_RESULT),
          highlights: r.highlights.slice(0, 2).map((h) => clip(h, 300)),
          ...(r.publishedDate ? { publishedDate: r.publishedDate } : {}),
        }));
      } catch (error) {
        verdicts.exa = verdictOf(error);
        reasons.exa = rejectionReasonOf(error);
        if (sent && !answeredWithError(error)) {
          chargeUsd += EXA_SEARCH_PRICE_USD;
          usage.push({
            userId,
            provider: "exa",
            operation: job.operation,
            model: null,
            costUsd: EXA_SEARCH_PRICE_USD,
            requestId,
            partial: true,
          });
        }
        if (error instanceof AppError) return { ok: false, code: error.code, error: sentence(error) };
        throw error;
      }
    }

    const { createGemini } = await import("../../providers/gemini.js");
    const client = createGemini({
      apiKey: resolved.keys.gemini!,
      model,
      baseUrl: config.gemini.baseUrl,
      timeoutMs: config.upstreamTimeoutMs,
    });
    const prompt = job.prompt(sources);
    const sent = !signal.aborted;
    try {
      const outcome = await client.generateText({
        systemInstruction: job.systemInstruction,
        prompt,
        signal,
        generationConfig: { maxOutputTokens: AI_MAX_OUTPUT_TOKENS, temperature: 0.4 },
      });
      verdicts.gemini = "ok";
      const inputTokens = outcome.usage?.promptTokenCount ?? 0;
      const outputTokens = (outcome.usage?.candidatesTokenCount ?? 0) + (outcome.usage?.thoughtsTokenCount ?? 0);
      const cost = geminiCostUsd(client.model, inputTokens, outputTokens, price);
      // Without token counts from Gemini, the budget is charged the worst case.
      chargeUsd += outcome.usage
        ? cost
        : geminiCostUsd(client.model, worstCaseInputTokens(job, sources.length > 0), AI_MAX_OUTPUT_TOKENS, price);
      usage.push({
        userId,
        provider: "gemini",
        operation: job.operation,
        model: client.model,
        inputTokens,
        outputTokens,
        costUsd: cost,
        requestId,
      });
      if (!outcome.text.trim()) {
        return {
          ok: false,
          code: "upstream-unavailable",
          error: `Gemini returned no text (${outcome.blockReason ?? outcome.finishReason ?? "empty answer"}); try again.`,
        };
      }
      return { ok: true, text: outcome.text, sources, keySource: resolved.source, costUsd: chargeUsd };
    } catch (error) {
      verdicts.gemini = verdictOf(error);
      reasons.gemini = rejectionReasonOf(error);
      if (sent && !answeredWithError(error)) {
        // Sent and not answered with an HTTP error: Gemini may have billed it, so its worst case is charged.
        const worst = geminiCostUsd(client.model, worstCaseInputTokens(job, sources.length > 0), AI_MAX_OUTPUT_TOKENS, price);
        chargeUsd += worst;
        usage.push({
          userId,
          provider: "gemini",
          operation: job.operation,
          model: client.model,
          costUsd: worst,
          requestId,
          partial: true,
          tokensEstimated: true,
        });
      }
      if (error instanceof AppError) return { ok: false, code: error.code, error: sentence(error) };
      throw error;
    }
  } finally {
    const health: KeyHealthUpdate[] = [];
    for (const provider of ["gemini", "exa"] as const) {
      const verdict = combineVerdicts([verdicts[provider]]);
      const version = resolved.versions[provider];
      const reason = reasons[provider];
      if (verdict && version) health.push({ provider, version, verdict, ...(verdict === "rejected" && reason ? { reason } : {}) });
    }
    try {
      await settleGeneration(await deps.database(), {
        userId,
        reservationId: reservation.id,
        chargeUsd,
        usage: usage.map((record) => ({ ...record, serverRequestId: deps.serverRequestId })),
        health,
      });
    } catch (error) {
      logger.error("usage could not be recorded", { errorName: error instanceof Error ? error.name : "unknown", calls: usage.length });
    }
  }
}

/**
 * The first JSON object in a model's answer (it may wrap it in a ```json fence or prose), or
 * undefined. A scan by index for the outermost braces: no regex over the model's output.
 */
export function firstJsonObject(text: string): Record<string, unknown> | undefined {
  const start = text.indexOf("{");
  const end = text.lastIndexOf("}");
  if (start < 0 || end <= start) return undefined;
  try {
    const value: unknown = JSON.parse(text.slice(start, end + 1));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `text` cut to at most `max` UTF-16 code units, as text PostgreSQL's `jsonb` stores: a surrogate
 * pair the cut would split (an emoji) is dropped whole, and NUL (`\u0000`) and lone surrogates
 * anywhere (both refused by `jsonb`, and by lib/onboarding/step-data.ts) are removed. Linear;
 * reads no further than it needs to fill `max`.
 */
export function clip(text: string, max: number): string {
  let out = "";
  for (let i = 0; i < text.length && out.length < max; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0) continue;
    if (unit >= 0xdc00 && unit <= 0xdfff) continue; // a low surrogate without its high one
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1); // NaN past the end
      if (!(next >= 0xdc00 && next <= 0xdfff)) continue; // a high surrogate without its low one
      if (out.length + 2 > max) break; // the pair does not fit: neither half is kept
      out += text.slice(i, i + 2);
      i++;
      continue;
    }
    out += text[i];
  }
  return out;
}

/**
 * An outside string (Exa's, the model's) as the wizard may keep it in step data and answer it:
 * `clip`ped, and with anything key-shaped replaced by "[redacted]" (`redact`, the shapes
 * lib/onboarding/step-data.ts refuses), so ALwrity can post it back as step data unchanged.
 * Redacted after the cut (a cut can complete a shape: a UUID followed by a letter is none) and
 * never longer (every shape is at least as long as "[redacted]"); a string redaction would
 * change again is replaced whole.
 */
export function storable(text: string, max: number): string {
  const out = redact(clip(text, max));
  return redact(out) === out ? out : "[redacted]";
}

/**
 * A bounded copy of `value` in the shape of `template`: every key of the template is present
 * (a string leaf `"…"` gives a string of at most `maxString` characters, an array leaf `[]` at
 * most `maxItems` strings, a number leaf a finite number, an object leaf recurses); anything
 * else the model wrote is dropped. What the wizard stores and shows is bounded by the template,
 * and every string is `storable` (passes lib/onboarding/step-data.ts when posted back).
 */
export type Template = string | number | readonly string[] | { readonly [key: string]: Template };

export function shaped(template: Template, value: unknown, limits = { maxString: 160, maxItems: 4, maxItem: 100 }): unknown {
  if (typeof template === "string") return typeof value === "string" && value.trim() ? storable(value.trim(), limits.maxString) : template;
  if (typeof template === "number") {
    const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : Number.NaN;
    return Number.isFinite(n) ? Math.round(n * 10) / 10 : template;
  }
  if (Array.isArray(template)) {
    const items = Array.isArray(value) ? value : typeof value === "string" && value.trim() ? [value] : [];
    return items
      .filter((item): item is string => typeof item === "string" && item.trim() !== "")
      .slice(0, limits.maxItems)
      .map((item) => storable(item.trim(), limits.maxItem));
  }
  const source = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(template as Record<string, Template>)) out[key] = shaped(child, source[key], limits);
  return out;
}
