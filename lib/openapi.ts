/**
 * The OpenAPI 3.1 document, generated with @asteasolutions/zod-to-openapi from the route
 * definitions themselves (lib/routes/, typed by lib/http/route.ts): their schemas, response
 * headers, auth and rate limits. Only the /api/openapi.json handler imports this module, so
 * the generator stays out of every other function's cold start; the document is built on
 * first use and cached for the life of the instance.
 *
 * Schemas get component names through the generator's own metadata registry, keyed by the
 * routes' schema instances: nothing here copies a schema, so the document cannot drift from
 * what the endpoints accept and return.
 */
import type { z } from "zod";
import {
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  zodToOpenAPIRegistry,
  type ResponseConfig,
  type RouteConfig,
} from "@asteasolutions/zod-to-openapi";
import { errorCodes, titles, type ErrorCode } from "./http/errors.js";
import { MAX_BODY_BYTES } from "./http/request.js";
import { PROBLEM_TYPE_BASE } from "./http/problem.js";
import { providerInfo, providerKeySchemas, providers } from "./providers/registry.js";
import { accountExport, clerkWebhookEvent, webhookResponse } from "./account/schemas.js";
import {
  budgetBody,
  budgetResponse,
  generateBody,
  generateResult,
  generationUsage,
  sourceSchema,
  usageResponse,
} from "./generation/schemas.js";
import { modeSchema, problemSchema, providerSchema } from "./http/schemas.js";
import { keyView, listKeysResponse, saveKeysBody, saveKeysResponse } from "./keys/schemas.js";
import { sessionBody, sessionResponse } from "./onboarding/schemas.js";
import { healthResponse } from "./system/schemas.js";
import { openApiPath, type AnyRoute, type DocumentedHeader } from "./http/route.js";
import { generationEvent } from "./generation/schemas.js";
import { VERSION } from "./platform/version.js";

export type OpenApiDocument = ReturnType<OpenApiGeneratorV31["generateDocument"]>;

// ---- component names for the handlers' own schema instances ---------------------------------

function name(schema: z.ZodType, refId: string, extra: Record<string, unknown> = {}): void {
  const current = (zodToOpenAPIRegistry.get(schema) ?? {}) as { _internal?: Record<string, unknown> };
  zodToOpenAPIRegistry.add(schema, { ...current, ...extra, _internal: { ...current._internal, refId } } as never);
}

function annotate(schema: z.ZodType, extra: Record<string, unknown>): void {
  const current = (zodToOpenAPIRegistry.get(schema) ?? {}) as Record<string, unknown>;
  zodToOpenAPIRegistry.add(schema, { ...current, ...extra } as never);
}

let named = false;
function nameSchemas(): void {
  if (named) return;
  named = true;
  name(providerSchema, "Provider", { description: "A provider whose key a user can bring." });
  name(modeSchema, "Mode", { description: "development: keys also go to the .env file; production: database only." });
  for (const provider of providers) {
    const info = providerInfo[provider];
    annotate(providerKeySchemas[provider], {
      pattern: info.pattern.source,
      examples: [info.example],
    });
  }
  name(saveKeysBody, "SaveKeysRequest", {
    description: "At least one key; unknown fields are refused. `validate: true` checks the Gemini key with a free upstream call.",
  });
  name(keyView, "KeyView", {
    description:
      "A saved key as its owner sees it: a hint (… + last 4 characters), never the key; `value` only for copilotkit (a publishable key).",
  });
  name(saveKeysResponse, "SaveKeysResponse");
  name(listKeysResponse, "ListKeysResponse");
  name(sessionBody, "SessionUpdate");
  name(sessionResponse, "OnboardingSession");
  name(healthResponse, "Health", { description: "Mode, database reachability, driver and operator warnings; never secrets." });
  name(problemSchema, "Problem", {
    description:
      "RFC 9457 problem details. `code` is stable and kebab-case; `errors` points at invalid fields (JSON Pointers into the body or query).",
  });
  name(usageResponse, "Usage");
  name(budgetResponse, "Budget", {
    description:
      "The caller's monthly cap (USD, UTC months; null: none), what their keys were charged this month, what generations in flight reserved, and what is left.",
  });
  name(budgetBody, "BudgetUpdate");
  name(clerkWebhookEvent, "ClerkWebhookEvent", {
    description: "A Clerk webhook event (Standard Webhooks envelope); only `user.deleted` acts.",
  });
  name(webhookResponse, "WebhookReceipt");
  name(accountExport, "AccountExport", { description: "Everything held about the caller; never a key or a ciphertext." });
  name(generateBody, "GenerateRequest");
  name(sourceSchema, "Source");
  name(generationUsage, "GenerationUsage");
  name(generateResult, "GenerateResult");
  name(generationEvent, "GenerationEvent", {
    description:
      "One Server-Sent Event: sent as an `event: <name>` line and a `data: <JSON>` line, then a blank line. Order: " +
      "`status` (research), `sources`, `status` (writing), many `delta`, `usage`, `done`; or an `error` event, then the stream ends. " +
      "Lines starting with `:` are keep-alive comments.",
  });
}

