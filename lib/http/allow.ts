/**
 * Which methods a route table serves at a path, as the `Allow` header says them ("GET, PUT,
 * OPTIONS"): for OPTIONS answers, 405 problems and CORS preflights. Hono's own router matches
 * the paths (`:name` segments, one trailing slash, as routing does).
 *
 * Not hono/method-not-allowed (hono 4.13): it runs after routing by rewriting a 404 (whose
 * headers it carries over), lists HEAD (this service's Allow never did), and cannot serve a
 * CORS preflight, which is answered before routing.
 */
import { METHOD_NAME_ALL } from "hono/router";
import { PatternRouter } from "hono/router/pattern-router";
import type { AnyRoute, Method } from "./route.js";

/** The Allow header of `path`, or undefined when the table serves nothing there. */
export type AllowFor = (path: string) => string | undefined;

/** Throws on two routes for one method and path. */
export function allowTable(routes: readonly AnyRoute[]): AllowFor {
  const methodsByPath = new Map<string, Method[]>();
  for (const route of routes) {
    for (const path of [route.path, ...(route.aliases ?? [])]) {
      const methods = methodsByPath.get(path) ?? [];
      if (methods.includes(route.method)) throw new Error(`two routes for ${route.method} ${path}`);
      methodsByPath.set(path, [...methods, route.method]);
    }
  }
  const router = new PatternRouter<string>();
  for (const [path, methods] of methodsByPath) router.add(METHOD_NAME_ALL, path, [...methods, "OPTIONS"].join(", "));
  return (path) => router.match(METHOD_NAME_ALL, path)[0][0]?.[0];
}
