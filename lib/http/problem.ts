/** The one place that renders RFC 9457 problem+json. */
import { type AppError, errorCodes, titles, type ErrorCode } from "./errors.js";

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
  /**
   * The Retry-After seconds, in the body too: a stream's `error` event has no header to carry
   * them, and ALwrity's frontend reads `response.data.retry_after` on a 429 (hence snake_case).
   */
  retry_after?: number;
  [extra: string]: unknown;
}

export function problemBody(error: AppError, requestId: string): ProblemBody {
  const retryHeader = Object.entries(error.headers).find(([name]) => name.toLowerCase() === "retry-after")?.[1];
  const seconds = retryHeader === undefined || retryHeader.trim() === "" ? NaN : Number(retryHeader);
  const retryAfter = Number.isSafeInteger(seconds) && seconds >= 0 ? seconds : undefined;
  return {
    ...error.extra,
    type: PROBLEM_TYPE_BASE + error.code,
    title: titles[error.code],
    status: errorCodes[error.code],
    detail: error.detail,
    code: error.code,
    requestId,
    ...(error.action ? { action: error.action } : {}),
    ...(error.errors ? { errors: error.errors } : {}),
    ...(retryAfter !== undefined ? { retry_after: retryAfter } : {}),
  };
}

export function problemResponse(error: AppError, requestId: string): Response {
  const headers = new Headers({ "content-type": "application/problem+json", "cache-control": "no-store" });
  for (const [name, value] of Object.entries(error.headers)) headers.set(name, value);
  return new Response(JSON.stringify(problemBody(error, requestId)), { status: error.status, headers });
}
