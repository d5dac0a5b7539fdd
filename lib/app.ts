/**
 * The one app. Vercel's functions (api/), the Lambda handlers and `npm start` all serve it,
 * and tests call it in-process with `app.request(...)`. One pipeline for every route, each
 * step a middleware of lib/http/middleware/:
 *
 *   request id → runtime → local only (development) → CORS → body limit → cross-site guard
 *   (JSON bodies, known origins) → dependencies →
 *   the mode's router (lib/http/router.ts: auth → params → query → body → handler, which counts
 *   its rate limit in its own statement; else 204 / 405 / 404) → one error handler
 *   (lib/http/error-handler.ts) rendering problem+json.
 *
 * Routes are the definitions in lib/<feature>/routes/ (lib/http/route.ts); the same objects
 * produce the OpenAPI document.
 */
import { Hono } from "hono/tiny";
import type { AppEnv } from "./http/context.js";
import { allowTable } from "./http/allow.js";
import { renderError } from "./http/error-handler.js";
import { createRouter, type Router } from "./http/router.js";
import type { AnyRoute } from "./http/route.js";
import { requestId } from "./http/middleware/request-id.js";
import { bindRuntime, type RuntimeSource } from "./http/middleware/runtime.js";
import { localOnlyInDevelopment } from "./http/middleware/local-only.js";
import { allowListCors } from "./http/middleware/cors.js";
import { crossSiteGuard } from "./http/middleware/cross-site.js";
import { bodyLimit } from "./http/middleware/body-limit.js";
import { bindDeps } from "./http/middleware/deps.js";
import type { Mode } from "./platform/env.js";
import { processRuntime } from "./platform/runtime.js";

export type { AppEnv } from "./http/context.js";
export type { RuntimeSource } from "./http/middleware/runtime.js";
export { newRequestId } from "./http/middleware/request-id.js";
export type App = Hono<AppEnv>;

export interface AppOptions {
  /** Where the runtime comes from (default: the process environment, on first request). */
  runtime?: RuntimeSource;
}

/** The app over `routes`: every platform's entry point is a one-liner over this. */
export function createApp(routes: readonly AnyRoute[], options: AppOptions = {}): App {
  // The mode is the runtime's, known on a request (the environment may not parse yet): each
  // mode's router is built on its first request, with the routes that mode serves.
  const routers: Partial<Record<Mode, Router>> = {};
  const routerFor = (mode: Mode) => (routers[mode] ??= createRouter(routes, mode));

  const app = new Hono<AppEnv>({ strict: false });
  app.use(requestId);
  app.use(bindRuntime(options.runtime ?? processRuntime));
  app.use(localOnlyInDevelopment);
  app.use(allowListCors(allowTable(routes)));
  app.use(bodyLimit);
  app.use(crossSiteGuard);
  app.use(bindDeps);
  app.all("*", (c) => routerFor(c.get("runtime").config.mode).dispatch(c));
  app.onError(renderError);
  return app;
}
