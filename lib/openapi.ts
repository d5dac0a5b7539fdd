/**
 * The OpenAPI 3.1 document of the service, generated with @asteasolutions/zod-to-openapi
 * from the very zod schemas the endpoints validate with (lib/schemas.ts), for every route
 * of the route table (lib/server/routes.ts). Only api/openapi.ts imports this module, so
 * the generator stays out of every other endpoint's cold start; the document is built on
 * first use and cached for the life of the instance.
 *
 * Schemas get component names through the generator's own metadata registry, keyed by the
 * handlers' schema instances: nothing here copies a schema, so the document cannot drift
 * from what the endpoints accept and return.
 */
import { z } from "zod";
import { OpenAPIRegistry, OpenApiGeneratorV31, zodToOpenAPIRegistry, type ResponseConfig, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { errorCodes, titles, type ErrorCode } from "./http/errors.js";
import { MAX_BODY_BYTES } from "./http/request.js";
import { PROBLEM_TYPE_BASE } from "./http/problem.js";
import { providerInfo, providerKeySchemas, providers } from "./keys/providers.js";
import {
  deleteKeyQuery,
  generateBody,
  generateResult,
  generationEvents,
  generationUsage,
  healthResponse,
  keyView,
  listKeysResponse,
  modeSchema,
  problemSchema,
  providerSchema,
  saveKeysBody,
  saveKeysResponse,
  sessionBody,
  sessionResponse,
  sourceSchema,
  usageQuery,
  usageResponse,
} from "./schemas.js";
import { routes as routeTable, type Route } from "./server/routes.js";
import { VERSION } from "./version.js";

export type OpenApiDocument = ReturnType<OpenApiGeneratorV31["generateDocument"]>;
type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";
/** A zod schema of the handlers, or (for what zod does not describe) a plain JSON Schema. */
type Media = { schema: z.ZodType | Record<string, unknown>; example?: unknown };

/** What one operation accepts and answers; problems are listed by code. */
export interface OperationSpec {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  body?: { schema: z.ZodType; example: unknown; description: string };
  query?: z.ZodType;
  /** A query string the handler accepts (checked by tests/openapi.test.ts). */
  queryExample?: Record<string, string>;
  responses: Record<number, { description: string; content?: Record<string, Media>; headers?: string[] }>;
  /** Problems this operation answers besides the ones every route, body or protected route may. */
  problems: ErrorCode[];
}

// ---- component names for the handlers' own schema instances ---------------------------------

function name(schema: z.ZodType, refId: string, extra: Record<string, unknown> = {}): void {
  const current = (zodToOpenAPIRegistry.get(schema) ?? {}) as { _internal?: Record<string, unknown> };
  zodToOpenAPIRegistry.add(schema, { ...current, ...extra, _internal: { ...current._internal, refId } } as never);
}

function annotate(schema: z.ZodType, extra: Record<string, unknown>): void {
  const current = (zodToOpenAPIRegistry.get(schema) ?? {}) as Record<string, unknown>;
  zodToOpenAPIRegistry.add(schema, { ...current, ...extra } as never);
}

const EXAMPLE_KEYS = {
  gemini: "AIzaSyExampleExampleExampleExample0000",
  exa: "3f2b8c1e-7d4a-4b9e-9c21-0a5e6f7d8c90",
  copilotkit: "ck_pub_exampleexampleexample0000",
} as const;

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
      examples: [EXAMPLE_KEYS[provider]],
    });
  }
  name(saveKeysBody, "SaveKeysRequest", {
    description: "At least one key; unknown fields are refused. `validate: true` checks the Gemini key with a free upstream call.",
  });
  name(keyView, "KeyView", {
    description: "A saved key as its owner sees it: a hint (… + last 4 characters), never the key; `value` only for copilotkit (a publishable key).",
  });
  name(saveKeysResponse, "SaveKeysResponse");
  name(listKeysResponse, "ListKeysResponse");
  name(sessionBody, "SessionUpdate");
  name(sessionResponse, "OnboardingSession");
  name(healthResponse, "Health", { description: "Mode, database reachability, driver and operator warnings; never secrets." });
  name(problemSchema, "Problem", {
    description: "RFC 9457 problem details. `code` is stable and kebab-case; `errors` points at invalid fields (JSON Pointers into the body or query).",
  });
  name(usageResponse, "Usage");
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

/**
 * The wire form of one generation event, `{event, data}`, around the handlers' own data
 * schemas (documentation only: the endpoint writes these, nobody parses them).
 */
const generationEvent = z.discriminatedUnion(
  "event",
  Object.entries(generationEvents).map(([event, data]) => z.object({ event: z.literal(event), data: data as z.ZodType })) as unknown as [
    z.ZodObject<{ event: z.ZodLiteral<string>; data: z.ZodType }>,
    ...z.ZodObject<{ event: z.ZodLiteral<string>; data: z.ZodType }>[],
  ],
);

// ---- the operations --------------------------------------------------------------------------

