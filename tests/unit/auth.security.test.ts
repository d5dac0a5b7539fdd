import { randomBytes } from "node:crypto";
import { verifyToken as clerkVerifyToken } from "@clerk/backend";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { normalizePem } from "../../lib/platform/auth/pem.js";
import { extractSessionToken } from "../../lib/platform/auth/token.js";
import { CLOCK_SKEW_MS, isServerSideReason, verifySessionToken, type ClerkSettings } from "../../lib/platform/auth/verify.js";
import {
  TEST_AZP,
  algNoneToken,
  createTestSigner,
  escapedPem,
  expiredToken,
  futureIatToken,
  futureNbfToken,
  hs256WithPublicKeyToken,
  malformedTokens,
  noSubToken,
  startJwksServer,
  tamperedToken,
  wrongAzpToken,
  wrongKeyToken,
  type JwksServer,
  type TestSigner,
} from "../../testkit/clerk.js";

const signer: TestSigner = createTestSigner();
const otherSigner: TestSigner = createTestSigner();
const newSecretKey = () => `sk_test_${randomBytes(12).toString("hex")}`;

afterEach(() => {
  vi.useRealTimers();
});

/** Verifies and returns the rejection reason, failing the test (with the result) if it was accepted. */
async function rejectionOf(token: string, settings: ClerkSettings): Promise<string> {
  const result = await verifySessionToken(token, settings);
  if (result.ok) expect.fail(`token was accepted: ${JSON.stringify(result.value)}`);
  expect(result.error.reason).toMatch(/^[a-z]+(-[a-z]+)*$/);
  if (token.length > 0) expect(result.error.reason).not.toContain(token);
  return result.error.reason;
}

/** The bad-token matrix, run against every way of configuring verification. */
function badTokenCases(settings: () => ClerkSettings) {
  it("accepts a valid token and returns sub and sid", async () => {
    const token = signer.sign({ sub: "user_abc", sid: "sess_xyz" });
    const result = await verifySessionToken(token, settings());
    expect(result).toEqual({ ok: true, value: { userId: "user_abc", sessionId: "sess_xyz" } });
  });

  it("accepts a token without sid (sessionId left out)", async () => {
    const result = await verifySessionToken(signer.sign({ sub: "user_nosid", sid: undefined }), settings());
    expect(result).toEqual({ ok: true, value: { userId: "user_nosid" } });
  });

  it("rejects an expired token", async () => {
    expect(await rejectionOf(expiredToken(signer), settings())).toBe("expired");
  });

  it("rejects a token whose nbf is in the future", async () => {
    expect(await rejectionOf(futureNbfToken(signer), settings())).toBe("not-yet-valid");
  });

  it("rejects a token whose iat is in the future", async () => {
    expect(await rejectionOf(futureIatToken(signer), settings())).toBe("issued-in-future");
  });

  it("rejects a token without exp", async () => {
    expect(await rejectionOf(signer.sign({ exp: undefined }), settings())).toBe("invalid-claims");
  });

  it("rejects a token signed by another key under the same kid", async () => {
    expect(await rejectionOf(wrongKeyToken(signer), settings())).toBe("invalid-signature");
  });

  it("rejects a token whose payload was edited after signing", async () => {
    expect(await rejectionOf(tamperedToken(signer), settings())).toBe("invalid-signature");
  });

  it("rejects alg: none", async () => {
    expect(await rejectionOf(algNoneToken(signer), settings())).toBe("unsupported-algorithm");
  });

  it("rejects HS256 signed with the public key as HMAC secret (PEM as configured and normalized)", async () => {
    expect(await rejectionOf(hs256WithPublicKeyToken(signer), settings())).toBe("unsupported-algorithm");
    const raw = settings().jwtKey;
    if (raw !== undefined) {
      for (const secret of [raw, normalizePem(raw)]) {
        expect(await rejectionOf(hs256WithPublicKeyToken(signer, {}, secret), settings())).toBe("unsupported-algorithm");
      }
    }
  });

  it("rejects a token without sub, and one with an empty sub", async () => {
    expect(await rejectionOf(noSubToken(signer), settings())).toBe("missing-subject");
    expect(await rejectionOf(signer.sign({ sub: "" }), settings())).toBe("missing-subject");
  });

  it("rejects a pending session (sts: pending, signed out as in Clerk's authenticateRequest) and any status but active", async () => {
    expect(await rejectionOf(signer.sign({ sts: "pending" }), settings())).toBe("session-pending");
    for (const sts of ["ended", "expired", "revoked", "", 1, null]) {
      expect(await rejectionOf(signer.sign({ sts }), settings()), String(sts)).toBe("inactive-session");
    }
    expect(await verifySessionToken(signer.sign({ sub: "user_active", sid: "sess_a", sts: "active" }), settings())).toEqual({
      ok: true,
      value: { userId: "user_active", sessionId: "sess_a" },
    });
  });

  it("rejects a token whose azp is not an authorized party", async () => {
    expect(await rejectionOf(wrongAzpToken(signer), settings())).toBe("unauthorized-party");
  });

  it("rejects a token typed as something other than a session JWT", async () => {
    expect(await rejectionOf(signer.sign({}, { header: { typ: "at+jwt" } }), settings())).toBe("unsupported-token-type");
    // Clerk's machine-to-machine category: signed by the same instance key, but not a user session.
    expect(await rejectionOf(signer.sign({ sub: "mch_1" }, { header: { cat: "cl_B7d4PD333AAA" } }), settings())).toBe(
      "unsupported-token-type",
    );
  });

  for (const [name, token] of Object.entries(malformedTokens(signer))) {
    it(`rejects a malformed token (${name})`, async () => {
      expect(await rejectionOf(token, settings())).toBe("malformed");
    });
  }
}

