/**
 * Wraps endpoint implementations into Web-standard handlers (what Vercel runs as they are
 * and what the local server and the Lambda adapter call): request id, CORS, method checks,
 * and the single mapping of errors to problems.
 */
import { randomUUID } from "node:crypto";
import { AppError } from "./errors.js";
import { problemResponse } from "./problem.js";
import { getRuntime, type Runtime } from "../runtime.js";
import { createLogger, redact, type Logger } from "../log.js";
import { ConfigError } from "../env.js";
import { isDatabaseUnavailable } from "../../db/client.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE";
export const methods: readonly Method[] = ["GET", "POST", "PUT", "DELETE"];

export interface RequestContext {
  request: Request;
  requestId: string;
  runtime: Runtime;
  logger: Logger;
}

export type Implementation = (ctx: RequestContext) => Promise<Response>;
export type WebHandler = (request: Request) => Promise<Response>;
export type RouteHandlers = Partial<Record<Method, WebHandler>> & { OPTIONS: WebHandler };

const requestIdPattern = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * `req_` + 24 hex digits (96 bits). randomUUID draws from Node's buffered entropy pool, unlike
 * randomBytes' synchronous call per request; no dashes, so a request id never looks like an
 * Exa key (a UUID) to the log redactor.
 */
export function newRequestId(): string {
  const uuid = randomUUID().replace(/-/g, "");
  return "req_" + uuid.slice(0, 12) + uuid.slice(13, 25);
}

const exposedHeaders = "x-request-id, retry-after, ratelimit, ratelimit-policy";

function corsHeaders(request: Request, runtime: Runtime): Headers {
  const headers = new Headers();
  const origin = request.headers.get("origin");
  if (origin && runtime.config.allowedOrigins.includes(origin)) {
    headers.set("access-control-allow-origin", origin);
    headers.set("access-control-allow-credentials", "true");
    headers.set("access-control-expose-headers", exposedHeaders);
  }
  if (origin) headers.set("vary", "Origin");
  return headers;
}

function withHeaders(response: Response, extra: Headers): Response {
  try {
    extra.forEach((value, name) => response.headers.set(name, value));
    return response;
  } catch {
    // Immutable headers (a Response from fetch): copy it.
    const headers = new Headers(response.headers);
    extra.forEach((value, name) => headers.set(name, value));
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}

/** Turns any thrown value into a problem response; unknown errors are logged and answered 500. */
export function errorResponse(error: unknown, requestId: string, logger: Logger): Response {
  if (error instanceof AppError) {
    if (error.status >= 500) logger.warn("request failed", { code: error.code, status: error.status });
    return problemResponse(error, requestId);
  }
  if (isDatabaseUnavailable(error)) {
    logger.error("database unavailable", { errorName: errorName(error), errorCode: errorCode(error) });
    return problemResponse(
      new AppError("database-unavailable", { detail: "the database could not be reached or the connection dropped; try again (saving keys and the session is safe to repeat)", headers: { "retry-after": "5" } }),
      requestId,
    );
  }
  logger.error("unhandled error", { errorName: errorName(error), errorCode: errorCode(error), message: safeMessage(error) });
  return problemResponse(
    new AppError("internal-error", { detail: `an unexpected error occurred; quote request id ${requestId} when reporting it` }),
    requestId,
  );
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown; cause?: { code?: unknown } } | null)?.code ?? (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === "string" ? code : undefined;
}
/** Drizzle's query errors carry the SQL parameters in their message: log the driver's cause instead. */
function safeMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const cause = (error as { cause?: unknown }).cause;
  if (error.message.startsWith("Failed query:")) return cause instanceof Error ? cause.message.slice(0, 300) : "query failed";
  return error.message.slice(0, 300);
}

/**
 * The runtime, or a 500 server-misconfigured problem when the environment does not parse
 * (the reason goes to the log by variable name, never a value; the next request tries again).
 */
function runtimeOrProblem(): Runtime | Response {
  try {
    return getRuntime();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const requestId = newRequestId();
    createLogger().error("invalid configuration", { requestId, issues: error.issues });
    const response = problemResponse(
      new AppError("server-misconfigured", { detail: "the service's configuration is invalid; the operator must fix it" }),
      requestId,
    );
    response.headers.set("x-request-id", requestId);
    return response;
  }
}

/** Builds the exported handlers of one endpoint file, plus OPTIONS for CORS preflight. */
export function defineRoute(implementations: Partial<Record<Method, Implementation>>): RouteHandlers {
  const allowed = [...(Object.keys(implementations) as Method[]), "OPTIONS"].join(", ");
  const wrap =
    (implementation: Implementation): WebHandler =>
    async (request) => {
      const runtime = runtimeOrProblem();
      if (runtime instanceof Response) return runtime;
      const incoming = request.headers.get("x-request-id");
      // A client's id is kept for tracing unless it looks like a secret (it is echoed and stored).
      const requestId = incoming && requestIdPattern.test(incoming) && redact(incoming) === incoming ? incoming : newRequestId();
      const logger = runtime.logger.child({ requestId });
      let response: Response;
      try {
        response = await implementation({ request, requestId, runtime, logger });
      } catch (error) {
        response = errorResponse(error, requestId, logger);
      }
      const extra = corsHeaders(request, runtime);
      extra.set("x-request-id", requestId);
      return withHeaders(response, extra);
    };

  const handlers: RouteHandlers = {
    OPTIONS: async (request) => {
      const runtime = runtimeOrProblem();
      if (runtime instanceof Response) return runtime;
      const headers = corsHeaders(request, runtime);
      headers.set("allow", allowed);
      if (headers.has("access-control-allow-origin")) {
        headers.set("access-control-allow-methods", allowed);
        headers.set("access-control-allow-headers", "authorization, content-type, accept, x-request-id");
        headers.set("access-control-max-age", "600");
      }
      headers.set("x-request-id", newRequestId());
      return new Response(null, { status: 204, headers });
    },
  };
  for (const [method, implementation] of Object.entries(implementations) as [Method, Implementation][]) {
    handlers[method] = wrap(implementation);
  }
  return handlers;
}

/** A 405 for methods an endpoint does not have (used by the route table adapters). */
export function methodNotAllowed(allow: string[]): Response {
  const requestId = newRequestId();
  const error = new AppError("method-not-allowed", { detail: `use one of ${allow.join(", ")}`, headers: { allow: allow.join(", "), "x-request-id": requestId } });
  return problemResponse(error, requestId);
}

export function json(data: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
  return new Response(JSON.stringify(data), { ...init, headers });
}

export function noContent(): Response {
  return new Response(null, { status: 204, headers: { "cache-control": "no-store" } });
}
