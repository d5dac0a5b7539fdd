/**
 * One gateway call after its statement (lib/gateway/start.ts): the request goes to the
 * provider with the user's own key injected (the caller's request headers are not
 * forwarded, so whatever key the SDK sent goes nowhere), and the answer streams back as it
 * arrives: a pull stream that reads the next upstream chunk only when the client wants one
 * (back-pressure), whose cancellation (the client left) aborts the upstream request, with the
 * upstream timeout applied to each wait for the provider (lib/providers/abort.ts).
 *
 * On the way through, the answer is metered: Gemini's usageMetadata (the last one of a
 * stream), Exa's `costDollars.total`. When the call ends, ONE statement settles it
 * (lib/generation/budget.ts `settleGeneration`): the reservation replaced by the charge, a
 * usage row, the key's health and the audit row's outcome; a stream settles before its last
 * byte goes out. The charge follows generation's rule: what the provider reported for a call
 * that completed; the reserved worst case for one cut short after it was sent (the client
 * left, the stream failed or stalled: the provider bills what it processed, which is
 * unknown), marked partial; nothing for one the provider refused with an HTTP error or that
 * never left.
 *
 * Upstream errors pass through with the provider's status and its own error shape (the SDKs
 * read them), with the user's key and anything key-shaped scrubbed out: Google's 403 can quote
 * the key.
 */
import { sql, type SQL } from "drizzle-orm";
import { AppError } from "../http/errors.js";
import type { Deps } from "../platform/runtime.js";
import { redact, redactExact } from "../platform/log.js";
import { upstreamCall } from "../providers/abort.js";
import { geminiHttpError } from "../providers/gemini-errors.js";
import { geminiCostUsd, type PriceOverride } from "../providers/prices.js";
import { settleGeneration, usd } from "../generation/budget.js";
import { estimateTokens, roundUsd, type UsageRecord } from "../generation/usage.js";
import { rejectionReasonOf, verdictOf, type KeyHealthUpdate, type KeyVerdict } from "../keys/health.js";
import type { KeyRejectionReason } from "../providers/rejections.js";
import { keyHealthUpdateSql } from "../keys/store.js";
import type { GatewayProvider, GatewayStart } from "./start.js";
import { withNamedStatements } from "./statements.js";

type ProxyDeps = Pick<Deps, "config" | "logger" | "database" | "requestId" | "serverRequestId">;

/** How the answer is metered. */
export type Meter =
  | { kind: "gemini-stream" | "gemini-json"; model: string; price: PriceOverride | undefined; promptText: string }
  | { kind: "exa-json" }
  | { kind: "free" };

export interface ProxyJob {
  userId: string;
  provider: GatewayProvider;
  operation: string;
  model: string | null;
  start: GatewayStart;
  url: string;
  method: "GET" | "POST";
  body?: string;
  meter: Meter;
  /** The client's request: its signal aborts the upstream call. */
  signal: AbortSignal;
}

/** Longest answer kept in memory to read its usage (a JSON answer); past it the worst case is charged. */
const MAX_METERED_BYTES = 8 * 1024 * 1024;
/** Longest upstream error body read (then scrubbed and passed on). */
const MAX_ERROR_BYTES = 64 * 1024;

const keyHeader: Record<GatewayProvider, string> = { gemini: "x-goog-api-key", exa: "x-api-key" };

interface GeminiUsage {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
}

/** What was seen of an answer, for the charge. */
class Reading {
  private decoder = new TextDecoder();
  private pending = "";
  private kept = "";
  private overflow = false;
  lastUsage: GeminiUsage | undefined;
  outputChars = 0;

  constructor(private readonly meter: Meter) {}

