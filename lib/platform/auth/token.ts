/**
 * Where a session token comes from, and what it says before anyone has checked it.
 *
 * `extractSessionToken` finds the token of a request. The unverified decoders below read a
 * token's header and payload for shape checks, precise rejection reasons and the cache's
 * expiry; they prove nothing. Trust comes only from `verifySessionToken` (`verify.ts`).
 */

/** Clerk session tokens are a few hundred bytes and travel in a 4 KiB cookie. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const SESSION_COOKIE = "__session";

// ---------------------------------------------------------------------------------------------
// Token extraction

/**
 * The session token of a request: `Authorization: Bearer <token>` (scheme case-insensitive),
 * else the `__session` cookie. Never the query string: URLs end up in logs and Referer
 * headers. An Authorization header that is no Bearer token (`Basic …`, an empty one) yields
 * null, not the cookie: a credential that was sent but cannot be read is refused
 * (`requireUser` answers 401), never swapped for another one.
 */
export function extractSessionToken(request: Request): string | null {
  const authorization = request.headers.get("authorization");
  if (authorization !== null) {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization.trim());
    return match?.[1] ?? null;
  }
  const cookieHeader = request.headers.get("cookie");
  if (cookieHeader) {
    for (const part of cookieHeader.split(";")) {
      const eq = part.indexOf("=");
      if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
      let value = part.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      try {
        value = decodeURIComponent(value);
      } catch {
        // not percent-encoded after all; verification decides whether it is a token
      }
      if (value) return value;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Unverified decoding (shape checks and precise reasons only; trust comes from verifyJwt)

export type JsonObject = Record<string, unknown>;

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string): JsonObject | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : null;
  } catch {
    return null;
  }
}

/** Header and payload of a compact JWS of sane size, or null. Unverified. */
export function decodeUnverified(token: string): { header: JsonObject; payload: JsonObject } | null {
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) return null;
  const [rawHeader = "", rawPayload = ""] = token.split(".");
  const header = decodeSegment(rawHeader);
  const payload = decodeSegment(rawPayload);
  return header && payload ? { header, payload } : null;
}

/**
 * The token's own `exp` in ms since the epoch, or 0 when it has none (or is unreadable).
 * Unverified: read only from a token `verifySessionToken` has just accepted.
 */
export function tokenExpiryMs(token: string): number {
  const exp = decodeSegment(token.split(".")[1] ?? "")?.exp;
  return typeof exp === "number" ? exp * 1000 : 0;
}

// ---------------------------------------------------------------------------------------------
// Why a token was refused (shared by verify.ts and jwks.ts)

/** Why a token was refused. Short, stable and safe to log: never contains the token. */
export type TokenRejectionReason =
  | "malformed"
  | "unsupported-algorithm"
  | "unsupported-token-type"
  | "unknown-key"
  | "invalid-signature"
  | "expired"
  | "not-yet-valid"
  | "issued-in-future"
  | "unauthorized-party"
  | "missing-subject"
  | "invalid-claims"
  | "session-pending"
  | "inactive-session"
  // The rest are the server's fault, not the caller's (see `isServerSideReason`).
  | "not-configured"
  | "invalid-jwt-key"
  | "jwks-unavailable"
  | "secret-key-rejected";

export interface TokenRejection {
  reason: TokenRejectionReason;
}
