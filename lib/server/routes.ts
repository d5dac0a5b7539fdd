/**
 * The one route table. Vercel runs the files in api/ as they are; the local server and the
 * Lambda adapter dispatch through this table (tests/routes.test.ts checks that the two agree).
 * Modules load on first use, so an instance only pays for the endpoints it serves.
 */
import type { RouteHandlers } from "../http/handler.js";

export interface Route {
  /** Public path, as clients call it. */
  path: string;
  /** The endpoint file under api/ (Vercel's file-system routing). */
  file: string;
  /** Whether the route requires a Clerk session in production. */
  protected: boolean;
  /** Streams its response (Server-Sent Events). */
  streaming?: boolean;
  load: () => Promise<Partial<RouteHandlers>>;
}

export const routes: readonly Route[] = [
  { path: "/api/health", file: "api/health.ts", protected: false, load: () => import("../../api/health.js") },
  { path: "/api/openapi.json", file: "api/openapi.ts", protected: false, load: () => import("../../api/openapi.js") },
  {
    path: "/api/onboarding/api-keys",
    file: "api/onboarding/api-keys.ts",
    protected: true,
    load: () => import("../../api/onboarding/api-keys.js"),
  },
  {
    path: "/api/blog/generate",
    file: "api/blog/generate.ts",
    protected: true,
    streaming: true,
    load: () => import("../../api/blog/generate.js"),
  },
  { path: "/api/usage", file: "api/usage.ts", protected: true, load: () => import("../../api/usage.js") },
  {
    path: "/api/onboarding/session",
    file: "api/onboarding/session.ts",
    protected: true,
    load: () => import("../../api/onboarding/session.js"),
  },
];