const json = (schema: Media["schema"], example?: unknown): Record<string, Media> => ({ "application/json": { schema, ...(example === undefined ? {} : { example }) } });

/** Every operation, by route path and method. tests/openapi.test.ts checks this against the route table and the api/ files. */
export const operations: Record<string, Partial<Record<HttpMethod, OperationSpec>>> = {
  "/api/health": {
    GET: {
      operationId: "getHealth",
      summary: "Service health",
      description: "No authentication. 503 when the database cannot be reached.",
      tags: ["service"],
      responses: {
        200: { description: "Healthy.", content: json(healthResponse) },
        503: { description: "Degraded: the database cannot be reached.", content: json(healthResponse) },
      },
      problems: [],
    },
  },
  "/api/openapi.json": {
    GET: {
      operationId: "getOpenApiDocument",
      summary: "This OpenAPI document",
      description: "No authentication. Generated from the same zod schemas the endpoints validate with.",
      tags: ["service"],
      responses: { 200: { description: "The OpenAPI 3.1 document.", content: json({ type: "object", description: "An OpenAPI 3.1 document." }) } },
      problems: [],
    },
  },
  "/api/onboarding/api-keys": {
    POST: {
      operationId: "saveApiKeys",
      summary: "Save the caller's provider keys",
      description:
        "Encrypts and stores each key sent (replacing an earlier one). Development mode also writes them to the .env file. " +
        "The response never contains a gemini or exa key.",
      tags: ["keys"],
      body: { description: "The keys to save.", schema: saveKeysBody, example: { gemini: EXAMPLE_KEYS.gemini, exa: EXAMPLE_KEYS.exa, validate: false } },
      responses: { 200: { description: "Saved.", content: json(saveKeysResponse), headers: ["RateLimit", "RateLimit-Policy"] } },
      problems: ["invalid-key-format", "provider-rejected-key", "rate-limited", "upstream-unavailable", "upstream-timeout"],
    },
    GET: {
      operationId: "listApiKeys",
      summary: "List the caller's saved keys",
      description: "Hints only (… + last 4 characters); the copilotkit key, a publishable frontend key, is returned as `value`.",
      tags: ["keys"],
      responses: { 200: { description: "The caller's keys and the providers still missing.", content: json(listKeysResponse) } },
      problems: [],
    },
    DELETE: {
      operationId: "deleteApiKey",
      summary: "Delete one of the caller's keys",
      description: "`provider` names the key to delete.",
      tags: ["keys"],
      query: deleteKeyQuery,
      queryExample: { provider: "exa" },
      responses: { 204: { description: "Deleted.", headers: ["RateLimit", "RateLimit-Policy"] } },
      problems: ["invalid-request", "key-not-found", "rate-limited"],
    },
  },
  "/api/onboarding/session": {
    GET: {
      operationId: "getOnboardingSession",
      summary: "The caller's onboarding progress",
      tags: ["onboarding"],
      responses: { 200: { description: "Current step and progress.", content: json(sessionResponse) } },
      problems: [],
    },
    PUT: {
      operationId: "updateOnboardingSession",
      summary: "Record the caller's onboarding progress",
      tags: ["onboarding"],
      body: { description: "Step 1 to 6, progress 0 to 100.", schema: sessionBody, example: { currentStep: 3, progress: 50 } },
      responses: { 200: { description: "Updated.", content: json(sessionResponse) } },
      problems: [],
    },
  },
  "/api/blog/generate": {
    POST: {
      operationId: "generateBlogPost",
      summary: "Generate a cited blog post with the caller's own keys",
      description:
        "Researches with the caller's Exa key (when saved and `research` is not false) and writes with their Gemini key; " +
        "each upstream call is billed to those keys and recorded in usage. Answers Server-Sent Events by default; " +
        "`Accept: application/json` (without text/event-stream) gets one JSON result instead. Failures after the stream " +
        "started arrive as an `error` event carrying the problem. Without Exa (or if it fails) generation goes on without research.",
      tags: ["generation"],
      body: {
        description: "What to write about.",
        schema: generateBody,
        example: { topic: "Bring-your-own-key AI apps", keywords: ["api keys", "billing"], tone: "practical", wordCount: 800, research: true },
      },
      responses: {
        200: {
          description: "The generation, as an event stream or (Accept: application/json) one JSON result.",
          content: {
            "text/event-stream": { schema: generationEvent },
            "application/json": { schema: generateResult },
          },
          headers: ["RateLimit", "RateLimit-Policy"],
        },
      },
      problems: ["missing-provider-key", "provider-rejected-key", "rate-limited", "upstream-unavailable", "upstream-timeout"],
    },
  },
  "/api/usage": {
    GET: {
      operationId: "getUsage",
      summary: "What the caller's keys paid for",
      description:
        "Totals per provider and a daily breakdown for `from`..`to` (ISO dates `YYYY-MM-DD`, a date-only `to` includes that day, " +
        "or ISO instants). Defaults: the last 30 days; at most 366 days.",
      tags: ["usage"],
      query: usageQuery,
      queryExample: { from: "2026-01-01", to: "2026-01-31" },
      responses: { 200: { description: "Usage in the range.", content: json(usageResponse) } },
      problems: ["invalid-request"],
    },
  },
};

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
  "provider-rejected-key": "Gemini rejected the key",
  "rate-limited": "too many requests; try again in 30 seconds",
  "server-misconfigured": "authentication is not configured on this deployment; no request can be served",
  "upstream-unavailable": "the provider could not be reached; try again",
  "database-unavailable": "the database could not be reached or the connection dropped; try again (saving keys and the session is safe to repeat)",
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
  RateLimit: { description: "limit, remaining and reset (seconds) of the caller's rate-limit window.", schema: { type: "string" } },
  "RateLimit-Policy": { description: "The rate-limit policy: `<limit>;w=<window seconds>`.", schema: { type: "string" } },
  Allow: { description: "The methods this path accepts.", schema: { type: "string" } },
};

