/**
 * The verified-token cache saves the RS256 check on repeat requests without extending any token's life.
 *
 * Each test builds its own `VerifiedTokenCache` around the real `verifySessionToken`, wrapped
 * to count the verifications: a result alone cannot tell a cache hit from a fresh check (both
 * answer the same user), the count can.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { err } from "../../lib/http/errors.js";
import { verifyCached, VerifiedTokenCache, type SessionVerifier } from "../../lib/platform/auth/cache.js";
import { verifySessionToken, type ClerkSettings } from "../../lib/platform/auth/verify.js";
import { createTestSigner, expiredToken, TEST_AZP, wrongKeyToken } from "../../testkit/clerk.js";

const signer = createTestSigner();
const otherSigner = createTestSigner();

const settingsFor = (authorizedParties = [TEST_AZP]): ClerkSettings => ({ jwtKey: signer.publicPem, authorizedParties });

/** A fresh cache whose verifier (by default the real one) records every token it is asked to check. */
function countingCache(inner: SessionVerifier = verifySessionToken, maxEntries?: number) {
  const checked: string[] = [];
  const cache = new VerifiedTokenCache({
    verify: (token, settings) => {
      checked.push(token);
      return inner(token, settings);
    },
    maxEntries,
  });
  return { cache, verifications: (token: string) => checked.filter((t) => t === token).length };
}

describe("verified-token cache", () => {
  afterEach(() => vi.useRealTimers());

  it("verifies a repeated valid token once, answering each token with its own user", async () => {
    const { cache, verifications } = countingCache();
    const settings = settingsFor();
    const a = signer.sign({ sub: "user_cache_a" });
    const b = signer.sign({ sub: "user_cache_b" });
    for (let i = 0; i < 3; i++) {
      expect(await cache.verify(a, settings)).toEqual({ ok: true, value: { userId: "user_cache_a" } });
      expect(await cache.verify(b, settings)).toEqual({ ok: true, value: { userId: "user_cache_b" } });
    }
    expect(verifications(a)).toBe(1);
    expect(verifications(b)).toBe(1);
  });

  it("verifies a token again from its exp on, and never serves it after", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-11-25T12:00:00Z"));
    const { cache, verifications } = countingCache();
    const settings = settingsFor();
    const token = signer.sign({ sub: "user_cache_exp" }); // exp = 12:01:00
    expect((await cache.verify(token, settings)).ok).toBe(true);
    vi.setSystemTime(new Date("2026-11-25T12:00:59.999Z"));
    expect((await cache.verify(token, settings)).ok).toBe(true);
    expect(verifications(token)).toBe(1);
    // At exp the entry is gone: Clerk's 5 s skew still accepts the token, but only a fresh check may say so.
    vi.setSystemTime(new Date("2026-11-25T12:01:00Z"));
    expect((await cache.verify(token, settings)).ok).toBe(true);
    expect(verifications(token)).toBe(2);
    vi.setSystemTime(new Date("2026-11-25T12:01:10Z")); // past exp and Clerk's 5 s skew
    expect(await cache.verify(token, settings)).toEqual({ ok: false, error: { reason: "expired" } });
    expect(verifications(token)).toBe(3);
  });

  it("verifies a failing token every time: failures are never cached", async () => {
    const { cache, verifications } = countingCache();
    const settings = settingsFor();
    const forged = wrongKeyToken(signer, { sub: "user_cache_forged" });
    const expired = expiredToken(signer, { sub: "user_cache_expired" });
    for (let i = 1; i <= 3; i++) {
      expect(await cache.verify(forged, settings)).toEqual({ ok: false, error: { reason: "invalid-signature" } });
      expect(await cache.verify(expired, settings)).toEqual({ ok: false, error: { reason: "expired" } });
      expect(verifications(forged)).toBe(i);
      expect(verifications(expired)).toBe(i);
    }
  });

  it("lets a token through once the server-side failure that refused it is over", async () => {
    let clerkDown = true;
    const { cache, verifications } = countingCache((token, settings) =>
      clerkDown ? Promise.resolve(err({ reason: "jwks-unavailable" as const })) : verifySessionToken(token, settings),
    );
    const settings = settingsFor();
    const token = signer.sign({ sub: "user_cache_outage" });
    expect(await cache.verify(token, settings)).toEqual({ ok: false, error: { reason: "jwks-unavailable" } });
    clerkDown = false;
    expect(await cache.verify(token, settings)).toEqual({ ok: true, value: { userId: "user_cache_outage" } });
    expect(await cache.verify(token, settings)).toEqual({ ok: true, value: { userId: "user_cache_outage" } });
    expect(verifications(token)).toBe(2);
  });

  it("never shares entries between two settings objects, even equal ones", async () => {
    const { cache, verifications } = countingCache();
    const first = settingsFor();
    const second = settingsFor();
    const token = signer.sign({ sub: "user_cache_two" });
    for (let i = 0; i < 2; i++) {
      expect((await cache.verify(token, first)).ok).toBe(true);
      expect((await cache.verify(token, second)).ok).toBe(true);
    }
    expect(verifications(token)).toBe(2);

    // Verified under one configuration is no pass under another.
    const strict = settingsFor(["https://only.example"]);
    expect(await cache.verify(token, strict)).toEqual({ ok: false, error: { reason: "unauthorized-party" } });
    expect(verifications(token)).toBe(3);
  });

  it("does not cache a token without exp", async () => {
    const { cache, verifications } = countingCache(async () => ({ ok: true, value: { userId: "user_cache_no_exp" } }));
    const settings = settingsFor();
    const token = signer.sign({ sub: "user_cache_no_exp", exp: undefined });
    expect(await cache.verify(token, settings)).toEqual({ ok: true, value: { userId: "user_cache_no_exp" } });
    expect(await cache.verify(token, settings)).toEqual({ ok: true, value: { userId: "user_cache_no_exp" } });
    expect(verifications(token)).toBe(2);
  });

  it("holds at most maxEntries per configuration, evicting the oldest first", async () => {
    const { cache, verifications } = countingCache(verifySessionToken, 2);
    const settings = settingsFor();
    const [a, b, c] = ["a", "b", "c"].map((s) => signer.sign({ sub: `user_cache_bound_${s}` })) as [string, string, string];
    for (const token of [a, b, c, b, c]) expect((await cache.verify(token, settings)).ok).toBe(true);
    expect([verifications(a), verifications(b), verifications(c)]).toEqual([1, 1, 1]);
    expect((await cache.verify(a, settings)).ok).toBe(true);
    expect(verifications(a)).toBe(2);
  });
});

describe("verifyCached (the process's cache, the one requireUser uses)", () => {
  it("answers a repeated token from its cache", async () => {
    // The app never changes a settings object in place; this test does, to see the cache from
    // outside: once the key is swapped, a fresh check of the old token would fail.
    const settings = settingsFor();
    const token = signer.sign({ sub: "user_cache_process" });
    expect(await verifyCached(token, settings)).toEqual({ ok: true, value: { userId: "user_cache_process" } });
    settings.jwtKey = otherSigner.publicPem;
    expect(await verifyCached(signer.sign({ sub: "user_cache_process_new" }), settings)).toEqual({
      ok: false,
      error: { reason: "invalid-signature" },
    });
    expect(await verifyCached(token, settings)).toEqual({ ok: true, value: { userId: "user_cache_process" } });
  });
});