describe("normalizePem", () => {
  it("leaves a canonical PEM unchanged", () => {
    expect(normalizePem(signer.publicPem)).toBe(signer.publicPem);
  });

  it("turns literal \\n, surrounding quotes and whitespace into the canonical PEM", () => {
    const escaped = signer.publicPem.replace(/\n/g, "\\n");
    expect(escaped).not.toContain("\n");
    expect(normalizePem(escaped)).toBe(signer.publicPem);
    expect(normalizePem(escapedPem(signer.publicPem))).toBe(signer.publicPem);
    expect(normalizePem(`  '${escaped}'  \n`)).toBe(signer.publicPem);
    expect(normalizePem(signer.publicPem.replace(/\n/g, "\\r\\n"))).toBe(signer.publicPem);
  });

  it("accepts CRLF, indentation, a one-line PEM and a bare base64 body", () => {
    const lines = signer.publicPem.trim().split("\n");
    const body = lines.slice(1, -1).join("");
    expect(normalizePem(signer.publicPem.replace(/\n/g, "\r\n"))).toBe(signer.publicPem);
    expect(normalizePem(lines.map((l) => `    ${l}`).join("\n"))).toBe(signer.publicPem);
    expect(normalizePem(lines.join(""))).toBe(signer.publicPem);
    expect(normalizePem(body)).toBe(signer.publicPem);
  });
});

describe("verifySessionToken with jwtKey (networkless)", () => {
  const settings = (): ClerkSettings => ({ jwtKey: signer.publicPem, authorizedParties: [TEST_AZP] });
  badTokenCases(settings);
});

describe("verifySessionToken with a jwtKey whose newlines arrive as literal \\n", () => {
  const settings = (): ClerkSettings => ({ jwtKey: escapedPem(signer.publicPem), authorizedParties: [TEST_AZP] });
  it("the configured value really is one line", () => {
    expect(settings().jwtKey).not.toContain("\n");
  });
  badTokenCases(settings);
});

