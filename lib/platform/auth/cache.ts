/**
 * Verified tokens, per Clerk configuration: a browser sends the same session token (Clerk
 * mints one a minute) with every request, and an RS256 verification through WebCrypto costs
 * ~80 µs of CPU, more than the rest of the key path. An entry is keyed by the SHA-256 of the
 * whole token (never the token itself), holds only the user it proved, and expires with the
 * token's own `exp`. Failures are never cached. Bounded, oldest evicted first.
 */
import { createHash } from "node:crypto";
import { ok, type Result } from "../../http/errors.js";
import { tokenExpiryMs } from "./token.js";
import { verifySessionToken, type ClerkSettings, type TokenRejection, type VerifiedSession } from "./verify.js";

/** What the cache saves calls to: `verifySessionToken`, or a stand-in that counts them (tests). */
export type SessionVerifier = (token: string, settings: ClerkSettings) => Promise<Result<VerifiedSession, TokenRejection>>;

export interface VerifiedTokenCacheOptions {
  /** The real check, run on every miss. Default {@link verifySessionToken}. */
  verify?: SessionVerifier;
  /** Entries per configuration before the oldest is evicted. Default 10 000. */
  maxEntries?: number;
}

const VERIFIED_CACHE_MAX = 10_000;

interface Entry {
  userId: string;
  expiresAtMs: number;
}

export class VerifiedTokenCache {
  private readonly check: SessionVerifier;
  private readonly maxEntries: number;
  /** One map per settings object: verified under one configuration is no pass under another. */
  private readonly bySettings = new WeakMap<ClerkSettings, Map<string, Entry>>();

  constructor(options: VerifiedTokenCacheOptions = {}) {
    this.check = options.verify ?? verifySessionToken;
    this.maxEntries = options.maxEntries ?? VERIFIED_CACHE_MAX;
  }

  /** Like `verifySessionToken`, answered from the cache while an earlier success is unexpired. */
  async verify(token: string, settings: ClerkSettings): Promise<Result<{ userId: string }, TokenRejection>> {
    let cache = this.bySettings.get(settings);
    if (!cache) this.bySettings.set(settings, (cache = new Map()));
    const digest = createHash("sha256").update(token).digest("base64url");
    const hit = cache.get(digest);
    const now = Date.now();
    if (hit && hit.expiresAtMs > now) return ok({ userId: hit.userId });
    if (hit) cache.delete(digest);
    const result = await this.check(token, settings);
    if (result.ok) {
      const expiresAtMs = tokenExpiryMs(token);
      if (expiresAtMs > now) {
        if (cache.size >= this.maxEntries) cache.delete(cache.keys().next().value!);
        cache.set(digest, { userId: result.value.userId, expiresAtMs });
      }
      return ok({ userId: result.value.userId });
    }
    return result;
  }
}

/** The process's cache, the one `requireUser` goes through. */
const verifiedTokens = new VerifiedTokenCache();

/** `verifySessionToken` through the process's {@link VerifiedTokenCache}. */
export function verifyCached(token: string, settings: ClerkSettings): Promise<Result<{ userId: string }, TokenRejection>> {
  return verifiedTokens.verify(token, settings);
}
