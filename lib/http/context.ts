/** What the app's pipeline (lib/app.ts) puts on each request's Hono context, for the steps after it. */
import type { Context } from "hono";
import type { Deps, Runtime } from "../platform/runtime.js";

export type AppEnv = {
  Variables: {
    /** Set first (middleware/request-id.ts); every answer carries it as `x-request-id`. */
    requestId: string;
    /** The id this server made for the request, whatever the client sent (stored beside requestId in audit and usage rows). */
    serverRequestId: string;
    /** The instance's runtime (middleware/runtime.ts). */
    runtime: Runtime;
    /** The runtime bound to this request (middleware/deps.ts). */
    deps: Deps;
    /** Reads the request's body (once, capped) for the route that parses it: middleware/body-limit.ts (unset for GET and HEAD). */
    readBody: () => Promise<Uint8Array>;
  };
};

export type AppContext = Context<AppEnv>;