  push(chunk: Uint8Array): void {
    if (this.meter.kind === "free" || this.overflow) return;
    const text = this.decoder.decode(chunk, { stream: true });
    if (this.meter.kind === "gemini-stream") {
      this.pending += text;
      // Each complete line once, then one slice for the rest (linear in what arrived).
      let from = 0;
      let newline = this.pending.indexOf("\n", from);
      while (newline >= 0) {
        this.line(this.pending.slice(from, newline));
        from = newline + 1;
        newline = this.pending.indexOf("\n", from);
      }
      if (from > 0) this.pending = this.pending.slice(from);
      if (this.pending.length > MAX_METERED_BYTES) this.overflow = true;
    } else {
      this.kept += text;
      if (this.kept.length > MAX_METERED_BYTES) this.overflow = true;
    }
  }

  /** One line of Gemini's event stream (`data: {GenerateContentResponse}`). */
  private line(raw: string): void {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (!line.startsWith("data:")) return;
    this.event(line.slice(5).trim());
  }

  private event(text: string): void {
    try {
      const data = JSON.parse(text) as { usageMetadata?: GeminiUsage; candidates?: { content?: { parts?: { text?: unknown }[] } }[] };
      if (data.usageMetadata && typeof data.usageMetadata === "object") this.lastUsage = data.usageMetadata;
      for (const p of data.candidates?.[0]?.content?.parts ?? []) if (typeof p.text === "string") this.outputChars += p.text.length;
    } catch {
      // not JSON: nothing to meter in it
    }
  }

  /** The answer as a whole (JSON answers): parsed once it ended. */
  finish(): void {
    if (this.overflow || this.meter.kind === "free") return;
    if (this.meter.kind === "gemini-stream") {
      if (this.pending) this.line(this.pending);
      return;
    }
    if (this.meter.kind === "gemini-json") this.event(this.kept);
  }

  /** Exa's `costDollars.total`, when it reported one. */
  exaCost(): number | undefined {
    if (this.overflow) return undefined;
    try {
      const total = (JSON.parse(this.kept) as { costDollars?: { total?: unknown } }).costDollars?.total;
      return typeof total === "number" && Number.isFinite(total) && total >= 0 ? total : undefined;
    } catch {
      return undefined;
    }
  }
}

type Ending =
  | { kind: "complete"; status: number }
  | { kind: "cut-short"; status: number | null }
  | { kind: "refused"; status: number; verdict: KeyVerdict | undefined; reason: KeyRejectionReason | undefined }
  | { kind: "not-sent" };

