/**
 * Who is calling. Production requires a valid Clerk session token (Bearer header or the
 * `__session` cookie) and, with no Clerk configuration at all, refuses every request with
 * 500 server-misconfigured rather than opening the door. Development without a token (or
 * without Clerk) runs as DEV_USER_ID.
 */
import { AppError } from "../../http/errors.js";
import type { Deps } from "../runtime.js";
import { verifyCached } from "./cache.js";
import { extractSessionToken } from "./token.js";
import { isServerSideReason } from "./verify.js";

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
  // A credential that was sent but cannot be read is refused, in both modes: not ignored, and
  // not swapped for the __session cookie (extractSessionToken never falls back to it).
  const unreadable = token === null && request.headers.has("authorization");

  if (config.mode === "production") {
    if (!clerkConfigured) {
      logger.error("production request refused: no CLERK_JWT_KEY or CLERK_SECRET_KEY configured");
      throw new AppError("server-misconfigured", {
        detail: "authentication is not configured on this deployment; no request can be served",
        action: "the operator must set CLERK_JWT_KEY or CLERK_SECRET_KEY",
      });
    }
    if (unreadable) throw unauthorized("the Authorization header is not a Bearer token");
    if (!token) throw unauthorized("no session token was sent");
  } else if (!clerkConfigured) {
    return { userId: config.devUserId, via: "dev-user" };
  } else if (!token) {
    if (unreadable) throw unauthorized("the Authorization header is not a Bearer token");
    return { userId: config.devUserId, via: "dev-user" };
  }

  const result = await verifyCached(token!, config.clerk);
  if (!result.ok && isServerSideReason(result.error.reason)) {
    logger.error("session token could not be checked", { reason: result.error.reason });
    throw result.error.reason === "jwks-unavailable"
      ? new AppError("upstream-unavailable", {
          detail: "Clerk's signing keys could not be fetched; try again",
          extra: { provider: "clerk" },
        })
      : new AppError("server-misconfigured", {
          detail: "authentication is misconfigured on this deployment",
          action: "the operator must check CLERK_JWT_KEY / CLERK_SECRET_KEY",
        });
  }
  if (!result.ok) {
    logger.info("session token rejected", { reason: result.error.reason });
    throw unauthorized(`the session token was rejected (${result.error.reason})`);
  }
  return { userId: result.value.userId, via: "clerk" };
}
