/**
 * One error type for everything the service answers on purpose, with a closed set of
 * stable kebab-case codes and one exhaustive code → status map. Rendering to RFC 9457
 * problem+json happens in `lib/http/problem.ts`, in one place.
 */

export const errorCodes = {
  "invalid-json": 400,
  "invalid-request": 400,
  "invalid-key-format": 400,
  "invalid-webhook-signature": 400,
  unauthorized: 401,
  "budget-exceeded": 402,
  "cross-site-request": 403,
  "not-found": 404,
  "key-not-found": 404,
  "method-not-allowed": 405,
  "not-acceptable": 406,
  "missing-provider-key": 409,
  "payload-too-large": 413,
  "unsupported-media-type": 415,
  "misdirected-request": 421,
  "provider-rejected-key": 422,
  "rate-limited": 429,
  "internal-error": 500,
  "server-misconfigured": 500,
  "upstream-unavailable": 502,
  "database-unavailable": 503,
  "model-unavailable": 503,
  "upstream-timeout": 504,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof errorCodes;

export const titles: Record<ErrorCode, string> = {
  "invalid-json": "Body is not valid JSON",
  "invalid-request": "Request is invalid",
  "invalid-key-format": "API key has the wrong format",
  "invalid-webhook-signature": "Webhook signature is invalid",
  unauthorized: "Authentication required",
  "budget-exceeded": "Monthly budget exceeded",
  "cross-site-request": "Cross-site request refused",
  "not-found": "Not found",
  "key-not-found": "No such key",
  "method-not-allowed": "Method not allowed",
  "not-acceptable": "Not acceptable",
  "missing-provider-key": "Provider key missing",
  "payload-too-large": "Body too large",
  "unsupported-media-type": "Unsupported media type",
  "misdirected-request": "Not served to this host",
  "provider-rejected-key": "Provider rejected the key",
  "rate-limited": "Too many requests",
  "internal-error": "Internal error",
  "server-misconfigured": "Server misconfigured",
  "upstream-unavailable": "Upstream unavailable",
  "database-unavailable": "Database unavailable",
  "model-unavailable": "Configured model unavailable",
  "upstream-timeout": "Upstream timed out",
};

/** A field-level problem: `pointer` is a JSON Pointer into the request (body or query). */
export interface FieldError {
  pointer: string;
  message: string;
}

export interface AppErrorOptions {
  detail: string;
  /** What the caller can do about it, e.g. "POST /api/onboarding/api-keys". */
  action?: string;
  errors?: FieldError[];
  /** Extra response headers such as Retry-After or Allow. */
  headers?: Record<string, string>;
  /** Safe extra members of the problem (never key material), e.g. `provider`. */
  extra?: Record<string, string | number | boolean>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  readonly action: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  readonly extra: Record<string, string | number | boolean>;

  constructor(code: ErrorCode, options: AppErrorOptions) {
    super(`${code}: ${options.detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = errorCodes[code];
    this.detail = options.detail;
    this.action = options.action;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extra = options.extra ?? {};
  }
}

/** Expected failures inside lib/ are returned, not thrown. */
export type Result<T, E = AppError> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });
