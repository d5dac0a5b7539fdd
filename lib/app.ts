/**
 * The one app. Vercel's functions (api/), the Lambda handlers and `npm start` all serve it,
 * and tests call it in-process with `app.request(...)`. One pipeline for every route:
 *
 *   request id → local only (development) → CORS → body limit → dependencies → [auth →
 *   query → body → handler (which counts its rate limit in its own statement)] → one error handler / one not-found handler, both
 *   rendering problem+json.
 *
 * Routes are the definitions in lib/routes/ (lib/http/route.ts); the same objects produce
 * the OpenAPI document.
 */
import { Hono } from "hono/tiny";
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { bodyLimit } from "hono/body-limit";
import { randomUUID } from "node:crypto";
import { AppError } from "./http/errors.js";
import { problemResponse } from "./http/problem.js";
import { MAX_BODY_BYTES, readJsonBody, readParams, readQuery } from "./http/request.js";
import type { AnyRoute, Method } from "./http/route.js";
import { ConfigError } from "./platform/env.js";
import { createLogger, redact, truncate, type Logger } from "./platform/log.js";
import { notLocalReason } from "./platform/dev/local-only.js";
import { bindRequest, processRuntime, type Deps, type Runtime } from "./platform/runtime.js";
import { isDatabaseUnavailable } from "../db/client.js";

export type AppEnv = { Variables: { requestId: string; runtime: Runtime; deps: Deps } };
export type App = Hono<AppEnv>;

/** A runtime, or how to get one on first request (the default reads the process environment). */
export type RuntimeSource = Runtime | (() => Runtime);

/** `req_` + 24 hex digits (96 bits); no dashes, so an id never looks like an Exa key (a UUID). */
export function newRequestId(): string {
  const uuid = randomUUID().replace(/-/g, "");
  return "req_" + uuid.slice(0, 12) + uuid.slice(13, 25);
}

const incomingRequestId = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * A client's x-request-id is kept for tracing unless it looks like a secret: it is echoed and
 * logged. Hand-written because `hono/request-id` accepts any `[\w-=]` id (an Exa key is a
 * UUID) and has no hook to refuse one.
 */
const requestIdMiddleware: MiddlewareHandler<AppEnv> = async (c, next) => {
  const incoming = c.req.header("x-request-id");
  const id = incoming && incomingRequestId.test(incoming) && redact(incoming) === incoming ? incoming : newRequestId();
  c.set("requestId", id);
  await next();
  // After the handler (or the error handler) made the response: every answer carries it.
  c.header("x-request-id", id);
};

const exposedHeaders = ["x-request-id", "retry-after", "ratelimit", "ratelimit-policy"];
const allowedRequestHeaders = ["authorization", "content-type", "accept", "x-request-id"];

/**
 * The path as routed: trailing slashes do not matter (Hono's `strict: false`). A loop, not
 * `/\/+$/`: that regex rescans every run of slashes from each of its slashes (quadratic).
 */
function routedPath(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  return path.slice(0, end);
}

/** Renders any thrown value as problem+json; unknown errors are logged and answered 500. */
function renderError(error: unknown, c: Context<AppEnv>): Response {
  const requestId = c.get("requestId") ?? newRequestId();
  const logger: Logger = c.get("deps")?.logger ?? createLogger().child({ requestId });
  let appError: AppError;
  if (error instanceof AppError) {
    appError = error;
    if (appError.status >= 500) logger.warn("request failed", { code: appError.code, status: appError.status });
  } else if (error instanceof ConfigError) {
    // The issues name variables and rules, never values.
    logger.error("invalid configuration", { issues: error.issues });
    appError = new AppError("server-misconfigured", { detail: "the service's configuration is invalid; the operator must fix it" });
  } else if (isDatabaseUnavailable(error)) {
    logger.error("database unavailable", { errorName: errorName(error), errorCode: errorCode(error) });
    appError = new AppError("database-unavailable", {
      detail: "the database could not be reached or the connection dropped; try again (saving keys and the session is safe to repeat)",
      headers: { "retry-after": "5" },
    });
  } else {
    logger.error("unhandled error", { errorName: errorName(error), errorCode: errorCode(error), message: safeMessage(error) });
    appError = new AppError("internal-error", { detail: `an unexpected error occurred; quote request id ${requestId} when reporting it` });
  }
  return problemResponse(appError, requestId);
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code ?? (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === "string" ? code : undefined;
}
/** Drizzle's query errors carry the SQL parameters in their message: log the driver's cause instead. */
function safeMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const cause = (error as { cause?: unknown }).cause;
  if (error.message.startsWith("Failed query:")) return cause instanceof Error ? cause.message.slice(0, 300) : "query failed";
  return error.message.slice(0, 300);
}

