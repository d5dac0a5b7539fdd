/**
 * What one endpoint is, in one object: method, path, whether a user is required, the rate
 * limit it counts against, its request schemas, every response with its headers, the
 * problems it may answer, and the handler. `lib/app.ts` serves these; `lib/openapi.ts` turns
 * the same objects into the OpenAPI document, so the contract is stated once.
 *
 * A plain object (rather than `@hono/zod-openapi`'s `createRoute`) keeps the OpenAPI
 * generator out of every function but `/api/openapi.json`: see the README's "Adding an
 * endpoint" and BENCHMARKS.md for the cold-start figures behind the choice.
 */
import type { z } from "zod";
import type { ErrorCode, FieldError } from "./errors.js";
import type { Deps } from "../platform/runtime.js";
import type { RateLimitBucket } from "../platform/rate-limit.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE";
export const methods: readonly Method[] = ["GET", "POST", "PUT", "DELETE"];

/**
 * Response headers an operation can promise beyond `x-request-id` (sent on every response).
 * Each has a component in the OpenAPI document; tests/batteries/contract.happy.test.ts checks that every
 * promised header arrives on a real response.
 */
export type DocumentedHeader = "RateLimit" | "RateLimit-Policy" | "Cache-Control" | "Access-Control-Allow-Origin";

/** A zod schema of the contract, or (for what zod does not describe) a plain JSON Schema. */
export type MediaSchema = z.ZodType | Record<string, unknown>;

export interface ResponseSpec {
  description: string;
  /** By media type. */
  content?: Record<string, { schema: MediaSchema; example?: unknown }>;
  headers?: DocumentedHeader[];
}

type Schema = z.ZodType | undefined;
type Output<S extends Schema> = S extends z.ZodType ? z.output<S> : undefined;

export interface HandlerInput<Auth extends boolean, B extends Schema, Q extends Schema, P extends Schema = undefined> {
  /** The request as received (its signal aborts when the client leaves). */
  request: Request;
  /** Runtime services bound to this request (logger with the request id). */
  deps: Deps;
  /** The caller: always set on routes with `auth: true`. */
  userId: Auth extends true ? string : undefined;
  body: Output<B>;
  query: Output<Q>;
  /** The path parameters (`:name` segments), validated. */
  params: Output<P>;
}

export interface RouteSpec<
  Auth extends boolean = boolean,
  B extends Schema = Schema,
  Q extends Schema = Schema,
  P extends Schema = Schema,
> {
  method: Method;
  /** Public path, as clients call it; `:name` segments are path parameters (OpenAPI `{name}`), validated by `params`. */
  path: string;
  /** More paths served by the same handler (e.g. the Vercel file path a rewrite points at). */
  aliases?: string[];
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** A Clerk session is required in production (development runs as DEV_USER_ID without one). */
  auth: Auth;
  /**
   * With `auth: true`: who is calling, in place of the Clerk session check (`requireUser`), for
   * a route that also takes other credentials (the gateway's service credentials,
   * lib/gateway/caller.ts). Throws an AppError (401) to refuse.
   */
  authenticate?: (input: { request: Request; deps: Deps }) => Promise<{ userId: string }>;
  /**
   * `authenticate` also takes an operator's gateway service credential with the user it acts
   * for (`x-byok-user`): the OpenAPI document lists that scheme beside Clerk's.
   */
  serviceCredential?: boolean;
  /**
   * The per-user limit this route's handler counts, inside its own first statement (one round
   * trip: `rateLimitCountSql`), after auth and validation; it sets the RateLimit headers on its
   * 2xx answers (`withRateLimit`). Documents the 429 and those headers; the contract test checks
   * that the headers are really sent.
   */
  rateLimit?: RateLimitBucket;
  /** Served in development only: production answers 404 before anything else (auth included). */
  developmentOnly?: boolean;
  body?: {
    schema: NonNullable<B>;
    description: string;
    example: unknown;
    /** Picks a more specific code than invalid-request from the field errors. */
    codeFor?: (errors: FieldError[]) => ErrorCode;
    /**
     * Checks the raw body before validation (a webhook's signature over the exact bytes, with
     * the request's headers); throws an AppError to refuse. Routes without a Clerk session
     * authenticate this way.
     */
    verify?: (input: { text: string; request: Request; deps: Deps }) => Promise<void>;
    /**
     * For a body with several forms (`schema` a union, as documented): picks the form that
     * validates the parsed JSON, so its field errors (not a union's "invalid input") are answered.
     */
    formFor?: (data: unknown) => z.ZodType;
  };
  query?: { schema: NonNullable<Q>; example: Record<string, string> };
  /** Path parameters: a zod object over the `:name` segments (strings), and an example of each. */
  params?: { schema: NonNullable<P>; example: Record<string, string> };
  /** Success responses by status (problems are derived from `problems`, auth, body and rate limit). */
  responses: Record<number, ResponseSpec>;
  /** Problems this operation answers besides those every route, body, protected or rate-limited route may. */
  problems: ErrorCode[];
  /** Streams its response (Server-Sent Events). */
  streaming?: boolean;
  handler(input: HandlerInput<Auth, B, Q, P>): Promise<Response>;
}

/** Any route, for lists of routes. */
// biome-ignore lint/suspicious/noExplicitAny: a list holds routes of every input type; `unknown` would make their handlers unassignable (parameters are contravariant).
export type AnyRoute = RouteSpec<boolean, any, any, any>;

/** Declares one endpoint (identity at run time; it gives the handler typed input). */
export function defineRoute<Auth extends boolean, B extends Schema = undefined, Q extends Schema = undefined, P extends Schema = undefined>(
  spec: RouteSpec<Auth, B, Q, P>,
): RouteSpec<Auth, B, Q, P> {
  return spec;
}

/** The path as OpenAPI writes it: `/step/:n` → `/step/{n}`. A loop over segments, no regex. */
export function openApiPath(path: string): string {
  return path
    .split("/")
    .map((segment) => (segment.startsWith(":") ? `{${segment.slice(1)}}` : segment))
    .join("/");
}

/** A concrete path of `route`: its `:name` segments filled from `params.example` (tests, docs). */
export function examplePath(route: AnyRoute): string {
  const example = route.params?.example ?? {};
  return route.path
    .split("/")
    .map((segment) => (segment.startsWith(":") ? encodeURIComponent(example[segment.slice(1)] ?? segment) : segment))
    .join("/");
}

/** A JSON answer (not cached: every body here is per user or live state). */
export function json(data: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
  return new Response(JSON.stringify(data), { ...init, headers });
}

export function noContent(): Response {
  return new Response(null, { status: 204, headers: { "cache-control": "no-store" } });
}
