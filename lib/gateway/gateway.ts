/**
 * The gateway's calls: what each provider path checks before its statement
 * (lib/gateway/start.ts), what it reserves (lib/gateway/pricing.ts) and where it goes
 * (lib/gateway/proxy.ts). Gemini models outside the allow-list (the models this service can
 * price: lib/providers/prices.ts, and the operator's GEMINI_MODEL) are refused before anything
 * else happens.
 */
import type { z } from "zod";
import { AppError } from "../http/errors.js";
import { issuesToErrors } from "../http/request.js";
import type { Deps } from "../platform/runtime.js";
import { withRateLimit } from "../platform/rate-limit.js";
import { GEMINI_API_VERSION, GEMINI_DEFAULT_BASE_URL } from "../providers/gemini-endpoint.js";
import { geminiPrices, type PriceOverride } from "../providers/prices.js";
import { callerOf } from "./caller.js";
import { exaWorstCaseUsd, GATEWAY_MAX_OUTPUT_TOKENS, geminiWorstCaseUsd } from "./pricing.js";
import { proxyCall, type Meter, type ProxyJob } from "./proxy.js";
import { exaBodies, geminiCountTokensBody, geminiGenerateBody, splitGeminiAction, type ExaOperation } from "./schemas.js";
import { startGatewayCall, type GatewayStartInput } from "./start.js";
import { EXA_DEFAULT_BASE_URL } from "../providers/exa-endpoint.js";
import { trimSlash } from "../providers/upstream.js";

/** The Gemini models the gateway serves: every priced model, and the operator's GEMINI_MODEL. */
export function gatewayModels(config: Deps["config"]): string[] {
  return [...new Set([...Object.keys(geminiPrices), config.gemini.model])];
}

/** The operator's prices apply to their GEMINI_MODEL only; other models use the table. */
function priceFor(config: Deps["config"], model: string): PriceOverride | undefined {
  return model === config.gemini.model ? config.gemini.price : undefined;
}

function validate<S extends z.ZodType>(schema: S, data: unknown): z.output<S> {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const errors = issuesToErrors(parsed.error.issues);
    const first = errors[0];
    throw new AppError("invalid-request", {
      detail: `the body is not one this gateway forwards (${first ? `${first.pointer}: ${first.message}` : "invalid"}); see docs/gateway.md`,
      errors,
    });
  }
  return parsed.data;
}

const bytes = (text: string) => Buffer.byteLength(text, "utf8");

/**
 * One gateway call after its checks: the statement before the upstream call, the proxied call,
 * and the answer with its key source and (except on the provider's own 429, which carries only
 * the provider's Retry-After) this service's RateLimit headers.
 */
async function forward(
  deps: Deps,
  request: Request,
  call: Omit<GatewayStartInput, "caller"> & Pick<ProxyJob, "url" | "method" | "body" | "meter">,
): Promise<Response> {
  const caller = callerOf(request);
  const start = await startGatewayCall(deps, {
    caller,
    provider: call.provider,
    operation: call.operation,
    model: call.model,
    amountUsd: call.amountUsd,
  });
  const response = await proxyCall(deps, {
    userId: caller.userId,
    provider: call.provider,
    operation: call.operation,
    model: call.model,
    start,
    url: call.url,
    method: call.method,
    ...(call.body !== undefined ? { body: call.body } : {}),
    meter: call.meter,
    signal: request.signal,
  });
  response.headers.set("x-byok-key-source", start.keySource);
  return response.status === 429 ? response : withRateLimit(response, start.rateLimit);
}

/** POST …/v1beta/models/{model}:{method}. */
export async function geminiModelCall(
  deps: Deps,
  input: { request: Request; action: string; alt: "sse" | undefined; body: Record<string, unknown> },
): Promise<Response> {
  const { config } = deps;
  const split = splitGeminiAction(input.action);
  if (!split) throw new AppError("not-found", { detail: "no such gateway path" });
  const { model, method } = split;
  if (!gatewayModels(config).includes(model)) {
    throw new AppError("not-found", {
      detail: `the gateway does not serve the model ${model}; it serves ${gatewayModels(config).join(", ")}`,
    });
  }
  const stream = method === "streamGenerateContent";
  if (stream && input.alt !== "sse") {
    throw new AppError("invalid-request", {
      detail: "streamGenerateContent is served as Server-Sent Events: add ?alt=sse",
      errors: [{ pointer: "/alt", message: "must be sse" }],
    });
  }
  let forwarded: string;
  let amountUsd = 0;
  let meter: Meter = { kind: "free" };
  if (method === "countTokens") {
    forwarded = JSON.stringify(validate(geminiCountTokensBody, input.body));
  } else {
    const body = validate(geminiGenerateBody, input.body);
    // The output bound is the request's own, at most GATEWAY_MAX_OUTPUT_TOKENS (clamped, or set when absent).
    const maxOutputTokens = Math.min(body.generationConfig?.maxOutputTokens ?? GATEWAY_MAX_OUTPUT_TOKENS, GATEWAY_MAX_OUTPUT_TOKENS);
    forwarded = JSON.stringify({ ...body, generationConfig: { ...body.generationConfig, maxOutputTokens } });
    const price = priceFor(config, model);
    amountUsd = geminiWorstCaseUsd(model, bytes(forwarded), maxOutputTokens, price);
    meter = { kind: stream ? "gemini-stream" : "gemini-json", model, price, promptText: forwarded };
  }
  const base = trimSlash(config.gemini.baseUrl ?? GEMINI_DEFAULT_BASE_URL);
  return forward(deps, input.request, {
    provider: "gemini",
    operation: method,
    model,
    amountUsd,
    url: `${base}/${GEMINI_API_VERSION}/models/${model}:${method}${stream ? "?alt=sse" : ""}`,
    method: "POST",
    body: forwarded,
    meter,
  });
}

/** GET …/v1beta/models (free: audited, rate-limited, nothing reserved). */
export async function geminiListModels(deps: Deps, input: { request: Request; pageSize?: string; pageToken?: string }): Promise<Response> {
  const query = new URLSearchParams();
  if (input.pageSize) query.set("pageSize", input.pageSize);
  if (input.pageToken) query.set("pageToken", input.pageToken);
  const base = trimSlash(deps.config.gemini.baseUrl ?? GEMINI_DEFAULT_BASE_URL);
  return forward(deps, input.request, {
    provider: "gemini",
    operation: "listModels",
    model: null,
    amountUsd: 0,
    url: `${base}/${GEMINI_API_VERSION}/models${query.size > 0 ? `?${query}` : ""}`,
    method: "GET",
    meter: { kind: "free" },
  });
}

/** POST …/exa/{operation}. */
export async function exaCall(
  deps: Deps,
  input: { request: Request; operation: ExaOperation; body: Record<string, unknown> },
): Promise<Response> {
  const body = validate(exaBodies[input.operation], input.body) as { numResults?: number; urls?: unknown[]; ids?: unknown[] };
  const base = trimSlash(deps.config.exa.baseUrl ?? EXA_DEFAULT_BASE_URL);
  return forward(deps, input.request, {
    provider: "exa",
    operation: input.operation,
    model: null,
    amountUsd: exaWorstCaseUsd(input.operation, body),
    url: `${base}/${input.operation}`,
    method: "POST",
    body: JSON.stringify(body),
    meter: { kind: "exa-json" },
  });
}
