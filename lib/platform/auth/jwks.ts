/**
 * The instance's signing keys in CLERK_SECRET_KEY mode: the JWKS from `GET {apiUrl}/v1/jwks`,
 * cached per process. Clerk's built-in cache also caches (5 min, module-wide), but it refetches
 * on every unknown `kid` (anyone can make us call Clerk once per request), runs concurrent
 * cold-start fetches in parallel, retries five times with backoff and has no timeout. Ours
 * fetches once, shares in-flight fetches, refetches for an unknown `kid` at most every 10 s and
 * gives up after 5 s.
 *
 * A Clerk outage must not sign everybody out: when a refresh after the 5-minute TTL fails
 * (network, timeout, 5xx, an empty key set), the keys already held keep verifying tokens for
 * up to 24 hours after they were last fetched, while a refresh is retried in the background at
 * most every 10 s (requests do not wait for it). A rejected secret key (401/403) gets no grace:
 * that is the operator's configuration, not an outage.
 */
import { err, ok, type Result } from "../../http/errors.js";
import type { TokenRejection } from "./token.js";

const JWKS_TTL_MS = 5 * 60_000;
const JWKS_MIN_REFETCH_MS = 10_000;
const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** How long keys fetched once keep verifying while the JWKS endpoint cannot be reached. */
export const JWKS_OUTAGE_GRACE_MS = 24 * 60 * 60_000;

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

/**
 * The key with id `kid` of the Clerk instance behind (`secretKey`, `apiUrl`), or why there is
 * none: `unknown-key`, or a server-side `jwks-unavailable` / `secret-key-rejected`.
 */
export async function jwkFromRemote(kid: unknown, secretKey: string, apiUrl: string): Promise<Result<JsonWebKey, TokenRejection>> {
  if (typeof kid !== "string" || kid === "") return err({ reason: "unknown-key" });
  const cacheKey = `${apiUrl}|${secretKey}`;
  const entry = jwksCache.get(cacheKey) ?? newJwksCacheEntry(cacheKey);
  const isFresh = () => entry.fetchedAt > 0 && Date.now() - entry.fetchedAt < JWKS_TTL_MS;
  if (isFresh() && entry.keys.has(kid)) return ok(entry.keys.get(kid)!);
  // During an outage, a key already held (fetched less than JWKS_OUTAGE_GRACE_MS ago) still verifies.
  const heldThroughOutage = () =>
    entry.lastFailure === "jwks-unavailable" &&
    entry.fetchedAt > 0 &&
    Date.now() - entry.fetchedAt < JWKS_OUTAGE_GRACE_MS &&
    entry.keys.has(kid);

  // Stale, never loaded, or an unknown kid (maybe a key rotation): refetch, but at most once per
  // JWKS_MIN_REFETCH_MS so that made-up kids cannot turn each request into a call to Clerk.
  if (!entry.inflight && Date.now() - entry.lastAttemptAt >= JWKS_MIN_REFETCH_MS) {
    entry.inflight = refreshJwks(entry, apiUrl, secretKey).finally(() => {
      entry.inflight = null;
    });
  }
  // Known to be in an outage with the key at hand: answer now and let the retry run on its own.
  if (entry.inflight && !heldThroughOutage()) await entry.inflight;

  if (isFresh()) {
    const jwk = entry.keys.get(kid);
    return jwk ? ok(jwk) : err({ reason: "unknown-key" });
  }
  if (heldThroughOutage()) return ok(entry.keys.get(kid)!);
  return err({ reason: entry.lastFailure ?? "jwks-unavailable" });
}
