/** The verified-token cache saves the RS256 check on repeat requests without extending any token's life. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyCached } from "../lib/auth.js";
import { createTestSigner, TEST_AZP, wrongKeyToken } from "./helpers/clerk.js";

const signer = createTestSigner();

describe("verified-token cache", () => {
  afterEach(() => vi.useRealTimers());

  it("answers a repeated token with its own user, and a different token with its user", async () => {
    const settings = { jwtKey: signer.publicPem, authorizedParties: [TEST_AZP] };
    const a = signer.sign({ sub: "user_cache_a" });
    const b = signer.sign({ sub: "user_cache_b" });
    for (let i = 0; i < 3; i++) {
      expect(await verifyCached(a, settings)).toEqual({ ok: true, value: { userId: "user_cache_a" } });
      expect(await verifyCached(b, settings)).toEqual({ ok: true, value: { userId: "user_cache_b" } });
    }
  });

  it("never serves a cached token after its exp", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-11-25T12:00:00Z"));
    const settings = { jwtKey: signer.publicPem, authorizedParties: [TEST_AZP] };
    const token = signer.sign({ sub: "user_cache_exp" }); // exp = now + 60 s
    expect((await verifyCached(token, settings)).ok).toBe(true);
    vi.setSystemTime(new Date("2026-11-25T12:00:59Z"));
    expect((await verifyCached(token, settings)).ok).toBe(true);
    vi.setSystemTime(new Date("2026-11-25T12:01:10Z")); // past exp and Clerk's 5 s skew
    expect(await verifyCached(token, settings)).toEqual({ ok: false, error: { reason: "expired" } });
  });

  it("does not cache failures, and keeps configurations apart", async () => {
    const strict = { jwtKey: signer.publicPem, authorizedParties: ["https://only.example"] };
    const loose = { jwtKey: signer.publicPem, authorizedParties: [TEST_AZP] };
    const token = signer.sign({ sub: "user_cache_azp" });
    expect((await verifyCached(token, loose)).ok).toBe(true);
    // Verified under one configuration is no pass under another.
    expect(await verifyCached(token, strict)).toEqual({ ok: false, error: { reason: "unauthorized-party" } });
    const forged = wrongKeyToken(signer, { sub: "user_cache_azp" });
    expect((await verifyCached(forged, loose)).ok).toBe(false);
    expect((await verifyCached(forged, loose)).ok).toBe(false);
  });
});