/** Clerk verification, loaded by the first request that needs a user: public-only functions (health) never load it. */
let auth: Promise<typeof import("./platform/auth/user.js")> | undefined;
const loadAuth = () => (auth ??= import("./platform/auth/user.js"));

/** Runs one route's definition: auth, input, rate limit, handler; documented headers added. */
function serve(route: AnyRoute) {
  return async (c: Context<AppEnv>): Promise<Response> => {
    const deps = c.get("deps");
    const request = c.req.raw;
    if (route.developmentOnly && deps.config.mode !== "development") {
      throw new AppError("not-found", { detail: `no endpoint at ${redact(c.req.path.slice(0, 200))}` });
    }
    // Who is asking comes first: an unauthenticated caller learns nothing about the path either.
    const userId = route.auth ? (await (await loadAuth()).requireUser(deps, request)).userId : undefined;
    const params = route.params ? readParams(c.req.param() as Record<string, string>, route.params.schema, c.req.path) : undefined;
    const query = route.query ? readQuery(request, route.query.schema) : undefined;
    const verify = route.body?.verify;
    const body = route.body
      ? await readJsonBody(request, route.body.schema, {
          codeFor: route.body.codeFor,
          formFor: route.body.formFor,
          ...(verify ? { verify: (text: string) => verify({ text, request, deps }) } : {}),
        })
      : undefined;
    return route.handler({ request, deps, userId, body, query, params });
  };
}

export interface AppOptions {
  /** Where the runtime comes from (default: the process environment, on first request). */
  runtime?: RuntimeSource;
}

