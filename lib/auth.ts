/**
 * Who is calling. Production requires a valid Clerk session token (Bearer header or the
 * `__session` cookie) and, with no Clerk configuration at all, refuses every request with
 * 500 server-misconfigured rather than opening the door. Development without a token (or
 * without Clerk) runs as DEV_USER_ID.
 */
import { createHash } from "node:crypto";
import { AppError, ok, type Result } from "./http/errors.js";
import { extractSessionToken, isServerSideReason, verifySessionToken, type ClerkSettings, type TokenRejection } from "./auth-verify.js";
import type { Deps } from "./runtime.js";

/**
 * Verified tokens, per Clerk configuration: a browser sends the same session token (Clerk
 * mints one a minute) with every request, and an RS256 verification through WebCrypto costs
 * ~80 µs of CPU, more than the rest of the key path. An entry is keyed by the SHA-256 of the
 * whole token (never the token itself), holds only the user it proved, and expires with the
 * token's own `exp`. Failures are never cached. Bounded, oldest evicted first.
 */
const VERIFIED_CACHE_MAX = 10_000;
const verifiedTokens = new WeakMap<object, Map<string, { userId: string; expiresAtMs: number }>>();

function tokenExpiryMs(token: string): number {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp?: unknown };
    return typeof payload.exp === "number" ? payload.exp * 1000 : 0;
  } catch {
    return 0;
  }
}

export async function verifyCached(token: string, settings: ClerkSettings): Promise<Result<{ userId: string }, TokenRejection>> {
  let cache = verifiedTokens.get(settings);
  if (!cache) verifiedTokens.set(settings, (cache = new Map()));
  const digest = createHash("sha256").update(token).digest("base64url");
  const hit = cache.get(digest);
  const now = Date.now();
  if (hit && hit.expiresAtMs > now) return ok({ userId: hit.userId });
  if (hit) cache.delete(digest);
  const result = await verifySessionToken(token, settings);
  if (result.ok) {
    const expiresAtMs = tokenExpiryMs(token);
    if (expiresAtMs > now) {
      if (cache.size >= VERIFIED_CACHE_MAX) cache.delete(cache.keys().next().value!);
      cache.set(digest, { userId: result.value.userId, expiresAtMs });
    }
    return ok({ userId: result.value.userId });
  }
  return result;
}

export interface AuthenticatedUser {
  userId: string;
  /** How the caller was identified. */
  via: "clerk" | "dev-user";
}

const unauthorized = (detail: string) =>
  new AppError("unauthorized", {
    detail,
    action: "send a Clerk session token as Authorization: Bearer <token> or the __session cookie",
    headers: { "www-authenticate": 'Bearer realm="byok-functions"' },
  });

/** The caller of `request`, or an AppError (401, or 500 when production has no Clerk configuration). */
export async function requireUser(deps: Pick<Deps, "config" | "logger">, request: Request): Promise<AuthenticatedUser> {
  const { config, logger } = deps;
  const clerkConfigured = Boolean(config.clerk.jwtKey || config.clerk.secretKey);
  const token = extractSessionToken(request);

  if (config.mode === "production") {
    if (!clerkConfigured) {
      logger.error("production request refused: no CLERK_JWT_KEY or CLERK_SECRET_KEY configured");
      throw new AppError("server-misconfigured", {
        detail: "authentication is not configured on this deployment; no request can be served",
        action: "the operator must set CLERK_JWT_KEY or CLERK_SECRET_KEY",
      });
    }
    if (!token) throw unauthorized("no session token was sent");
  } else if (!clerkConfigured) {
    return { userId: config.devUserId, via: "dev-user" };
  } else if (!token) {
    // A credential that was sent but cannot be read is refused, not silently ignored.
    if (request.headers.has("authorization")) throw unauthorized("the Authorization header is not a Bearer token");
    return { userId: config.devUserId, via: "dev-user" };
  }

  const result = await verifyCached(token!, config.clerk);
  if (!result.ok && isServerSideReason(result.error.reason)) {
    logger.error("session token could not be checked", { reason: result.error.reason });
    throw result.error.reason === "jwks-unavailable"
      ? new AppError("upstream-unavailable", { detail: "Clerk's signing keys could not be fetched; try again", extra: { provider: "clerk" } })
      : new AppError("server-misconfigured", { detail: "authentication is misconfigured on this deployment", action: "the operator must check CLERK_JWT_KEY / CLERK_SECRET_KEY" });
  }
  if (!result.ok) {
    logger.info("session token rejected", { reason: result.error.reason });
    throw unauthorized(`the session token was rejected (${result.error.reason})`);
  }
  return { userId: result.value.userId, via: "clerk" };
}
