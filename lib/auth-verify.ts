/**
 * Clerk session-token verification, free of configuration globals: callers pass a
 * `ClerkSettings` built from `lib/env.ts`. `lib/auth.ts` turns the result into a user or a 401.
 *
 * The signature and claim checks are Clerk's own (`verifyJwt` from `@clerk/backend/jwt`, the
 * function `verifyToken` calls once it holds a key). We resolve the key ourselves:
 * - `jwtKey` (PEM): networkless; the PEM is normalized (literal `\n`, quotes) and parsed once
 *   with node:crypto, so any RSA key size works and a broken key is reported as such.
 * - `secretKey` (+ `apiUrl`): the instance's JWKS from `GET {apiUrl}/v1/jwks`, cached per
 *   process. Clerk's built-in cache also caches (5 min, module-wide), but it refetches on every
 *   unknown `kid` (anyone can make us call Clerk once per request), runs concurrent cold-start
 *   fetches in parallel, retries five times with backoff and has no timeout. Ours fetches once,
 *   shares in-flight fetches, refetches for an unknown `kid` at most every 10 s and gives up
 *   after 5 s.
 */
import { createPublicKey, type JsonWebKey as NodeJsonWebKey } from "node:crypto";
import { verifyJwt } from "@clerk/backend/jwt";
import { err, ok, type Result } from "./http/errors.js";

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
  // The rest are the server's fault, not the caller's (see `isServerSideReason`).
  | "not-configured"
  | "invalid-jwt-key"
  | "jwks-unavailable"
  | "secret-key-rejected";

export interface TokenRejection {
  reason: TokenRejectionReason;
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
/** Clerk session tokens are a few hundred bytes and travel in a 4 KiB cookie. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const SESSION_COOKIE = "__session";

// ---------------------------------------------------------------------------------------------
// PEM handling

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;

/**
 * Canonical PEM from what a dashboard copy, a `.env` file or a platform's settings page
 * delivers: surrounding whitespace and quotes removed, literal `\n` / `\r\n` turned into
 * newlines, the base64 body re-wrapped at 64 columns. A bare base64 body is taken as a
 * `PUBLIC KEY`. Does not check that the key is usable (`verifySessionToken` does).
 */
export function normalizePem(raw: string): string {
  let text = raw.trim();
  for (let q = text[0]; text.length >= 2 && (q === '"' || q === "'") && text.endsWith(q); q = text[0]) {
    text = text.slice(1, -1).trim();
  }
  text = text.replace(/\\r\\n|\\n|\\r/g, "\n").replace(/\r\n?/g, "\n");
  const block = PEM_BLOCK.exec(text);
  const label = block?.[1] ?? "PUBLIC KEY";
  const body = (block?.[2] ?? text).replace(/\s+/g, "");
  const lines = body.match(/.{1,64}/g) ?? [];
  return [`-----BEGIN ${label}-----`, ...lines, `-----END ${label}-----`, ""].join("\n");
}

/** PEM → JWK, memoized: the configured key is one string for the life of the process. */
const pemKeys = new Map<string, JsonWebKey | null>();

function jwkFromPem(raw: string): JsonWebKey | null {
  const cached = pemKeys.get(raw);
  if (cached !== undefined) return cached;
  let jwk: JsonWebKey | null = null;
  try {
    const key = createPublicKey({ key: normalizePem(raw), format: "pem" });
    if (key.asymmetricKeyType === "rsa") {
      const exported: NodeJsonWebKey = key.export({ format: "jwk" });
      jwk = { kty: "RSA", n: exported.n, e: exported.e };
    }
  } catch {
    jwk = null;
  }
  if (pemKeys.size > 16) pemKeys.clear();
  pemKeys.set(raw, jwk);
  return jwk;
}

// ---------------------------------------------------------------------------------------------
// Token extraction

/**
 * The session token of a request: `Authorization: Bearer <token>` (scheme case-insensitive)
 * first, else the `__session` cookie. Never the query string: URLs end up in logs and
 * Referer headers.
 */
export function extractSessionToken(request: Request): string | null {
  const authorization = request.headers.get("authorization");
  if (authorization) {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization.trim());
    if (match?.[1]) return match[1];
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

type JsonObject = Record<string, unknown>;

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const ALLOWED_ALGORITHMS = new Set(["RS256", "RS384", "RS512"]);
// Clerk marks non-session JWTs (M2M tokens signed by the same instance) with a `cat` header.
const SESSION_CATEGORIES = new Set(["cl_B7d4PD111AAA", "cl_I7d4PD111III"]);

function decodeSegment(segment: string): JsonObject | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : null;
  } catch {
    return null;
  }
}

function decodeUnverified(token: string): { header: JsonObject; payload: JsonObject } | null {
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) return null;
  const [rawHeader = "", rawPayload = ""] = token.split(".");
  const header = decodeSegment(rawHeader);
  const payload = decodeSegment(rawPayload);
  return header && payload ? { header, payload } : null;
}

// ---------------------------------------------------------------------------------------------
// JWKS (secretKey mode)

const JWKS_TTL_MS = 5 * 60_000;
const JWKS_MIN_REFETCH_MS = 10_000;
const JWKS_FETCH_TIMEOUT_MS = 5_000;

interface JwksCacheEntry {
  keys: Map<string, JsonWebKey>;
  /** When `keys` was last loaded; 0 = never. */
  fetchedAt: number;
  lastAttemptAt: number;
  lastFailure: "jwks-unavailable" | "secret-key-rejected" | null;
  inflight: Promise<void> | null;
}

