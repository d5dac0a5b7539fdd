/**
 * Clerk session-token verification, free of configuration globals: callers pass a
 * `ClerkSettings` built from `lib/platform/env.ts`. `cache.ts` saves repeat verifications and `user.ts`
 * turns the result into a user or a 401.
 *
 * The signature and claim checks are those of Clerk's `verifyJwt` (the function `verifyToken` calls
 * once it holds a key), done with WebCrypto in `rs256.ts` so that a function's first request does
 * not load `@clerk/backend` (tests run both on the same tokens). We resolve the key ourselves:
 * - `jwtKey` (PEM): networkless; the PEM is normalized (literal `\n`, quotes) and parsed once
 *   with node:crypto, so any RSA key size works and a broken key is reported as such (`pem.ts`).
 * - `secretKey` (+ `apiUrl`): the instance's JWKS from `GET {apiUrl}/v1/jwks`, cached per
 *   process, with its own fetch policy instead of Clerk's (`jwks.ts` says why).
 */
import { err, ok, type Result } from "../../http/errors.js";
import { jwkFromRemote } from "./jwks.js";
import { jwkFromPem } from "./pem.js";
import { verifyRs256Jwt } from "./rs256.js";
import { decodeUnverified, type TokenRejection, type TokenRejectionReason } from "./token.js";

export type { TokenRejection, TokenRejectionReason };

export interface ClerkSettings {
  /** PEM public key (CLERK_JWT_KEY). When set, verification never touches the network. */
  jwtKey?: string;
  /** Clerk secret key (CLERK_SECRET_KEY), used to fetch the JWKS when no jwtKey is set. */
  secretKey?: string;
  /** Clerk Backend API base (CLERK_API_URL); default https://api.clerk.com. */
  apiUrl?: string;
  /** Allowed `azp` origins; an empty list disables the check. */
  authorizedParties: string[];
}

export interface VerifiedSession {
  userId: string;
  sessionId?: string;
}

const serverSideReasons: ReadonlySet<string> = new Set<TokenRejectionReason>([
  "not-configured",
  "invalid-jwt-key",
  "jwks-unavailable",
  "secret-key-rejected",
]);

/** True when a rejection is a configuration or Clerk-availability problem (answer 5xx, not 401). */
export function isServerSideReason(reason: string): boolean {
  return serverSideReasons.has(reason);
}

/** Tolerance for clock drift on exp, nbf and iat (Clerk's default, stated so it cannot drift). */
export const CLOCK_SKEW_MS = 5_000;
export const DEFAULT_CLERK_API_URL = "https://api.clerk.com";

const ALLOWED_ALGORITHMS = new Set(["RS256", "RS384", "RS512"]);
// Clerk marks non-session JWTs (M2M tokens signed by the same instance) with a `cat` header.
const SESSION_CATEGORIES = new Set(["cl_B7d4PD111AAA", "cl_I7d4PD111III"]);

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

/**
 * Verifies a Clerk session token: RS256-family signature by the instance key, `exp`/`nbf`/`iat`
 * within {@link CLOCK_SKEW_MS}, `azp` among `authorizedParties` when that list is non-empty,
 * a `sub`, and an active session (`sts` absent or `active`; `pending` is signed out). Expected failures come back as `{ok: false, error: {reason}}`; see
 * {@link isServerSideReason} to tell a bad token (401) from a misconfigured server.
 */
export async function verifySessionToken(token: string, settings: ClerkSettings): Promise<Result<VerifiedSession, TokenRejection>> {
  const decoded = decodeUnverified(token);
  if (!decoded) return err({ reason: "malformed" });
  const { header } = decoded;

  if (typeof header.alg !== "string" || !ALLOWED_ALGORITHMS.has(header.alg)) {
    return err({ reason: "unsupported-algorithm" });
  }
  if (header.typ !== undefined && header.typ !== "JWT") return err({ reason: "unsupported-token-type" });
  if (header.cat !== undefined && !SESSION_CATEGORIES.has(String(header.cat))) {
    return err({ reason: "unsupported-token-type" });
  }

  let key: JsonWebKey;
  if (settings.jwtKey) {
    const jwk = jwkFromPem(settings.jwtKey);
    if (!jwk) return err({ reason: "invalid-jwt-key" });
    key = jwk;
  } else if (settings.secretKey) {
    const remote = await jwkFromRemote(header.kid, settings.secretKey, settings.apiUrl || DEFAULT_CLERK_API_URL);
    if (!remote.ok) return remote;
    key = remote.value;
  } else {
    return err({ reason: "not-configured" });
  }

  const verified = await verifyRs256Jwt(token, key, {
    clockSkewMs: CLOCK_SKEW_MS,
    authorizedParties: settings.authorizedParties,
  });
  if (!verified.ok) return err({ reason: verified.error });
  const claims = verified.value;

  // Clerk accepts `sub: ""`; a user id must not be empty.
  if (!isNonEmptyString(claims.sub)) return err({ reason: "missing-subject" });
  // The session's status (v2 session tokens): a `pending` session still has tasks to finish
  // (such as choosing an organization) and is signed out, as in Clerk's own authenticateRequest
  // (`treatPendingAsSignedOut` defaults to true). Tokens without `sts` (v1) are active.
  if (claims.sts !== undefined && claims.sts !== "active") {
    return err({ reason: claims.sts === "pending" ? "session-pending" : "inactive-session" });
  }
  const session: VerifiedSession = { userId: claims.sub };
  if (isNonEmptyString(claims.sid)) session.sessionId = claims.sid;
  return ok(session);
}