/** Runs the call and answers it (see the file comment). */
export async function proxyCall(deps: ProxyDeps, job: ProxyJob): Promise<Response> {
  const { config } = deps;
  const key = job.start.key;
  const reading = new Reading(job.meter);
  let settled: Promise<void> | undefined;
  const settleOnce = (ending: Ending) => (settled ??= settle(deps, job, reading, ending));

  let call: ReturnType<typeof upstreamCall>;
  try {
    call = upstreamCall(job.signal, config.upstreamTimeoutMs);
  } catch (error) {
    await settleOnce({ kind: "not-sent" });
    throw error;
  }
  let upstream: Response;
  try {
    upstream = await fetch(job.url, {
      method: job.method,
      headers: { [keyHeader[job.provider]]: key, ...(job.body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(job.body !== undefined ? { body: job.body } : {}),
      signal: call.signal,
      redirect: "error",
    });
  } catch (error) {
    const abortedBy = call.abortedBy;
    call.end(false);
    const neverLeft = abortedBy === undefined && connectionRefused(error);
    await settleOnce(neverLeft ? { kind: "not-sent" } : { kind: "cut-short", status: null });
    throw abortedBy === "timeout"
      ? new AppError("upstream-timeout", {
          detail: `${job.provider} did not respond within ${config.upstreamTimeoutMs} ms; try again`,
          extra: { provider: job.provider },
        })
      : new AppError("upstream-unavailable", {
          detail: `could not reach ${job.provider}; try again later`,
          extra: { provider: job.provider },
        });
  }

  if (!upstream.ok) {
    // A refusal: read (bounded), scrub and pass on; the provider did not bill it.
    let text = "";
    try {
      text = await readBounded(upstream, MAX_ERROR_BYTES);
    } catch {
      text = "";
    } finally {
      call.end(true);
    }
    const { verdict, reason } = keyVerdict(job, upstream, text);
    await settleOnce({ kind: "refused", status: upstream.status, verdict, reason });
    const headers = new Headers({
      "content-type": upstream.headers.get("content-type") ?? "application/json",
      "cache-control": "no-store",
    });
    const retryAfter = upstream.headers.get("retry-after");
    if (retryAfter) headers.set("retry-after", retryAfter.slice(0, 64));
    return new Response(scrubKey(text, key), { status: upstream.status, headers });
  }

  call.pause();
  const reader = upstream.body?.getReader();
  const status = upstream.status;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!reader) {
          reading.finish();
          await settleOnce({ kind: "complete", status });
          controller.close();
          return;
        }
        let result: ReadableStreamReadResult<Uint8Array>;
        call.resume();
        try {
          result = await reader.read();
        } catch (error) {
          call.end(false);
          await settleOnce({ kind: "cut-short", status });
          controller.error(error);
          return;
        }
        call.pause();
        if (result.done) {
          call.end(false);
          reading.finish();
          await settleOnce({ kind: "complete", status });
          controller.close();
          return;
        }
        reading.push(result.value);
        controller.enqueue(result.value);
      },
      async cancel() {
        // The client went away: stop the upstream request, and settle what it cost.
        call.end(true);
        await reader?.cancel().catch(() => undefined);
        await settleOnce({ kind: "cut-short", status });
      },
    },
    { highWaterMark: 0 },
  );
  const headers = new Headers({ "content-type": upstream.headers.get("content-type") ?? "application/json", "cache-control": "no-store" });
  if (job.meter.kind === "gemini-stream") headers.set("x-accel-buffering", "no");
  return new Response(body, { status, headers });
}

/** Whether fetch failed before anything was sent (nothing listening there). */
function connectionRefused(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}

async function readBounded(response: Response, max: number): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (text.length > max) {
      await reader.cancel().catch(() => undefined);
      return JSON.stringify({ error: { code: response.status, message: "the provider's error was too long to pass on" } });
    }
  }
  return text + decoder.decode();
}

/** `text` without the user's key (raw or as JSON would escape it) nor anything key-shaped. */
export function scrubKey(text: string, key: string): string {
  return redact(key ? redactExact(text, new Set([key])) : text);
}

/** What an upstream refusal says about the key (lib/keys/health.ts), from its status and body. */
function keyVerdict(
  job: ProxyJob,
  response: Response,
  text: string,
): { verdict: KeyVerdict | undefined; reason: KeyRejectionReason | undefined } {
  if (job.provider === "gemini") {
    let details: unknown[] | undefined;
    let message = "";
    try {
      const error = (JSON.parse(text) as { error?: { details?: unknown; message?: unknown } }).error;
      if (Array.isArray(error?.details)) details = error.details;
      if (typeof error?.message === "string") message = error.message;
    } catch {
      // not Google's shape: the status alone decides
    }
    const mapped = geminiHttpError({
      status: response.status,
      details,
      retryAfterHeader: response.headers.get("retry-after"),
      upstreamMessage: message,
      apiKey: job.start.key,
      model: job.model ?? undefined,
    });
    return { verdict: verdictOf(mapped), reason: rejectionReasonOf(mapped) };
  }
  const status = response.status;
  if (status === 401) return { verdict: "rejected", reason: "key-invalid" };
  if (status === 403) return { verdict: "rejected", reason: "key-rejected" };
  if (status === 402) return { verdict: "rejected", reason: "out-of-credits" };
  if (status === 429) return { verdict: "rate-limited", reason: undefined };
  return { verdict: undefined, reason: undefined };
}

