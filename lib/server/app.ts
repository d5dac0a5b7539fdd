/**
 * A fetch handler over the route table, shared by the local server and the Lambda adapter:
 * `{ fetch(request) }` runs the matching endpoint handler with the given runtime.
 */
import { AppError } from "../http/errors.js";
import { methodNotAllowed, newRequestId } from "../http/handler.js";
import { problemResponse } from "../http/problem.js";
import { redact } from "../log.js";
import { withRuntime, type Runtime } from "../runtime.js";
import { routes as defaultRoutes, type Route } from "./routes.js";

const handlerNames = ["GET", "POST", "PUT", "DELETE", "OPTIONS"] as const;

export interface FetchApp {
  fetch(request: Request): Promise<Response>;
}

export function createApp(runtime: Runtime, routes: readonly Route[] = defaultRoutes): FetchApp {
  const byPath = new Map(routes.map((r) => [r.path, r]));
  return {
    async fetch(request) {
      const url = new URL(request.url);
      const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
      const route = byPath.get(path);
      if (!route) {
        const requestId = newRequestId();
        const response = problemResponse(new AppError("not-found", { detail: `no endpoint at ${redact(path)}` }), requestId);
        response.headers.set("x-request-id", requestId);
        return response;
      }
      const module = await route.load();
      const method = request.method.toUpperCase() === "HEAD" ? "GET" : request.method.toUpperCase();
      const handler = (handlerNames as readonly string[]).includes(method) ? module[method as (typeof handlerNames)[number]] : undefined;
      if (!handler) return methodNotAllowed(handlerNames.filter((m) => module[m]));
      return withRuntime(runtime, () => handler(request));
    },
  };
}
