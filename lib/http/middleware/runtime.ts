/**
 * The runtime, once per request: an invalid configuration (ConfigError) is thrown here and
 * answered 500 server-misconfigured before anything else runs; the next request tries again.
 */
import type { MiddlewareHandler } from "hono";
import type { Runtime } from "../../platform/runtime.js";
import type { AppEnv } from "../context.js";

/** A runtime, or how to get one on each request (the default reads the process environment once it parses). */
export type RuntimeSource = Runtime | (() => Runtime);

export function bindRuntime(source: RuntimeSource): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("runtime", typeof source === "function" ? source() : source);
    await next();
  };
}
