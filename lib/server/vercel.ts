/**
 * Vercel entry: the app over one function's routes, exported under every method name Vercel
 * looks for, so the app (not the platform) answers 405 and preflights. One function per
 * file keeps `vercel.json`'s per-function `maxDuration` and keeps each function's traced
 * files to what its routes import (the Gemini/Exa SDKs stay in generation's function).
 */
import { createApp } from "../app.js";
import type { AnyRoute } from "../http/route.js";

type WebHandler = (request: Request) => Promise<Response>;

export function vercelFunction(
  routes: readonly AnyRoute[],
): Record<"GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS", WebHandler> {
  const app = createApp(routes);
  const fetch: WebHandler = async (request) => app.fetch(request);
  return { GET: fetch, HEAD: fetch, POST: fetch, PUT: fetch, PATCH: fetch, DELETE: fetch, OPTIONS: fetch };
}
