/**
 * verifySessionToken's own rules (lib/platform/auth/verify.ts), beyond the bad-token matrix of
 * auth.security: the RS256 family, the header's `typ` and `cat`, the `sid` copy and the default
 * Clerk API URL. Written from StrykerJS's surviving mutants (docs/mutation-testing.md).
 */
import { generateKeyPairSync, randomBytes, sign as rsaSign } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { decodeUnverified, extractSessionToken } from "../../lib/platform/auth/token.js";
import { type ClerkSettings, DEFAULT_CLERK_API_URL, isServerSideReason, verifySessionToken } from "../../lib/platform/auth/verify.js";

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
const kid = `ins_${randomBytes(6).toString("hex")}`;
const settings: ClerkSettings = { jwtKey: publicPem, authorizedParties: [] };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const HASH: Record<string, string> = { RS256: "sha256", RS384: "sha384", RS512: "sha512" };

/** A token signed with the test key; `header` replaces the default fields (a field set to undefined is left out). */
function token(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const fullHeader = { alg: "RS256", typ: "JWT", kid, ...header };
  const unsigned = `${b64(fullHeader)}.${b64({ sub: "user_v", sid: "sess_v", iat: now, exp: now + 60, ...claims })}`;
  const signature = rsaSign(HASH[String(fullHeader.alg)] ?? "sha256", Buffer.from(unsigned), privateKey);
  return `${unsigned}.${signature.toString("base64url")}`;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("verifySessionToken: header rules", () => {
  it("accepts RS256, RS384 and RS512 signatures (the family Clerk signs with), nothing else", async () => {
    for (const alg of ["RS256", "RS384", "RS512"]) {
      expect(await verifySessionToken(token({}, { alg }), settings), alg).toEqual({
        ok: true,
        value: { userId: "user_v", sessionId: "sess_v" },
      });
    }
    for (const alg of ["PS256", "ES256", "HS256", "rs256", "", 256]) {
      expect(await verifySessionToken(token({}, { alg }), settings), String(alg)).toEqual({
        ok: false,
        error: { reason: "unsupported-algorithm" },
      });
    }
  });

  it("takes a `typ` of JWT or none at all; any other `typ` is refused", async () => {
    expect((await verifySessionToken(token({}, { typ: undefined }), settings)).ok).toBe(true);
    expect((await verifySessionToken(token({}, { typ: "JWT" }), settings)).ok).toBe(true);
    for (const typ of ["jwt", "at+jwt", "", null, 1]) {
      expect(await verifySessionToken(token({}, { typ }), settings), String(typ)).toEqual({
        ok: false,
        error: { reason: "unsupported-token-type" },
      });
    }
  });

  it("takes Clerk's two session categories in `cat`, or none; any other category is refused", async () => {
    for (const cat of [undefined, "cl_B7d4PD111AAA", "cl_I7d4PD111III"]) {
      expect((await verifySessionToken(token({}, { cat }), settings)).ok, String(cat)).toBe(true);
    }
    for (const cat of ["cl_B7d4PD333AAA", "", "Stryker was here", null, 0]) {
      expect(await verifySessionToken(token({}, { cat }), settings), String(cat)).toEqual({
        ok: false,
        error: { reason: "unsupported-token-type" },
      });
    }
  });
});

describe("verifySessionToken: the session it returns", () => {
  it("copies `sid` only when it is a non-empty string", async () => {
    for (const sid of [undefined, "", 7, ["sess_in_a_list"], { length: 3 }, null]) {
      expect(await verifySessionToken(token({ sid }), settings), JSON.stringify(sid)).toEqual({ ok: true, value: { userId: "user_v" } });
    }
    expect(await verifySessionToken(token({ sid: "s" }), settings)).toEqual({ ok: true, value: { userId: "user_v", sessionId: "s" } });
  });

  it("wants `sub` a non-empty string, whatever its type otherwise", async () => {
    for (const sub of ["", ["user_in_a_list"], { length: 3 }, 5]) {
      expect(await verifySessionToken(token({ sub }), settings), JSON.stringify(sub)).toEqual({
        ok: false,
        error: { reason: "missing-subject" },
      });
    }
    expect(await verifySessionToken(token({ sub: "u" }), settings)).toEqual({ ok: true, value: { userId: "u", sessionId: "sess_v" } });
  });
});

describe("verifySessionToken: configuration", () => {
  it("fetches the JWKS from Clerk's public API when CLERK_API_URL is not set (or empty)", async () => {
    const publicJwk = { ...publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
    for (const apiUrl of [undefined, ""]) {
      const urls: string[] = [];
      vi.stubGlobal("fetch", async (url: string | URL) => {
        urls.push(String(url));
        return new Response(JSON.stringify({ keys: [publicJwk] }), { headers: { "content-type": "application/json" } });
      });
      const secretKey = `sk_test_${randomBytes(12).toString("hex")}`;
      const result = await verifySessionToken(token(), { secretKey, authorizedParties: [], ...(apiUrl === undefined ? {} : { apiUrl }) });
      expect(result, String(apiUrl)).toEqual({ ok: true, value: { userId: "user_v", sessionId: "sess_v" } });
      expect(urls).toEqual([`${DEFAULT_CLERK_API_URL}/v1/jwks`]);
      expect(DEFAULT_CLERK_API_URL).toBe("https://api.clerk.com");
      vi.unstubAllGlobals();
    }
  });

  it("checks `azp` against a non-empty list of parties, and not at all against an empty one", async () => {
    const parties = { ...settings, authorizedParties: ["http://localhost:3000"] };
    expect((await verifySessionToken(token({ azp: "http://localhost:3000" }), parties)).ok).toBe(true);
    expect(await verifySessionToken(token({ azp: "https://evil.example" }), parties)).toEqual({
      ok: false,
      error: { reason: "unauthorized-party" },
    });
    expect((await verifySessionToken(token({ azp: "https://evil.example" }), settings)).ok).toBe(true);
  });
});

describe("reasons and token shapes", () => {
  it("counts configuration and Clerk-availability reasons as server-side, a bad token's never", () => {
    for (const reason of ["not-configured", "invalid-jwt-key", "jwks-unavailable", "secret-key-rejected"]) {
      expect(isServerSideReason(reason), reason).toBe(true);
    }
    for (const reason of ["malformed", "expired", "invalid-signature", "unsupported-algorithm", "missing-subject", ""]) {
      expect(isServerSideReason(reason), reason).toBe(false);
    }
  });

  it("reads a Bearer token only up to blanks and tabs: any other character after it refuses the header", () => {
    const req = (authorization: string) => new Request("http://localhost/api/x", { headers: { authorization } });
    expect(extractSessionToken(req("Bearer abc\u00a0x"))).toBeNull();
    expect(extractSessionToken(req("Bearer abc\u000bx"))).toBeNull();
    expect(extractSessionToken(req("Bearer abc\t "))).toBe("abc");
  });

  it("takes a compact JWS only from its first character (a blank before it is not skipped)", () => {
    const jws = `${b64({ alg: "RS256" })}.${b64({ sub: "u" })}.sig`;
    expect(decodeUnverified(jws)).not.toBeNull();
    expect(decodeUnverified(` ${jws}`)).toBeNull();
    expect(decodeUnverified(`\t${jws}`)).toBeNull();
  });
});