/** The charge and usage row of an ending (see the file comment). */
function charge(job: ProxyJob, reading: Reading, ending: Ending): { usd: number; usage: UsageRecord | undefined } {
  const worstCase = job.start.reservation?.amountUsd ?? 0;
  const meter = job.meter;
  if (meter.kind === "free" || ending.kind === "not-sent" || ending.kind === "refused") return { usd: 0, usage: undefined };
  const base = { userId: job.userId, provider: job.provider, operation: job.operation, model: job.model, requestId: "" };
  if (meter.kind === "exa-json") {
    const reported = ending.kind === "complete" ? reading.exaCost() : undefined;
    const usdCharged = reported ?? worstCase;
    return { usd: usdCharged, usage: { ...base, costUsd: usdCharged, ...(ending.kind === "cut-short" ? { partial: true } : {}) } };
  }
  const reported = reading.lastUsage;
  const inputReported = typeof reported?.promptTokenCount === "number";
  const outputReported = typeof reported?.candidatesTokenCount === "number";
  const inputTokens = inputReported ? (reported!.promptTokenCount as number) : estimateTokens(meter.promptText);
  const outputTokens =
    (outputReported ? (reported!.candidatesTokenCount as number) : Math.ceil(reading.outputChars / 4)) +
    (reported?.thoughtsTokenCount ?? 0);
  const complete = ending.kind === "complete" && inputReported;
  // Complete with usage: what Gemini reported. Otherwise (cut short, or no usage): the worst case reserved.
  const usdCharged = complete ? geminiCostUsd(meter.model, inputTokens, outputTokens, meter.price) : worstCase;
  return {
    usd: usdCharged,
    usage: {
      ...base,
      inputTokens,
      outputTokens,
      costUsd: usdCharged,
      ...(ending.kind === "cut-short" ? { partial: true } : {}),
      ...(!inputReported || !outputReported ? { tokensEstimated: true } : {}),
    },
  };
}

const outcomeOf: Record<Ending["kind"], string> = {
  complete: "ok",
  "cut-short": "cut-short",
  refused: "upstream-error",
  "not-sent": "upstream-error",
};

/** ONE statement: reservation → charge, usage row, key health, audit row. Never throws (the reservation expires by itself). */
async function settle(deps: ProxyDeps, job: ProxyJob, reading: Reading, ending: Ending): Promise<void> {
  const { usd: chargeUsd, usage } = charge(job, reading, ending);
  const verdict: KeyVerdict | undefined = ending.kind === "complete" ? "ok" : ending.kind === "refused" ? ending.verdict : undefined;
  const health: KeyHealthUpdate[] =
    verdict && job.start.version
      ? [
          {
            provider: job.provider,
            version: job.start.version,
            verdict,
            ...(ending.kind === "refused" && verdict === "rejected" && ending.reason ? { reason: ending.reason } : {}),
          },
        ]
      : [];
  const status = ending.kind === "not-sent" ? null : ending.status;
  const audit: SQL = sql`update gateway_calls set outcome = ${outcomeOf[ending.kind]}, upstream_status = ${status}::int,
    cost_usd = ${usd(roundUsd(chargeUsd))}::numeric, finished_at = now() where id = ${job.start.auditId}`;
  deps.logger.info("gateway call", {
    userId: job.userId,
    provider: job.provider,
    operation: job.operation,
    model: job.model,
    outcome: outcomeOf[ending.kind],
    upstreamStatus: status,
  });
  try {
    const database = withNamedStatements(await deps.database());
    if (job.start.reservation) {
      await settleGeneration(database, {
        userId: job.userId,
        reservationId: job.start.reservation.id,
        chargeUsd,
        usage: usage ? [{ ...usage, requestId: deps.requestId, serverRequestId: deps.serverRequestId }] : [],
        health,
        also: audit,
      });
    } else {
      const healthSql = keyHealthUpdateSql(job.userId, health);
      await database.rows(sql`with ${healthSql ? sql`health as (${healthSql}), ` : sql``}audit as (${audit}) select 1 as settled`);
    }
  } catch (error) {
    deps.logger.error("gateway usage could not be recorded", { errorName: error instanceof Error ? error.name : "unknown" });
  }
}
