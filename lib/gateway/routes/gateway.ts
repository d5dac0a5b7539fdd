/**
 * The provider gateway: Gemini's and Exa's own REST paths under /api/gateway/, so their
 * unchanged SDKs work with their base URL pointed here (docs/gateway.md). The caller signs in
 * with a Clerk session, or a service credential naming the user (lib/gateway/caller.ts);
 * the user's own stored key is injected; each call is rate-limited, reserved against the
 * user's monthly cap, metered and audited.
 */
import { z } from "zod";
import { defineRoute } from "../../http/route.js";
import type { ErrorCode } from "../../http/errors.js";
import { authenticateGatewayCaller } from "../caller.js";
import { exaCall, geminiListModels, geminiModelCall } from "../gateway.js";
import { exaOperations, geminiActionParams, geminiBody, providerAnswer, rewritePath, streamQuery, type ExaOperation } from "../schemas.js";

/** What every gateway route may answer; the metered ones (not the free model list) also 402. */
const problems: ErrorCode[] = ["not-found", "missing-provider-key", "upstream-unavailable", "upstream-timeout"];
const metered: ErrorCode[] = [...problems, "budget-exceeded"];

const description =
  "The caller's own stored key is injected server-side (whatever key the SDK sends is ignored). Before the upstream call, " +
  "ONE statement checks the caller, counts the call against the `gateway` rate limit, reads the key and reserves the " +
  "call's worst case against the user's monthly cap (402 `budget-exceeded` when it does not fit). The answer streams " +
  "through as the provider sends it; the provider's own errors pass through with its status, the key scrubbed out. " +
  "Authenticate with a Clerk session token, or a gateway service credential plus `x-byok-user` (docs/gateway.md).";

/** Who may call every gateway route, and its limit: the same for all of them. */
const access = {
  description,
  tags: ["gateway"],
  auth: true as const,
  authenticate: authenticateGatewayCaller,
  serviceCredential: true,
  rateLimit: "gateway" as const,
};

export const gatewayGemini = defineRoute({
  method: "POST",
  path: "/api/gateway/gemini/v1beta/models/:action",
  operationId: "gatewayGeminiModel",
  summary: "Gemini generateContent, streamGenerateContent or countTokens with the caller's own key",
  ...access,
  streaming: true,
  params: { schema: geminiActionParams, example: { action: "gemini-3.5-flash:generateContent" } },
  query: { schema: streamQuery, example: {} },
  body: {
    schema: geminiBody,
    description: "Gemini's request body, as its SDKs send it (checked against what the gateway can meter).",
    example: { contents: [{ role: "user", parts: [{ text: "Say hello" }] }], generationConfig: { maxOutputTokens: 256 } },
  },
  responses: {
    200: {
      description: "Gemini's answer as it sent it (an event stream for streamGenerateContent).",
      content: { "application/json": { schema: providerAnswer }, "text/event-stream": { schema: providerAnswer } },
      headers: ["Cache-Control"],
    },
  },
  problems: metered,
  handler: async ({ request, deps, params, query, body }) =>
    geminiModelCall(deps, { request, action: params.action, alt: query.alt, body: body as Record<string, unknown> }),
});

export const gatewayGeminiModels = defineRoute({
  method: "GET",
  path: "/api/gateway/gemini/v1beta/models",
  operationId: "gatewayGeminiModels",
  summary: "Gemini's model list, with the caller's own key",
  ...access,
  query: {
    schema: z.strictObject({ pageSize: z.string().max(4).optional(), pageToken: z.string().max(200).optional(), path: rewritePath }),
    example: {},
  },
  responses: {
    200: {
      description: "Gemini's model list as it sent it.",
      content: { "application/json": { schema: providerAnswer } },
      headers: ["Cache-Control"],
    },
  },
  problems,
  handler: async ({ request, deps, query }) => geminiListModels(deps, { request, pageSize: query.pageSize, pageToken: query.pageToken }),
});

function exaRoute(operation: ExaOperation, example: Record<string, unknown>) {
  return defineRoute({
    method: "POST",
    path: `/api/gateway/exa/${operation}`,
    operationId: `gatewayExa${operation[0]!.toUpperCase()}${operation.slice(1)}`,
    summary: `Exa ${operation} with the caller's own key`,
    ...access,
    body: {
      schema: z.looseObject({}).describe(`Exa's ${operation} request body, as exa-js sends it`),
      description: `Exa's ${operation} request, as exa-js sends it.`,
      example,
    },
    responses: {
      200: {
        description: `Exa's ${operation} answer as it sent it.`,
        content: { "application/json": { schema: providerAnswer } },
        headers: ["Cache-Control"],
      },
    },
    problems: metered,
    handler: async ({ request, deps, body }) => exaCall(deps, { request, operation, body: body as Record<string, unknown> }),
  });
}

const exaExamples: Record<ExaOperation, Record<string, unknown>> = {
  search: { query: "bring your own key", numResults: 5, contents: { highlights: { maxCharacters: 500 } } },
  findSimilar: { url: "https://example.com/", numResults: 5 },
  contents: { urls: ["https://example.com/"], text: { maxCharacters: 1000 } },
  answer: { query: "What is bring your own key?", text: false },
};

export const gatewayExa = exaOperations.map((operation) => exaRoute(operation, exaExamples[operation]));

export default [gatewayGeminiModels, gatewayGemini, ...gatewayExa];
