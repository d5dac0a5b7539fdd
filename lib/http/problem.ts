/** The one place that renders RFC 9457 problem+json. */
import { AppError, errorCodes, titles, type ErrorCode } from "./errors.js";

export const PROBLEM_TYPE_BASE = "https://byok-functions.dev/problems/";

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  requestId: string;
  action?: string;
  errors?: { pointer: string; message: string }[];
  [extra: string]: unknown;
}

/**
 * `retry_after` (seconds) beside the Retry-After header, for clients that read it from the body
 * (ALwrity's frontend reads `response.data.retry_after` on a 429).
 */
function retryAfterSeconds(error: AppError): number | undefined {
  const header = Object.entries(error.headers).find(([name]) => name.toLowerCase() === "retry-after")?.[1];
  const seconds = header === undefined ? NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

export function problemBody(error: AppError, requestId: string): ProblemBody {
  const retryAfter = retryAfterSeconds(error);
  return {
    ...error.extra,
    ...(retryAfter !== undefined ? { retry_after: retryAfter } : {}),
    type: PROBLEM_TYPE_BASE + error.code,
    title: titles[error.code],
    status: errorCodes[error.code],
    detail: error.detail,
    code: error.code,
    requestId,
    ...(error.action ? { action: error.action } : {}),
    ...(error.errors ? { errors: error.errors } : {}),
  };
}

export function problemResponse(error: AppError, requestId: string): Response {
  const headers = new Headers({ "content-type": "application/problem+json", "cache-control": "no-store" });
  for (const [name, value] of Object.entries(error.headers)) headers.set(name, value);
  return new Response(JSON.stringify(problemBody(error, requestId)), { status: error.status, headers });
}
