/**
 * Cross-site "simple" requests: a page anywhere can make a browser send a POST with a
 * `text/plain`, form or multipart body, or with no body at all, without a CORS preflight; the
 * browser only hides the answer. Such a request must not change anything (in development it
 * runs on the operator's `.env` keys without sign-in). So, for every method but GET, HEAD and
 * OPTIONS, before a handler runs (after middleware/body-limit.ts, whose 413 comes first):
 *
 * - a request with a body must say `content-type: application/json` (or `+json`), which no
 *   page can send cross-site without a preflight that CORS answers for ALLOWED_ORIGINS only:
 *   415 unsupported-media-type otherwise;
 * - a request without a body (DELETE, a body-less POST) may carry no `Origin`, or its own
 *   (same host), or one of ALLOWED_ORIGINS: 403 cross-site-request otherwise. `Origin: null`
 *   (sandboxed frames, file: pages) is foreign.
 *
 * Clients that are not browsers (curl, ALwrity's backend, Clerk's webhook) send no `Origin`
 * and JSON bodies, and are unaffected.
 */
import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors.js";
import type { AppEnv } from "../context.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** `application/json`, `application/problem+json`, … with or without parameters. */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const essence = value.split(";")[0]!.trim().toLowerCase();
  if (!essence.startsWith("application/")) return false;
  const subtype = essence.slice("application/".length);
  return subtype === "json" || (subtype.endsWith("+json") && subtype.length > "+json".length);
}

/**
 * Does the request carry a body? A declared length above 0, or a chunked one; without either
 * (requests built in-process, some adapters), the bytes middleware/body-limit.ts already read.
 * Not `request.body !== null`: @hono/node-server gives every POST and DELETE a body stream,
 * empty or not.
 */
async function hasBody(
  contentLength: string | undefined,
  transferEncoding: string | undefined,
  readBody: () => Promise<Uint8Array>,
): Promise<boolean> {
  if (transferEncoding !== undefined) return true;
  if (contentLength !== undefined) return contentLength.trim() !== "0";
  return (await readBody()).byteLength > 0;
}

/** The origin's host (`name:port`), or null when it is not an http(s) origin. */
function originHost(origin: string): string | null {
  try {
    const url = new URL(origin);
    return url.protocol === "http:" || url.protocol === "https:" ? url.host : null;
  } catch {
    return null;
  }
}

export const crossSiteGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (SAFE_METHODS.has(c.req.method)) return next();
  const contentType = c.req.header("content-type");
  if (await hasBody(c.req.header("content-length"), c.req.header("transfer-encoding"), c.get("readBody"))) {
    if (isJsonContentType(contentType)) return next();
    throw new AppError("unsupported-media-type", { detail: "send the body as JSON with content-type: application/json" });
  }
  const origin = c.req.header("origin");
  if (origin === undefined) return next();
  const host = c.req.header("host") ?? new URL(c.req.url).host;
  const sameOrigin = originHost(origin) === host.toLowerCase();
  if (sameOrigin || c.get("runtime").config.allowedOrigins.includes(origin)) return next();
  throw new AppError("cross-site-request", {
    detail: "a request without a body from another site's page is refused (it could change state without the user's consent)",
    action: "send it from this service's own pages or an origin in ALLOWED_ORIGINS, or from a client that is not a browser",
  });
};