/** Builds the document (uncached); throws if a route of the table has no operations here. */
export function buildOpenApiDocument(routes: readonly Route[] = routeTable): OpenApiDocument {
  nameSchemas();
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "clerkBearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A Clerk session token: `Authorization: Bearer <token>`. In development mode a request without a token runs as DEV_USER_ID.",
  });
  registry.registerComponent("securitySchemes", "clerkSessionCookie", {
    type: "apiKey",
    in: "cookie",
    name: "__session",
    description: "The Clerk session token in the `__session` cookie (used when no Authorization header is sent).",
  });
  for (const [id, header] of Object.entries(headerComponents)) registry.registerComponent("headers", id, header as never);

  for (const route of routes) {
    const spec = operations[route.path];
    if (!spec) throw new Error(`lib/openapi.ts documents no operations for ${route.path} (${route.file})`);
    const security: Record<string, string[]>[] = route.protected ? [{ clerkBearer: [] }, { clerkSessionCookie: [] }] : [];
    const methods = Object.keys(spec) as HttpMethod[];
    for (const method of methods) {
      const op = spec[method]!;
      const codes: ErrorCode[] = [...(route.protected ? protectedProblems : []), ...(op.body ? bodyProblems : []), ...op.problems, "internal-error"];
      const responses: Record<number, ResponseConfig> = {};
      for (const [status, response] of Object.entries(op.responses)) {
        const content: NonNullable<ResponseConfig["content"]> = {};
        for (const [type, media] of Object.entries(response.content ?? {})) content[type] = media as never;
        responses[Number(status)] = {
          description: response.description,
          headers: Object.fromEntries(
            ["RequestId", ...(response.headers ?? [])].map((h) => [h === "RequestId" ? "x-request-id" : h.toLowerCase(), { $ref: `#/components/headers/${h}` }]),
          ),
          ...(Object.keys(content).length ? { content } : {}),
        };
      }
      for (const [status, problem] of Object.entries(problemResponses(codes))) {
        const own = responses[Number(status)];
        // A status that is both a documented answer and a problem (never so far) keeps both media types.
        responses[Number(status)] = own
          ? { ...own, description: `${own.description} Or a problem: ${problem.description}`, content: { ...own.content, ...problem.content } }
          : problem;
      }
      const config: RouteConfig = {
        method: method.toLowerCase() as RouteConfig["method"],
        path: route.path,
        operationId: op.operationId,
        summary: op.summary,
        ...(op.description ? { description: op.description } : {}),
        tags: op.tags,
        security,
        request: {
          ...(op.body
            ? { body: { description: op.body.description, required: true, content: { "application/json": { schema: op.body.schema, example: op.body.example } } } }
            : {}),
          ...(op.query ? { query: op.query as never } : {}),
        },
        responses,
      };
      registry.registerPath(config);
    }
    // Every endpoint file also answers CORS preflight.
    registry.registerPath({
      method: "options",
      path: route.path,
      operationId: `preflight${route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? "").toUpperCase())}`,
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
        "`application/problem+json` (RFC 9457) with a stable `code`. Bodies are JSON, at most 16 KiB.",
    },
    tags: [
      { name: "keys", description: "The caller's provider keys." },
      { name: "onboarding", description: "The caller's onboarding progress." },
      { name: "generation", description: "Content generated with the caller's keys." },
      { name: "usage", description: "What the caller's keys paid for." },
      { name: "service", description: "Health and this document." },
      { name: "cors", description: "CORS preflight." },
    ],
  });
}

let cached: { document: OpenApiDocument; json: string } | undefined;

/** The document, built once per instance. */
export function openApiDocument(): OpenApiDocument {
  cached ??= (() => {
    const document = buildOpenApiDocument();
    return { document, json: JSON.stringify(document) };
  })();
  return cached.document;
}

/** The document serialized, built once per instance. */
export function openApiJson(): string {
  openApiDocument();
  return cached!.json;
}
