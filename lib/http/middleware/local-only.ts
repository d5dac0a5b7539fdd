/**
 * Development serves the operator's .env keys without sign-in: only to this machine (a
 * DNS-rebinding page or a tunnel is not), 421 misdirected-request otherwise. Runs before CORS,
 * the database and the .env file are touched. Production passes straight through.
 */
import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors.js";
import { truncate } from "../../platform/log.js";
import { notLocalReason } from "../../platform/dev/local-only.js";
import type { AppEnv } from "../context.js";

export const localOnlyInDevelopment: MiddlewareHandler<AppEnv> = async (c, next) => {
  const runtime = c.get("runtime");
  if (runtime.config.mode !== "development") return next();
  const reason = notLocalReason(c.req.raw);
  if (reason === null) return next();
  runtime.logger.warn("request refused: the development server answers only this machine", {
    requestId: c.get("requestId"),
    reason,
    host: truncate(c.req.header("host") ?? new URL(c.req.url).host, 100),
  });
  throw new AppError("misdirected-request", {
    detail: "this development server answers only requests addressed to localhost, 127.0.0.1 or [::1] that came through no proxy",
    action: `open it as http://localhost:${runtime.config.port}, or deploy it (production mode) to serve anyone else`,
  });
};