/** One entry per (apiUrl, secretKey): one Clerk instance per process in practice. */
const jwksCache = new Map<string, JwksCacheEntry>();

function newJwksCacheEntry(cacheKey: string): JwksCacheEntry {
  const entry: JwksCacheEntry = { keys: new Map(), fetchedAt: 0, lastAttemptAt: -Infinity, lastFailure: null, inflight: null };
  jwksCache.set(cacheKey, entry);
  return entry;
}

function jwksUrl(apiUrl: string): string {
  const url = new URL(apiUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/jwks`;
  return url.href;
}

function parseJwks(body: unknown): Map<string, JsonWebKey> {
  const keys = new Map<string, JsonWebKey>();
  const list = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) return keys;
  for (const item of list) {
    const k = item as Record<string, unknown> | null;
    if (k && typeof k.kid === "string" && k.kty === "RSA" && typeof k.n === "string" && typeof k.e === "string") {
      const jwk: JsonWebKey = { kty: "RSA", n: k.n, e: k.e };
      if (typeof k.alg === "string") jwk.alg = k.alg;
      keys.set(k.kid, jwk);
    }
  }
  return keys;
}

async function refreshJwks(entry: JwksCacheEntry, apiUrl: string, secretKey: string): Promise<void> {
  entry.lastAttemptAt = Date.now();
  try {
    const response = await fetch(jwksUrl(apiUrl), {
      headers: { authorization: `Bearer ${secretKey}`, accept: "application/json" },
      signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS),
    });
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      entry.lastFailure = "secret-key-rejected";
      return;
    }
    const keys = response.ok ? parseJwks(await response.json()) : new Map<string, JsonWebKey>();
    if (!response.ok) await response.body?.cancel();
    if (keys.size === 0) {
      entry.lastFailure = "jwks-unavailable";
      return;
    }
    entry.keys = keys;
    entry.fetchedAt = Date.now();
    entry.lastFailure = null;
  } catch {
    entry.lastFailure = "jwks-unavailable";
  }
}

async function jwkFromRemote(
  kid: unknown,
  secretKey: string,
  apiUrl: string,
): Promise<Result<JsonWebKey, TokenRejection>> {
  if (typeof kid !== "string" || kid === "") return err({ reason: "unknown-key" });
  const cacheKey = `${apiUrl}|${secretKey}`;
  const entry = jwksCache.get(cacheKey) ?? newJwksCacheEntry(cacheKey);
  const isFresh = () => entry.fetchedAt > 0 && Date.now() - entry.fetchedAt < JWKS_TTL_MS;
  if (isFresh() && entry.keys.has(kid)) return ok(entry.keys.get(kid)!);

  // Stale, never loaded, or an unknown kid (maybe a key rotation): refetch, but at most once per
  // JWKS_MIN_REFETCH_MS so that made-up kids cannot turn each request into a call to Clerk.
  if (!entry.inflight && Date.now() - entry.lastAttemptAt >= JWKS_MIN_REFETCH_MS) {
    entry.inflight = refreshJwks(entry, apiUrl, secretKey).finally(() => {
      entry.inflight = null;
    });
  }
  if (entry.inflight) await entry.inflight;

  if (!isFresh()) return err({ reason: entry.lastFailure ?? "jwks-unavailable" });
  const jwk = entry.keys.get(kid);
  return jwk ? ok(jwk) : err({ reason: "unknown-key" });
}

// ---------------------------------------------------------------------------------------------
// Verification

const clerkReasons: Record<string, TokenRejectionReason> = {
  "token-expired": "expired",
  "token-not-active-yet": "not-yet-valid",
  "token-iat-in-the-future": "issued-in-future",
  "token-invalid-signature": "invalid-signature",
  "token-invalid-algorithm": "unsupported-algorithm",
  "token-invalid-authorized-parties": "unauthorized-party",
  "token-invalid": "malformed",
};

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

/**
 * Verifies a Clerk session token: RS256-family signature by the instance key, `exp`/`nbf`/`iat`
 * within {@link CLOCK_SKEW_MS}, `azp` among `authorizedParties` when that list is non-empty,
 * and a `sub`. Expected failures come back as `{ok: false, error: {reason}}`; see
 * {@link isServerSideReason} to tell a bad token (401) from a misconfigured server.
 */
export async function verifySessionToken(
  token: string,
  settings: ClerkSettings,
): Promise<Result<VerifiedSession, TokenRejection>> {
  const decoded = decodeUnverified(token);
  if (!decoded) return err({ reason: "malformed" });
  const { header, payload } = decoded;

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

  let claims: Record<string, unknown>;
  try {
    claims = await verifyJwt(token, {
      key,
      clockSkewInMs: CLOCK_SKEW_MS,
      authorizedParties: settings.authorizedParties.length > 0 ? settings.authorizedParties : undefined,
    });
  } catch (error) {
    const clerkReason = (error as { reason?: unknown } | null)?.reason;
    if (typeof clerkReason !== "string") throw error;
    const mapped = clerkReasons[clerkReason];
    if (mapped) return err({ reason: mapped });
    // Clerk's catch-all "token-verification-failed": name the claim when we can tell.
    if (!isNonEmptyString(payload.sub)) return err({ reason: "missing-subject" });
    return err({ reason: "invalid-claims" });
  }

  // Clerk accepts `sub: ""`; a user id must not be empty.
  if (!isNonEmptyString(claims.sub)) return err({ reason: "missing-subject" });
  const session: VerifiedSession = { userId: claims.sub };
  if (isNonEmptyString(claims.sid)) session.sessionId = claims.sid;
  return ok(session);
}