// ---- problems ---------------------------------------------------------------------------------

const protectedProblems: ErrorCode[] = ["unauthorized", "server-misconfigured", "upstream-unavailable", "database-unavailable"];
const bodyProblems: ErrorCode[] = ["invalid-json", "invalid-request", "payload-too-large", "unsupported-media-type"];

const problemDetails: Partial<Record<ErrorCode, string>> = {
  "invalid-json": "the body is not valid JSON",
  "invalid-request": "the body is invalid (/currentStep: Too big: expected number to be <=6)",
  "invalid-key-format": 'the body is invalid (/gemini: Gemini key must be "AIza" followed by 30-100 letters, digits, "_" or "-")',
  unauthorized: "no session token was sent",
  "key-not-found": "no exa key saved for this user",
  "missing-provider-key": "no gemini key saved for this user",
  "payload-too-large": `the body is larger than ${MAX_BODY_BYTES} bytes`,
  "unsupported-media-type": "send the body as JSON with content-type: application/json",
  "cross-site-request": "a request without a body from another site's page is refused (it could change state without the user's consent)",
  "provider-rejected-key":
    "gemini rejected the saved API key (HTTP 401 ACCESS_TOKEN_TYPE_UNSUPPORTED): Google no longer accepts standard Gemini keys (AIza…): create a new key in Google AI Studio (aistudio.google.com/apikey) and save it here",
  "model-unavailable":
    'gemini does not serve the model "gemini-2.5-flash" (HTTP 404: retired or unknown); the operator must set GEMINI_MODEL to a current model',
  "budget-exceeded":
    "this generation could cost up to 0.0650 USD, and 0.0210 USD of the 5.00 USD monthly cap is left until 2026-07-01T00:00:00.000Z (UTC)",
  "invalid-webhook-signature": "the webhook could not be verified: no svix-signature matches this body",
  "rate-limited": "too many requests; try again in 30 seconds",
  "server-misconfigured": "authentication is not configured on this deployment; no request can be served",
  "upstream-unavailable": "the provider could not be reached; try again",
  "database-unavailable":
    "the database could not be reached or the connection dropped; try again (saving keys and the session is safe to repeat)",
  "upstream-timeout": "the provider did not answer in time",
  "internal-error": "an unexpected error occurred; quote request id req_8NwqzJ1c0fWkq3Yp when reporting it",
};

function problemExample(code: ErrorCode): Record<string, unknown> {
  return {
    type: PROBLEM_TYPE_BASE + code,
    title: titles[code],
    status: errorCodes[code],
    detail: problemDetails[code] ?? titles[code],
    code,
    requestId: "req_8NwqzJ1c0fWkq3Yp",
    ...(code === "invalid-request" ? { errors: [{ pointer: "/currentStep", message: "Too big: expected number to be <=6" }] } : {}),
    ...(code === "missing-provider-key" ? { action: "POST /api/onboarding/api-keys", provider: "gemini" } : {}),
    ...(code === "budget-exceeded"
      ? {
          action: "PUT /api/usage/budget to raise the cap, or wait until the month resets",
          monthlyUsd: 5,
          spentUsd: 4.914,
          reservedUsd: 0.065,
          remainingUsd: 0.021,
          estimateUsd: 0.065,
          resetsAt: "2026-07-01T00:00:00.000Z",
        }
      : {}),
  };
}

/** The problem responses of one operation, grouped by status, with one example per code. */
function problemResponses(codes: ErrorCode[]): Record<number, ResponseConfig> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = errorCodes[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<number, ResponseConfig> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const retry = list.some((c) => c === "rate-limited" || c === "database-unavailable");
    out[status] = {
      description: list.map((c) => `\`${c}\`: ${titles[c]}`).join("; "),
      headers: {
        "x-request-id": { $ref: "#/components/headers/RequestId" },
        ...(retry ? { "retry-after": { $ref: "#/components/headers/RetryAfter" } } : {}),
        ...(list.includes("unauthorized") ? { "www-authenticate": { $ref: "#/components/headers/WwwAuthenticate" } } : {}),
        ...(list.includes("rate-limited")
          ? { ratelimit: { $ref: "#/components/headers/RateLimit" }, "ratelimit-policy": { $ref: "#/components/headers/RateLimit-Policy" } }
          : {}),
      },
      content: {
        "application/problem+json": {
          schema: problemSchema,
          examples: Object.fromEntries(list.map((c) => [c, { summary: titles[c], value: problemExample(c) }])),
        },
      },
    };
  }
  return out;
}