describe("verifySessionToken via the JWKS endpoint (secretKey + apiUrl)", () => {
  let server: JwksServer;
  const secretKey = newSecretKey();
  beforeAll(async () => {
    server = await startJwksServer(signer.jwks, { secretKey });
  });
  afterAll(async () => {
    await server.close();
  });
  const settings = (): ClerkSettings => ({ secretKey, apiUrl: server.url, authorizedParties: [TEST_AZP] });

  badTokenCases(settings);

  it("fetched the JWKS exactly once for all the verifications above, from /v1/jwks with the secret key", () => {
    expect(server.requests()).toBe(1);
    expect(server.log()).toEqual([{ method: "GET", path: "/v1/jwks", authorization: `Bearer ${secretKey}` }]);
  });

  it("rejects a kid the JWKS does not hold without refetching it on every request", async () => {
    const before = server.requests();
    for (let i = 0; i < 5; i++) {
      const token = signer.sign({}, { header: { kid: `ins_made_up_${i}` } });
      expect(await rejectionOf(token, settings())).toBe("unknown-key");
    }
    expect(await rejectionOf(otherSigner.sign(), settings())).toBe("unknown-key");
    expect(await rejectionOf(signer.sign({}, { header: { kid: undefined } }), settings())).toBe("unknown-key");
    // The refetch for unknown kids is rate-limited: the first fetch happened moments ago.
    expect(server.requests()).toBe(before);
  });
});

