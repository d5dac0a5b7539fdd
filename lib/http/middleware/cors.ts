/**
 * CORS for the allow-list only (ALLOWED_ORIGINS): hono/cors answers a listed origin's preflight
 * (with `Allow`) and sets the headers of its other requests; any other origin gets no CORS
 * headers at all, and a preflight of a path the route table does not serve goes on (404).
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AllowFor } from "../allow.js";
import type { AppEnv } from "../context.js";

const exposedHeaders = ["x-request-id", "retry-after", "ratelimit", "ratelimit-policy"];
const allowedRequestHeaders = ["authorization", "content-type", "accept", "x-request-id"];

/**
 * A preflight's path with every trailing slash removed (routing removes one). A loop, not
 * `/\/+$/`: that regex rescans every run of slashes from each of its slashes (quadratic).
 */
function withoutTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  return path.slice(0, end);
}

/**
 * `allowFor`: the whole route table's, whatever the mode. So, as before, a listed origin's
 * preflight of a development-only path is answered 204 in production too, though the request
 * itself is then 404 there (tests/batteries/cors.security.test.ts expects the 204).
 */
export function allowListCors(allowFor: AllowFor): MiddlewareHandler<AppEnv> {
  const allowAt = (path: string) => allowFor(withoutTrailingSlashes(path));
  const preflightAndHeaders = cors({
    origin: (origin) => origin,
    credentials: true,
    exposeHeaders: exposedHeaders,
    allowHeaders: allowedRequestHeaders,
    allowMethods: (_origin, c) => (allowAt(c.req.path) ?? "").split(", "),
    maxAge: 600,
  });
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (!origin) return next();
    const allow = c.req.method === "OPTIONS" ? allowAt(c.req.path) : undefined;
    if (!c.get("runtime").config.allowedOrigins.includes(origin) || (c.req.method === "OPTIONS" && allow === undefined)) {
      await next();
      c.header("vary", "Origin", { append: true });
      return;
    }
    if (allow !== undefined) c.header("allow", allow);
    return preflightAndHeaders(c, next);
  };
}
