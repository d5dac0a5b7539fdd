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
import type { Deps } from "../runtime.js";
import type { RateLimitBucket } from "../rate-limit.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE";
export const methods: readonly Method[] = ["GET", "POST", "PUT", "DELETE"];

/**
 * Response headers an operation can promise beyond `x-request-id` (sent on every response).
 * Each has a component in the OpenAPI document; tests/batteries/contract.test.ts checks that every
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

export interface HandlerInput<Auth extends boolean, B extends Schema, Q extends Schema> {
  /** The request as received (its signal aborts when the client leaves). */
  request: Request;
  /** Runtime services bound to this request (logger with the request id). */
  deps: Deps;
  /** The caller: always set on routes with `auth: true`. */
  userId: Auth extends true ? string : undefined;
  body: Output<B>;
  query: Output<Q>;
}

export interface RouteSpec<Auth extends boolean = boolean, B extends Schema = Schema, Q extends Schema = Schema> {
  method: Method;
  /** Public path, as clients call it. */
  path: string;
  /** More paths served by the same handler (e.g. the Vercel file path a rewrite points at). */
  aliases?: string[];
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** A Clerk session is required in production (development runs as DEV_USER_ID without one). */
  auth: Auth;
  /** Counted (after auth and validation) against this per-user limit; 2xx answers carry RateLimit headers. */
  rateLimit?: RateLimitBucket;
  /**
   * The handler counts the rate limit itself, inside its first statement (one round trip
   * instead of two; lib/blog/start.ts), and sets the RateLimit headers on its answer.
   */
  rateLimitInHandler?: boolean;
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
  };
  query?: { schema: NonNullable<Q>; example: Record<string, string> };
  /** Success responses by status (problems are derived from `problems`, auth, body and rate limit). */
  responses: Record<number, ResponseSpec>;
  /** Problems this operation answers besides those every route, body, protected or rate-limited route may. */
  problems: ErrorCode[];
  /** Streams its response (Server-Sent Events). */
  streaming?: boolean;
  handler(input: HandlerInput<Auth, B, Q>): Promise<Response>;
}

/** Any route, for lists of routes. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteSpec<boolean, any, any>;

/** Declares one endpoint (identity at run time; it gives the handler typed input). */
export function defineRoute<Auth extends boolean, B extends Schema = undefined, Q extends Schema = undefined>(
  spec: RouteSpec<Auth, B, Q>,
): RouteSpec<Auth, B, Q> {
  return spec;
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