/** The app over `routes`: every platform's entry point is a one-liner over this. */
export function createApp(routes: readonly AnyRoute[], options: AppOptions = {}): App {
  const source = options.runtime ?? processRuntime;
  const runtime = (): Runtime => (typeof source === "function" ? source() : source);

  const methodsByPath = new Map<string, Method[]>();
  for (const route of routes) {
    for (const path of [route.path, ...(route.aliases ?? [])]) {
      const list = methodsByPath.get(path) ?? [];
      if (list.includes(route.method)) throw new Error(`two routes for ${route.method} ${path}`);
      methodsByPath.set(path, [...list, route.method]);
    }
  }
  // Paths with `:name` segments, matched segment by segment (a request's path is concrete).
  const patterns = [...methodsByPath.keys()].filter((p) => p.includes("/:")).map((p) => ({ p, segments: p.split("/") }));
  const servedPattern = (path: string): string | undefined => {
    const routed = routedPath(path);
    if (methodsByPath.has(routed)) return routed;
    const segments = routed.split("/");
    return patterns.find((x) => x.segments.length === segments.length && x.segments.every((s, i) => s.startsWith(":") ? segments[i] !== "" : s === segments[i]))?.p;
  };
  const allowFor = (path: string) => [...(methodsByPath.get(servedPattern(path) ?? "") ?? []), "OPTIONS"].join(", ");

  const corsMiddleware = cors({
    origin: (origin) => origin,
    credentials: true,
    exposeHeaders: exposedHeaders,
    allowHeaders: allowedRequestHeaders,
    allowMethods: (_origin, c) => allowFor(c.req.path).split(", "),
    maxAge: 600,
  });

  const app = new Hono<AppEnv>({ strict: false });
  app.use(requestIdMiddleware);
  // The runtime, once per request: an invalid configuration (ConfigError) is answered here,
  // 500 server-misconfigured, before anything else runs; the next request tries again.
  app.use(async (c, next) => {
    c.set("runtime", runtime());
    await next();
  });
  // Development serves the operator's .env keys without sign-in: only to this machine (a
  // DNS-rebinding page or a tunnel is not). Before anything else runs: no CORS, no database,
  // no .env.
  app.use(async (c, next) => {
    const current = c.get("runtime");
    if (current.config.mode !== "development") return next();
    const reason = notLocalReason(c.req.raw);
    if (reason === null) return next();
    current.logger.warn("request refused: the development server answers only this machine", {
      requestId: c.get("requestId"),
      reason,
      host: truncate(c.req.header("host") ?? new URL(c.req.url).host, 100),
    });
    throw new AppError("misdirected-request", {
      detail:
        "this development server answers only requests addressed to localhost, 127.0.0.1 or [::1] that came through no proxy",
      action: `open it as http://localhost:${current.config.port}, or deploy it (production mode) to serve anyone else`,
    });
  });
  // CORS for the allow-list only (hono/cors answers preflights and sets the headers); other
  // origins get no CORS headers at all, and a preflight of a path we don't serve is a 404.
  app.use(async (c, next) => {
    const origin = c.req.header("origin");
    if (!origin) return next();
    const allowed = c.get("runtime").config.allowedOrigins;
    const preflightElsewhere = c.req.method === "OPTIONS" && servedPattern(c.req.path) === undefined;
    if (!allowed.includes(origin) || preflightElsewhere) {
      await next();
      c.header("vary", "Origin", { append: true });
      return;
    }
    if (c.req.method === "OPTIONS") c.header("allow", allowFor(c.req.path));
    return corsMiddleware(c, next);
  });
  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new AppError("payload-too-large", { detail: `the body is larger than ${MAX_BODY_BYTES} bytes` });
    },
  });
  // GET and HEAD never read a body. hono's bodyLimit looks at `request.body`, which makes
  // @hono/node-server build a full undici Request (with two AbortControllers) for every
  // request: a measurable share of a GET's CPU (issue 13's profile), for nothing.
  app.use((c, next) => (c.req.method === "GET" || c.req.method === "HEAD" ? next() : limitBody(c, next)));
  app.use(async (c, next) => {
    const current = c.get("runtime");
    // Checked (and each problem logged) on the instance's first request, then cached.
    current.configProblems();
    c.set("deps", bindRequest(current, c.get("requestId")));
    await next();
  });

  for (const route of routes) {
    for (const path of [route.path, ...(route.aliases ?? [])]) app.on(route.method, path, serve(route));
  }
  // A development-only path is no path at all in production (no 405, no Allow, no preflight).
  const servedAt = (path: string) => routes.filter((r) => r.path === path || (r.aliases ?? []).includes(path));
  const developmentOnlyPaths = new Set(
    [...methodsByPath.keys()].filter((path) => servedAt(path).length > 0 && servedAt(path).every((r) => r.developmentOnly)),
  );
  const hiddenHere = (c: Context<AppEnv>, path: string) =>
    developmentOnlyPaths.has(path) && c.get("runtime").config.mode !== "development";
  for (const path of methodsByPath.keys()) {
    app.options(path, (c) => {
      if (hiddenHere(c, path)) throw new AppError("not-found", { detail: `no endpoint at ${redact(c.req.path.slice(0, 200))}` });
      return c.body(null, 204, { allow: allowFor(path) });
    });
    app.all(path, (c) => {
      if (hiddenHere(c, path)) throw new AppError("not-found", { detail: `no endpoint at ${redact(c.req.path.slice(0, 200))}` });
      throw new AppError("method-not-allowed", {
        detail: `${c.req.method} is not served here; use one of ${allowFor(path)}`,
        headers: { allow: allowFor(path) },
      });
    });
  }

  app.notFound((c) => renderError(new AppError("not-found", { detail: `no endpoint at ${redact(c.req.path.slice(0, 200))}` }), c));
  app.onError((error, c) => renderError(error, c));
  return app;
}
