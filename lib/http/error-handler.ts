/**
 * The app's one error handler: any thrown value becomes problem+json (lib/http/problem.ts) with
 * the request id. An AppError is answered as it is; an invalid configuration 500
 * server-misconfigured; an unreachable database 503 database-unavailable; anything else is
 * logged and answered 500 internal-error.
 */
import { AppError } from "./errors.js";
import { problemResponse } from "./problem.js";
import type { AppContext } from "./context.js";
import { newRequestId } from "./middleware/request-id.js";
import { ConfigError } from "../platform/env.js";
import { createLogger, type Logger } from "../platform/log.js";
import { isDatabaseUnavailable } from "../../db/client.js";

export function renderError(error: unknown, c: AppContext): Response {
  const requestId = c.get("requestId") ?? newRequestId();
  const logger: Logger = c.get("deps")?.logger ?? createLogger().child({ requestId });
  let appError: AppError;
  if (error instanceof AppError) {
    appError = error;
    if (appError.status >= 500) logger.warn("request failed", { code: appError.code, status: appError.status });
  } else if (error instanceof ConfigError) {
    // The issues name variables and rules, never values.
    logger.error("invalid configuration", { issues: error.issues });
    appError = new AppError("server-misconfigured", { detail: "the service's configuration is invalid; the operator must fix it" });
  } else if (isDatabaseUnavailable(error)) {
    logger.error("database unavailable", { errorName: errorName(error), errorCode: errorCode(error) });
    appError = new AppError("database-unavailable", {
      detail: "the database could not be reached or the connection dropped; try again (saving keys and the session is safe to repeat)",
      headers: { "retry-after": "5" },
    });
  } else {
    logger.error("unhandled error", { errorName: errorName(error), errorCode: errorCode(error), message: safeMessage(error) });
    appError = new AppError("internal-error", { detail: `an unexpected error occurred; quote request id ${requestId} when reporting it` });
  }
  return problemResponse(appError, requestId);
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code ?? (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === "string" ? code : undefined;
}
/** Drizzle's query errors carry the SQL parameters in their message: log the driver's cause instead. */
function safeMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const cause = (error as { cause?: unknown }).cause;
  if (error.message.startsWith("Failed query:")) return cause instanceof Error ? cause.message.slice(0, 300) : "query failed";
  return error.message.slice(0, 300);
}