describe("JWKS caching and failures", () => {
  const servers: JwksServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  async function freshServer(jwks = signer.jwks) {
    const secretKey = newSecretKey();
    const server = await startJwksServer(jwks, { secretKey });
    servers.push(server);
    const settings: ClerkSettings = { secretKey, apiUrl: server.url, authorizedParties: [] };
    return { server, secretKey, settings };
  }

  it("shares one fetch between concurrent first verifications", async () => {
    const { server, settings } = await freshServer();
    const results = await Promise.all(Array.from({ length: 10 }, () => verifySessionToken(signer.sign(), settings)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(server.requests()).toBe(1);
  });

  it("keeps the keys for 5 minutes, then fetches again", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1, 12, 0, 0);
    vi.setSystemTime(start);
    const { server, settings } = await freshServer();
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    vi.setSystemTime(start + 4 * 60_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect(server.requests()).toBe(1);
    vi.setSystemTime(start + 5 * 60_000 + 1_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect(server.requests()).toBe(2);
  });

  it("picks up a rotated key after the refetch interval", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1, 12, 0, 0);
    vi.setSystemTime(start);
    const { server, settings } = await freshServer();
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    server.setJwks({ keys: [signer.jwk, otherSigner.jwk] });
    vi.setSystemTime(start + 2_000);
    expect(await rejectionOf(otherSigner.sign(), settings)).toBe("unknown-key");
    expect(server.requests()).toBe(1);
    vi.setSystemTime(start + 11_000);
    expect(await verifySessionToken(otherSigner.sign({ sub: "user_rotated" }), settings)).toMatchObject({
      ok: true,
      value: { userId: "user_rotated" },
    });
    expect(server.requests()).toBe(2);
  });

  it("reports a rejected secret key as a server-side failure", async () => {
    const { server } = await freshServer();
    const settings: ClerkSettings = { secretKey: newSecretKey(), apiUrl: server.url, authorizedParties: [] };
    const reason = await rejectionOf(signer.sign(), settings);
    expect(reason).toBe("secret-key-rejected");
    expect(isServerSideReason(reason)).toBe(true);
  });

  it("reports an unavailable JWKS quickly, without hammering it, and recovers", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1, 12, 0, 0);
    vi.setSystemTime(start);
    const { server, settings } = await freshServer();
    server.failWith(500);
    const began = performance.now();
    expect(await rejectionOf(signer.sign(), settings)).toBe("jwks-unavailable");
    expect(performance.now() - began).toBeLessThan(1_000);
    for (let i = 0; i < 3; i++) expect(await rejectionOf(signer.sign(), settings)).toBe("jwks-unavailable");
    expect(server.requests()).toBe(1);
    server.failWith(null);
    vi.setSystemTime(start + 11_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect(server.requests()).toBe(2);
  });

  it("keeps verifying with the keys it holds for 24 h while the JWKS endpoint fails, refetching at most every 10 s", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1, 12, 0, 0);
    vi.setSystemTime(start);
    const { server, settings } = await freshServer();
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    server.failWith(500);

    // After the 5-minute TTL the refresh fails: the held keys still verify.
    const stale = start + 5 * 60_000 + 1_000;
    vi.setSystemTime(stale);
    expect(await verifySessionToken(signer.sign({ sub: "user_outage" }), settings)).toMatchObject({
      ok: true,
      value: { userId: "user_outage" },
    });
    expect(server.requests()).toBe(2);
    // Within 10 s of that attempt: no new fetch.
    vi.setSystemTime(stale + 5_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect(server.requests()).toBe(2);
    // A kid the held keys do not have cannot be checked during the outage: a server-side failure, not a 401.
    expect(await rejectionOf(otherSigner.sign(), settings)).toBe("jwks-unavailable");
    // Then a retry at most every 10 s, while tokens keep verifying.
    vi.setSystemTime(stale + 11_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    await vi.waitFor(() => expect(server.requests()).toBe(3));
    // Tokens still verify just before the 24 h grace ends...
    vi.setSystemTime(start + 24 * 60 * 60_000 - 60_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    // ...and not after it: the grace is bounded.
    vi.setSystemTime(start + 24 * 60 * 60_000 + 1_000);
    expect(await rejectionOf(signer.sign(), settings)).toBe("jwks-unavailable");
    // Clerk answers again: one fetch, fresh keys, and the next refresh is 5 minutes away.
    server.failWith(null);
    vi.setSystemTime(start + 24 * 60 * 60_000 + 12_000);
    const before = server.requests();
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect(server.requests()).toBe(before + 1);
    vi.setSystemTime(start + 24 * 60 * 60_000 + 4 * 60_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect(server.requests()).toBe(before + 1);
  });

  it("during an outage, requests do not wait for the background retry (a hung JWKS endpoint)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1, 12, 0, 0);
    vi.setSystemTime(start);
    const { server, settings } = await freshServer();
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    server.failWith(500);
    vi.setSystemTime(start + 5 * 60_000 + 1_000);
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true); // the outage is now known
    // The next retry hangs until this test lets it go (a stand-in for fetch that ignores even the
    // 5 s timeout): a verification that waited for it would never answer.
    let retries = 0;
    let release!: () => void;
    const hung = new Promise<never>((_, reject) => (release = () => reject(new TypeError("fetch failed"))));
    vi.stubGlobal("fetch", () => {
      retries += 1;
      return hung;
    });
    try {
      vi.setSystemTime(start + 5 * 60_000 + 12_000);
      let answer: Awaited<ReturnType<typeof verifySessionToken>> | undefined;
      void verifySessionToken(signer.sign({ sub: "user_no_wait" }), settings).then((result) => (answer = result));
      await vi.waitFor(() => expect(answer).toEqual({ ok: true, value: expect.objectContaining({ userId: "user_no_wait" }) }));
      expect(retries).toBe(1);
    } finally {
      release();
      vi.unstubAllGlobals();
    }
  });

  it("gives no grace to a rejected secret key (configuration, not an outage)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1, 12, 0, 0);
    vi.setSystemTime(start);
    const { server, settings } = await freshServer();
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    server.failWith(401);
    vi.setSystemTime(start + 5 * 60_000 + 1_000);
    expect(await rejectionOf(signer.sign(), settings)).toBe("secret-key-rejected");
  });

  it("refuses HS256 and alg: none as unsupported-algorithm without fetching the JWKS (even when it is down)", async () => {
    const { server, settings } = await freshServer();
    server.failWith(503);
    expect(await rejectionOf(hs256WithPublicKeyToken(signer), settings)).toBe("unsupported-algorithm");
    expect(await rejectionOf(hs256WithPublicKeyToken(signer, {}, settings.secretKey), settings)).toBe("unsupported-algorithm");
    expect(await rejectionOf(algNoneToken(signer), settings)).toBe("unsupported-algorithm");
    expect(await rejectionOf(signer.sign({}, { header: { alg: "ES256" } }), settings)).toBe("unsupported-algorithm");
    expect(server.requests()).toBe(0);
    // The JWKS endpoint cannot be reached at all: the same answers, still no fetch.
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect(await rejectionOf(hs256WithPublicKeyToken(signer), settings)).toBe("unsupported-algorithm");
    expect(await rejectionOf(algNoneToken(signer), settings)).toBe("unsupported-algorithm");
    expect(server.requests()).toBe(0);
  });

  it("gives up on a JWKS endpoint that never answers (5 s timeout)", { timeout: 15_000 }, async () => {
    const { server, settings } = await freshServer();
    server.stall(true);
    const began = performance.now();
    expect(await rejectionOf(signer.sign(), settings)).toBe("jwks-unavailable");
    const elapsed = performance.now() - began;
    expect(elapsed).toBeGreaterThan(4_000);
    expect(elapsed).toBeLessThan(8_000);
  });

  it("reports an unreachable Clerk API as jwks-unavailable", async () => {
    const { server, settings } = await freshServer();
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect(await rejectionOf(signer.sign(), settings)).toBe("jwks-unavailable");
  });

  it("keeps an apiUrl path prefix (proxies)", async () => {
    const { server, secretKey } = await freshServer();
    const settings: ClerkSettings = { secretKey, apiUrl: `${server.url}/clerk/`, authorizedParties: [] };
    expect(await rejectionOf(signer.sign(), settings)).toBe("jwks-unavailable");
    expect(server.log().map((r) => r.path)).toEqual(["/clerk/v1/jwks"]);
  });

  it("the kit's server answers Clerk's own verifyToken the same way", async () => {
    const { server, secretKey } = await freshServer();
    const payload = await clerkVerifyToken(signer.sign({ sub: "user_clerk" }), { secretKey, apiUrl: server.url });
    expect(payload.sub).toBe("user_clerk");
    expect(server.log()).toEqual([{ method: "GET", path: "/v1/jwks", authorization: `Bearer ${secretKey}` }]);
    // ...and the kit's PEM is one Clerk's networkless loader accepts (2048-bit).
    const viaPem = await clerkVerifyToken(signer.sign({ sub: "user_pem" }), { jwtKey: signer.publicPem });
    expect(viaPem.sub).toBe("user_pem");
  });
});