// ---- the document -------------------------------------------------------------------------------

const headerComponents: Record<string, Record<string, unknown>> = {
  RequestId: { description: "The request id; quote it when reporting a problem. Sent on every response.", schema: { type: "string" } },
  RetryAfter: { description: "Seconds to wait before trying again.", schema: { type: "integer", minimum: 0 } },
  WwwAuthenticate: { description: 'Bearer realm="byok-functions"', schema: { type: "string" } },
  RateLimit: {
    description:
      "limit, remaining and reset (seconds) of the caller's rate-limit window. Sent on every 2xx answer of a rate-limited operation and on this service's own 429s (a provider's 429 has only Retry-After).",
    schema: { type: "string" },
  },
  "RateLimit-Policy": { description: "The rate-limit policy: `<limit>;w=<window seconds>`.", schema: { type: "string" } },
  Allow: { description: "The methods this path accepts.", schema: { type: "string" } },
  "Cache-Control": {
    description: "`no-store` for per-user and live answers; public documents say how long they may be cached.",
    schema: { type: "string" },
  },
  "Access-Control-Allow-Origin": {
    description: "`*`: a public document any origin may read (no credentials).",
    schema: { type: "string" },
  },
};

const headerNames: Record<DocumentedHeader | "RequestId", string> = {
  RequestId: "x-request-id",
  RateLimit: "ratelimit",
  "RateLimit-Policy": "ratelimit-policy",
  "Cache-Control": "cache-control",
  "Access-Control-Allow-Origin": "access-control-allow-origin",
};

/** The problem codes one route may answer: its own, plus those of auth, a body and a rate limit. */
export function routeProblems(route: AnyRoute): ErrorCode[] {
  return [
    ...(route.auth ? protectedProblems : []),
    ...(route.body ? bodyProblems : []),
    // Every state-changing method: a body that is not JSON, or no body from a foreign Origin (lib/http/middleware/cross-site.ts).
    ...(route.method !== "GET" ? (["unsupported-media-type", "cross-site-request"] as ErrorCode[]) : []),
    ...(route.query ? (["invalid-request"] as ErrorCode[]) : []),
    ...(route.params || route.developmentOnly ? (["not-found"] as ErrorCode[]) : []),
    ...(route.rateLimit ? (["rate-limited"] as ErrorCode[]) : []),
    ...route.problems,
    "internal-error",
  ];
}

/** The headers a success answer of `route` promises (besides x-request-id): its own, plus RateLimit on rate-limited routes. */
export function promisedHeaders(route: AnyRoute, status: number): DocumentedHeader[] {
  const own = route.responses[status]?.headers ?? [];
  return [...own, ...(route.rateLimit && status < 300 ? (["RateLimit", "RateLimit-Policy"] as const) : [])];
}

const camel = (path: string) => path.replace(/[^A-Za-z0-9]+(.)?/g, (_: string, c: string | undefined) => (c ?? "").toUpperCase());

/** Who may call `route`: one of the entries (an entry's schemes all together). */
export function securityOf(route: AnyRoute): Record<string, string[]>[] {
  if (!route.auth) return [];
  const clerk: Record<string, string[]>[] = [{ clerkBearer: [] }, { clerkSessionCookie: [] }];
  return route.serviceCredential ? [...clerk, { gatewayServiceCredential: [], gatewayActsFor: [] }] : clerk;
}

