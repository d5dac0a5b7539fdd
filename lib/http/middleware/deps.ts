/**
 * The runtime bound to this request (its logger carries the request id), as handlers receive it.
 * The configuration's problems are checked (and each logged) on the instance's first request
 * that gets this far, then cached.
 */
import type { MiddlewareHandler } from "hono";
import { bindRequest } from "../../platform/runtime.js";
import type { AppEnv } from "../context.js";

export const bindDeps: MiddlewareHandler<AppEnv> = async (c, next) => {
  const runtime = c.get("runtime");
  runtime.configProblems();
  c.set("deps", bindRequest(runtime, c.get("requestId"), c.get("serverRequestId")));
  await next();
};