describe("configuration", () => {
  it("uses jwtKey without touching the network when both jwtKey and secretKey are set", async () => {
    const secretKey = newSecretKey();
    const server = await startJwksServer(signer.jwks, { secretKey });
    try {
      const settings: ClerkSettings = { jwtKey: signer.publicPem, secretKey, apiUrl: server.url, authorizedParties: [] };
      expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
      expect(await rejectionOf(otherSigner.sign(), settings)).toBe("invalid-signature");
      expect(server.requests()).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("answers not-configured with neither jwtKey nor secretKey", async () => {
    const reason = await rejectionOf(signer.sign(), { authorizedParties: [] });
    expect(reason).toBe("not-configured");
    expect(isServerSideReason(reason)).toBe(true);
  });

  it("answers invalid-jwt-key for a jwtKey that is not an RSA public key", async () => {
    for (const jwtKey of ["not a pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]) {
      const reason = await rejectionOf(signer.sign(), { jwtKey, authorizedParties: [] });
      expect(reason).toBe("invalid-jwt-key");
      expect(isServerSideReason(reason)).toBe(true);
    }
  });

  it("treats token problems as the caller's fault", () => {
    for (const reason of ["malformed", "expired", "invalid-signature", "unauthorized-party", "unknown-key"]) {
      expect(isServerSideReason(reason)).toBe(false);
    }
  });
});

describe("authorizedParties", () => {
  const base = { jwtKey: signer.publicPem };

  it("is not enforced when empty", async () => {
    expect((await verifySessionToken(wrongAzpToken(signer), { ...base, authorizedParties: [] })).ok).toBe(true);
    expect((await verifySessionToken(signer.sign({ azp: undefined }), { ...base, authorizedParties: [] })).ok).toBe(true);
  });

  it("accepts any listed origin", async () => {
    const settings = { ...base, authorizedParties: ["https://app.example", TEST_AZP] };
    expect((await verifySessionToken(signer.sign(), settings)).ok).toBe(true);
    expect((await verifySessionToken(signer.sign({ azp: "https://app.example" }), settings)).ok).toBe(true);
  });

  it("rejects an unlisted origin, a near miss and a missing azp", async () => {
    const settings = { ...base, authorizedParties: ["https://app.example"] };
    for (const azp of [TEST_AZP, "https://app.example/", "https://app.example.evil", "http://app.example", undefined]) {
      expect(await rejectionOf(signer.sign({ azp }), settings)).toBe("unauthorized-party");
    }
  });
});

describe("clock skew (pinned clock)", () => {
  const settings: ClerkSettings = { jwtKey: signer.publicPem, authorizedParties: [] };
  const now = Date.UTC(2030, 5, 1, 8, 0, 0);
  const nowS = now / 1000;
  const skewS = CLOCK_SKEW_MS / 1000;

  it("allows a few seconds of skew and no more", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(now);
    expect(skewS).toBeGreaterThan(0);
    expect(skewS).toBeLessThanOrEqual(10);
    const accepted = [{ exp: nowS - skewS + 1 }, { nbf: nowS + skewS - 1 }, { iat: nowS + skewS - 1 }];
    for (const claims of accepted) {
      const result = await verifySessionToken(signer.sign(claims), settings);
      expect(result.ok, JSON.stringify({ claims, result })).toBe(true);
    }
    expect(await rejectionOf(signer.sign({ exp: nowS - skewS - 1 }), settings)).toBe("expired");
    expect(await rejectionOf(signer.sign({ exp: nowS - skewS }), settings)).toBe("expired");
    expect(await rejectionOf(signer.sign({ nbf: nowS + skewS + 1 }), settings)).toBe("not-yet-valid");
    expect(await rejectionOf(signer.sign({ iat: nowS + skewS + 1, nbf: undefined }), settings)).toBe("issued-in-future");
  });
});

describe("extractSessionToken", () => {
  const req = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });

  it("reads Authorization: Bearer, whatever the case of the scheme", () => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      expect(extractSessionToken(req("http://x/api", { authorization: `${scheme} tok.en.1` }))).toBe("tok.en.1");
    }
    expect(extractSessionToken(req("http://x/api", { authorization: "Bearer   tok.en.2  " }))).toBe("tok.en.2");
  });

  it("reads the __session cookie", () => {
    expect(extractSessionToken(req("http://x/api", { cookie: "__session=tok.en.3" }))).toBe("tok.en.3");
    expect(extractSessionToken(req("http://x/api", { cookie: "a=1; __session=tok.en.4; b=2" }))).toBe("tok.en.4");
    expect(extractSessionToken(req("http://x/api", { cookie: '__session="tok.en.5"' }))).toBe("tok.en.5");
  });

  it("prefers the Authorization header over the cookie", () => {
    const request = req("http://x/api", { authorization: "Bearer from.header.x", cookie: "__session=from.cookie.x" });
    expect(extractSessionToken(request)).toBe("from.header.x");
  });

  it("ignores other cookies that merely contain the name", () => {
    const cookie = "my__session=a.b.c; __session_abc123=d.e.f; __Session=g.h.i";
    expect(extractSessionToken(req("http://x/api", { cookie }))).toBeNull();
  });

  it("reads no token from other schemes or an empty bearer, and then not the cookie either", () => {
    expect(extractSessionToken(req("http://x/api", { authorization: "Basic dXNlcjpwYXNz" }))).toBeNull();
    expect(extractSessionToken(req("http://x/api", { authorization: "Bearer" }))).toBeNull();
    expect(extractSessionToken(req("http://x/api", { authorization: "Bearer a b" }))).toBeNull();
    // A credential that was sent but cannot be read is refused (401), not swapped for the cookie.
    for (const authorization of ["Basic dXNlcjpwYXNz", "Bearer", "", "Token c.o.k"]) {
      expect(extractSessionToken(req("http://x/api", { authorization, cookie: "__session=c.o.k" })), authorization).toBeNull();
    }
    expect(extractSessionToken(req("http://x/api", { cookie: "__session=" }))).toBeNull();
  });

  it("never reads the query string", () => {
    const token = signer.sign();
    for (const query of [`__session=${token}`, `token=${token}`, `authorization=Bearer%20${token}`, `session=${token}`]) {
      expect(extractSessionToken(req(`http://x/api/usage?${query}`))).toBeNull();
    }
    // Not even as a fallback next to a useless header.
    expect(extractSessionToken(req(`http://x/api?__session=${token}`, { authorization: "Basic x" }))).toBeNull();
  });

  it("returns null when there is nothing", () => {
    expect(extractSessionToken(req("http://x/api"))).toBeNull();
  });
});