/** Builds the document (uncached) from the route definitions. */
export function buildOpenApiDocument(routes: readonly AnyRoute[]): OpenApiDocument {
  nameSchemas();
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "clerkBearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description:
      "A Clerk session token: `Authorization: Bearer <token>`. In development mode a request without a token runs as DEV_USER_ID.",
  });
  registry.registerComponent("securitySchemes", "clerkSessionCookie", {
    type: "apiKey",
    in: "cookie",
    name: "__session",
    description: "The Clerk session token in the `__session` cookie (used when no Authorization header is sent).",
  });
  registry.registerComponent("securitySchemes", "gatewayServiceCredential", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "bks_<16 hex>_<43 base64url>",
    description:
      "An operator's gateway service credential (`npm run gateway:credentials`), sent with `x-byok-user` naming the user the call is for.",
  });
  registry.registerComponent("securitySchemes", "gatewayActsFor", {
    type: "apiKey",
    in: "header",
    name: "x-byok-user",
    description: "With a service credential: the Clerk user id the call acts for (that user's keys and budget).",
  });
  for (const [id, header] of Object.entries(headerComponents)) registry.registerComponent("headers", id, header as never);

  const paths = new Set<string>();
  for (const route of routes) {
    paths.add(openApiPath(route.path));
    const responses: Record<number, ResponseConfig> = {};
    for (const [status, response] of Object.entries(route.responses)) {
      const headers = ["RequestId", ...promisedHeaders(route, Number(status))] as (DocumentedHeader | "RequestId")[];
      responses[Number(status)] = {
        description: response.description,
        headers: Object.fromEntries(headers.map((h) => [headerNames[h], { $ref: `#/components/headers/${h}` }])),
        ...(response.content ? { content: response.content as NonNullable<ResponseConfig["content"]> } : {}),
      };
    }
    for (const [status, problem] of Object.entries(problemResponses(routeProblems(route)))) {
      const own = responses[Number(status)];
      // A status that is both a documented answer and a problem (never so far) keeps both media types.
      responses[Number(status)] = own
        ? {
            ...own,
            description: `${own.description} Or a problem: ${problem.description}`,
            content: { ...own.content, ...problem.content },
          }
        : problem;
    }
    const config: RouteConfig = {
      method: route.method.toLowerCase() as RouteConfig["method"],
      path: openApiPath(route.path),
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: route.tags,
      security: securityOf(route),
      request: {
        ...(route.body
          ? {
              body: {
                description: route.body.description,
                required: true,
                content: { "application/json": { schema: route.body.schema, example: route.body.example } },
              },
            }
          : {}),
        ...(route.query ? { query: route.query.schema } : {}),
        ...(route.params ? { params: route.params.schema } : {}),
      },
      responses,
    };
    registry.registerPath(config);
  }
  // Every path also answers CORS preflight.
  for (const path of paths) {
    registry.registerPath({
      method: "options",
      path,
      operationId: `preflight${camel(path)}`,
      summary: "CORS preflight",
      description: "Lists the allowed methods; allowed origins (ALLOWED_ORIGINS) also get the CORS headers.",
      tags: ["cors"],
      security: [],
      responses: {
        204: {
          description: "The methods this path accepts.",
          headers: { allow: { $ref: "#/components/headers/Allow" }, "x-request-id": { $ref: "#/components/headers/RequestId" } },
        },
      },
    });
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "byok-functions",
      version: VERSION,
      description:
        "Bring-your-own-key serverless functions: each user's Gemini, Exa and CopilotKit keys stored encrypted per user, " +
        "and blog generation billed to the caller's own keys. Every response carries `x-request-id`; every error is " +
        "`application/problem+json` (RFC 9457) with a stable `code`. Bodies are JSON, at most 16 KiB (256 KiB for the gateway's prompts).",
    },
    tags: [
      { name: "keys", description: "The caller's provider keys." },
      { name: "onboarding", description: "The caller's onboarding progress." },
      {
        name: "alwrity",
        description:
          "ALwrity's onboarding wizard, unchanged: its API-key step (one key per call) and its progress calls, over the same keys and session. " +
          "Keys read back as hints for gemini and exa (a value equal to the hint means unchanged), copilotkit in full.",
      },
      { name: "generation", description: "Content generated with the caller's keys." },
      { name: "usage", description: "What the caller's keys paid for, and the monthly cap on it." },
      { name: "account", description: "The caller's whole account: export, deletion, and Clerk's deletion webhook." },
      { name: "service", description: "Health and this document." },
      { name: "cors", description: "CORS preflight." },
    ],
  });
}

const cache = new WeakMap<readonly AnyRoute[], { document: OpenApiDocument; json: string }>();

function cached(routes: readonly AnyRoute[]) {
  let entry = cache.get(routes);
  if (!entry) {
    const document = buildOpenApiDocument(routes);
    entry = { document, json: JSON.stringify(document) };
    cache.set(routes, entry);
  }
  return entry;
}

/** The document of `routes`, built once per instance. */
export function openApiDocument(routes: readonly AnyRoute[]): OpenApiDocument {
  return cached(routes).document;
}

/** The document serialized, built once per instance. */
export function openApiJson(routes: readonly AnyRoute[]): string {
  return cached(routes).json;
}
