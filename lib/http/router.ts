/**
 * The routes one mode serves, as a Hono app of their own (hono/tiny) that the app's pipeline
 * (lib/app.ts) hands each request to once its middleware ran. Production never registers a
 * development-only route: there its path is no path at all (404, no 405, no Allow).
 *
 * What no route answers: OPTIONS on a served path 204 with Allow, another method 405
 * method-not-allowed with Allow, any other path 404 not-found. Problems are thrown back to the
 * app's error handler (it has the request id and the logger).
 */
import { Hono } from "hono/tiny";
import { AppError } from "./errors.js";
import { allowTable, type AllowFor } from "./allow.js";
import { serve } from "./serve.js";
import type { AnyRoute } from "./route.js";
import type { AppContext } from "./context.js";
import type { Mode } from "../platform/env.js";
import { redact } from "../platform/log.js";

/** The router's own context carries the app's as its env. */
type RouterEnv = { Bindings: AppContext };

export interface Router {
  /** Routes the request of `c` (the app's context). */
  dispatch(c: AppContext): Response | Promise<Response>;
}

export function createRouter(routes: readonly AnyRoute[], mode: Mode): Router {
  const served = mode === "development" ? routes : routes.filter((route) => !route.developmentOnly);
  const allowFor = allowTable(served);
  const router = new Hono<RouterEnv>({ strict: false });
  for (const route of served) {
    for (const path of [route.path, ...(route.aliases ?? [])]) router.on(route.method, path, (c) => serve(route, c.env, c.req.param()));
  }
  router.notFound((c) => unrouted(c.env, allowFor));
  router.onError((error) => {
    throw error;
  });
  return { dispatch: (c) => router.fetch(c.req.raw, c) };
}

function unrouted(c: AppContext, allowFor: AllowFor): Response {
  const allow = allowFor(c.req.path);
  if (allow === undefined) throw new AppError("not-found", { detail: `no endpoint at ${redact(c.req.path.slice(0, 200))}` });
  if (c.req.method === "OPTIONS") return new Response(null, { status: 204, headers: { allow } });
  throw new AppError("method-not-allowed", { detail: `${c.req.method} is not served here; use one of ${allow}`, headers: { allow } });
}
