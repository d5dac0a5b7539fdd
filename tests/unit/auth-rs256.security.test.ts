/**
 * The WebCrypto session-token check (lib/platform/auth/rs256.ts, used by verify.ts) against
 * Clerk's own `verifyJwt` (`@clerk/backend/jwt`, what verify.ts called before) on the same tokens:
 *
 * - a reference `verifySessionToken` built on Clerk's verifyJwt exactly as verify.ts was (same pre-checks,
 *   same reason mapping) must give the same answer as the real one for every forged-token battery
 *   case (tests/helpers/battery.ts), every malformed token, and randomised claim sets and
 *   byte-level mutations (fast-check, seed logged, bounded sizes), with the clock frozen;
 * - `verifyRs256Jwt` and Clerk's `verifyJwt` agree accept/reject (and on the reason) directly,
 *   with and without authorized parties, for both key forms (PEM-derived JWK, JWKS JWK with `alg`);
 * - `verifyRs256Jwt` on its own, written from StrykerJS's survivors (docs/mutation-testing.md): its
 *   own decoding (which verify.ts's pre-checks hide), a non-string `alg`, exp/nbf/iat exactly at
 *   the skew on a whole-second clock, and its cache of imported keys.
 */
import { generateKeyPairSync, sign as rsaSign } from "node:crypto";
import { verifyJwt } from "@clerk/backend/jwt";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { err, ok, type Result } from "../../lib/http/errors.js";
import { jwkFromPem } from "../../lib/platform/auth/pem.js";
import { verifyRs256Jwt } from "../../lib/platform/auth/rs256.js";
import { decodeUnverified, type TokenRejectionReason } from "../../lib/platform/auth/token.js";
import { CLOCK_SKEW_MS, verifySessionToken, type ClerkSettings, type VerifiedSession } from "../../lib/platform/auth/verify.js";
import {
  algNoneToken,
  createTestSigner,
  expiredToken,
  futureIatToken,
  futureNbfToken,
  hs256WithPublicKeyToken,
  malformedTokens,
  noSubToken,
  tamperedToken,
  TEST_AZP,
  wrongAzpToken,
  wrongKeyToken,
} from "../../testkit/clerk.js";
import { badTokenCases } from "../helpers/battery.js";
import { testSeed } from "../helpers/seed.js";

const signer = createTestSigner();
const other = createTestSigner();
const settings: ClerkSettings = { jwtKey: signer.publicPem, authorizedParties: [TEST_AZP] };
const noParties: ClerkSettings = { jwtKey: signer.publicPem, authorizedParties: [] };

// ---- the reference: verify.ts as it was, on Clerk's verifyJwt -----------------------------------

const clerkReasons: Record<string, TokenRejectionReason> = {
  "token-expired": "expired",
  "token-not-active-yet": "not-yet-valid",
  "token-iat-in-the-future": "issued-in-future",
  "token-invalid-signature": "invalid-signature",
  "token-invalid-algorithm": "unsupported-algorithm",
  "token-invalid-authorized-parties": "unauthorized-party",
  "token-invalid": "malformed",
};
const nonEmpty = (v: unknown): v is string => typeof v === "string" && v.length > 0;

async function clerkVerify(token: string, key: JsonWebKey, parties: readonly string[]): Promise<Result<Record<string, unknown>, string>> {
  try {
    const claims = await verifyJwt(token, {
      key,
      clockSkewInMs: CLOCK_SKEW_MS,
      authorizedParties: parties.length > 0 ? [...parties] : undefined,
    });
    return ok(claims as Record<string, unknown>);
  } catch (error) {
    const reason = (error as { reason?: unknown }).reason;
    if (typeof reason !== "string") throw error;
    const mapped = clerkReasons[reason];
    if (mapped) return err(mapped);
    const sub = decodeUnverified(token)?.payload.sub;
    return err(nonEmpty(sub) ? "invalid-claims" : "missing-subject");
  }
}

async function referenceSessionCheck(token: string, s: ClerkSettings): Promise<Result<VerifiedSession, { reason: string }>> {
  const decoded = decodeUnverified(token);
  if (!decoded) return err({ reason: "malformed" });
  const { header } = decoded;
  if (typeof header.alg !== "string" || !["RS256", "RS384", "RS512"].includes(header.alg)) return err({ reason: "unsupported-algorithm" });
  if (header.typ !== undefined && header.typ !== "JWT") return err({ reason: "unsupported-token-type" });
  if (header.cat !== undefined && !["cl_B7d4PD111AAA", "cl_I7d4PD111III"].includes(String(header.cat)))
    return err({ reason: "unsupported-token-type" });
  const key = jwkFromPem(s.jwtKey!);
  if (!key) return err({ reason: "invalid-jwt-key" });
  const result = await clerkVerify(token, key, s.authorizedParties);
  if (!result.ok) return err({ reason: result.error });
  const claims = result.value;
  if (!nonEmpty(claims.sub)) return err({ reason: "missing-subject" });
  if (claims.sts !== undefined && claims.sts !== "active")
    return err({ reason: claims.sts === "pending" ? "session-pending" : "inactive-session" });
  const session: VerifiedSession = { userId: claims.sub };
  if (nonEmpty(claims.sid)) session.sessionId = claims.sid;
  return ok(session);
}

async function expectSameAnswer(name: string, token: string, s: ClerkSettings = settings): Promise<void> {
  const [mine, clerks] = await Promise.all([verifySessionToken(token, s), referenceSessionCheck(token, s)]);
  expect(mine, name).toEqual(clerks);
}

// ---- frozen clock -----------------------------------------------------------------------------

const FROZEN = Date.UTC(2026, 11, 7, 12, 0, 0, 500);
beforeAll(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(FROZEN);
});
afterAll(() => {
  vi.useRealTimers();
});
const nowS = () => Math.floor(Date.now() / 1000);

describe("the WebCrypto check and Clerk's verifyJwt give the same answers", () => {
  it("on every forged-token battery case and every malformed token", async () => {
    const tokens: Record<string, string> = {};
    for (const c of badTokenCases(signer)) {
      c.tokens.forEach((t, i) => {
        tokens[`battery: ${c.name} #${i}`] = t;
      });
    }
    for (const [n, t] of Object.entries(malformedTokens(signer))) tokens[`malformed: ${n}`] = t;
    Object.assign(tokens, {
      valid: signer.sign(),
      expired: expiredToken(signer),
      "future nbf": futureNbfToken(signer),
      "future iat": futureIatToken(signer),
      "wrong key": wrongKeyToken(signer),
      tampered: tamperedToken(signer),
      "alg none": algNoneToken(signer),
      hs256: hs256WithPublicKeyToken(signer),
      "wrong azp": wrongAzpToken(signer),
      "no sub": noSubToken(signer),
      "empty sub": signer.sign({ sub: "" }),
      "another instance": other.sign(),
      "no azp": signer.sign({ azp: undefined }),
      "sts active": signer.sign({ sts: "active" }),
      "sts ended": signer.sign({ sts: "ended" } as never),
      "RS384 header on an RS256 signature": signer.sign({}, { header: { alg: "RS384" } }),
      "padded signature": `${signer.sign()}==`,
    });
    expect(Object.keys(tokens).length).toBeGreaterThan(30);
    for (const [name, token] of Object.entries(tokens)) {
      await expectSameAnswer(name, token);
      await expectSameAnswer(`${name} (no authorized parties)`, token, noParties);
    }
  });

  it("on exp, nbf and iat around the clock skew, fractions, wrong types and other parties (fast-check)", async () => {
    const seed = testSeed("auth-rs256 parity");
    const time = fc.oneof(
      fc.constant(undefined),
      fc.integer({ min: -4000, max: 4000 }).map((d) => nowS() + d),
      fc.constantFrom(-6, -5, -4, 4, 5, 6).map((d) => nowS() + d),
      fc.double({ min: -10, max: 10, noNaN: true }).map((d) => nowS() + d),
      // Fractions next to the skew (the clock stands at .500 s): Clerk reads whole seconds.
      fc.constantFrom(-5.5, -4.8, -4.2, 4.2, 4.8, 5.5).map((d) => nowS() + d),
      fc.constantFrom<unknown>("soon", null, true, [1], {}, 0, -1),
    );
    const claims = fc.record({
      sub: fc.oneof(fc.constant("user_fc"), fc.constant(""), fc.constant(undefined), fc.constant(42 as unknown)),
      azp: fc.oneof(fc.constant(TEST_AZP), fc.constant("https://evil.example"), fc.constant(undefined), fc.constant(7 as unknown)),
      exp: time,
      nbf: time,
      iat: time,
      sts: fc.constantFrom<unknown>(undefined, "active", "pending", "ended"),
    });
    await fc.assert(
      fc.asyncProperty(claims, fc.boolean(), async (c, withParties) => {
        const token = signer.sign(c as never);
        await expectSameAnswer(JSON.stringify(c), token, withParties ? settings : noParties);
      }),
      { seed, numRuns: 300 },
    );
  });

  it("on byte-level mutations of a valid token (fast-check)", async () => {
    const seed = testSeed("auth-rs256 mutations");
    const valid = signer.sign();
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.nat({ max: alphabet.length - 1 })), { minLength: 1, maxLength: 3 }),
        async (edits) => {
          const chars = [...valid];
          for (const [at, c] of edits) chars[at] = alphabet[c]!;
          await expectSameAnswer("mutated", chars.join(""));
        },
      ),
      { seed, numRuns: 300 },
    );
  });

  it("verifyRs256Jwt alone: same verdict as verifyJwt for both key forms and every algorithm header", async () => {
    const pemJwk = jwkFromPem(signer.publicPem)!;
    const jwksJwk = signer.jwk as unknown as JsonWebKey;
    const tokens = [
      signer.sign(),
      expiredToken(signer),
      futureNbfToken(signer),
      futureIatToken(signer),
      wrongKeyToken(signer),
      tamperedToken(signer),
      wrongAzpToken(signer),
      noSubToken(signer),
      signer.sign({}, { header: { alg: "RS384" } }),
      signer.sign({}, { header: { alg: "RS512" } }),
      signer.sign({}, { header: { alg: "PS256" } }),
      signer.sign({}, { header: { alg: "ES256" } }),
      algNoneToken(signer),
      hs256WithPublicKeyToken(signer),
    ];
    for (const key of [pemJwk, jwksJwk]) {
      for (const parties of [[TEST_AZP], []]) {
        for (const token of tokens) {
          const mine = await verifyRs256Jwt(token, key, { clockSkewMs: CLOCK_SKEW_MS, authorizedParties: parties });
          const clerks = await clerkVerify(token, key, parties);
          expect(mine, `${token.slice(0, 40)}… (key ${key === pemJwk ? "PEM" : "JWKS"}, parties ${parties.length})`).toEqual(clerks);
        }
      }
    }
  });

  it("a valid token is accepted and names its user (so the comparisons above are not all refusals)", async () => {
    const result = await verifySessionToken(signer.sign({ sub: "user_parity", sid: "sess_parity" }), settings);
    expect(result).toEqual({ ok: true, value: { userId: "user_parity", sessionId: "sess_parity" } });
  });
});

// ---- verifyRs256Jwt on its own --------------------------------------------------------------------
// verify.ts refuses most malformed tokens before this function runs (token.ts's decodeUnverified),
// so the comparisons above never reach its own decoding: these call it directly. Where Clerk's
// decoder is laxer (padding) or throws (a `null` header), the expected reason is stated instead.

const raw = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 0x10001 });
const rawJwk = raw.publicKey.export({ format: "jwk" }) as JsonWebKey;
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A token signed with `raw` over exactly the two segments given (already encoded). */
function signRaw(header: string, payload: string, hash = "sha256"): string {
  return `${header}.${payload}.${rsaSign(hash, Buffer.from(`${header}.${payload}`), raw.privateKey).toString("base64url")}`;
}
const rawClaims = () => ({ sub: "user_raw", exp: nowS() + 60, iat: nowS() });
const rawHeader = b64({ alg: "RS256", typ: "JWT" });

/** The same bytes in a non-canonical spelling: the last character's unused low bits set. */
function nonCanonical(segment: string): string {
  const unused = [0, 0, 4, 2][segment.length % 4]!;
  expect(unused, "a segment whose length leaves unused bits").toBeGreaterThan(0);
  const last = B64URL.indexOf(segment.at(-1)!);
  const spelled = segment.slice(0, -1) + B64URL[last | 1]!;
  expect(spelled).not.toBe(segment);
  expect(Buffer.from(spelled, "base64url").equals(Buffer.from(segment, "base64url"))).toBe(true);
  return spelled;
}

describe("verifyRs256Jwt on its own", () => {
  const rs = (token: string, key: JsonWebKey = rawJwk, parties: readonly string[] = []) =>
    verifyRs256Jwt(token, key, { clockSkewMs: CLOCK_SKEW_MS, authorizedParties: parties });

  it("a token signed by the raw key passes (so the refusals below are about their one defect)", async () => {
    const claims = rawClaims();
    expect(await rs(signRaw(rawHeader, b64(claims)))).toEqual(ok(claims));
    expect(await rs(signRaw(b64({ alg: "RS512" }), b64(claims), "sha512"))).toEqual(ok(claims));
  });

  it("nbf and iat are optional: a token without either (or both) passes, as with Clerk", async () => {
    const key = jwkFromPem(signer.publicPem)!;
    for (const claims of [{ iat: undefined }, { nbf: undefined }, { iat: undefined, nbf: undefined }]) {
      const token = signer.sign(claims);
      const mine = await verifyRs256Jwt(token, key, { clockSkewMs: CLOCK_SKEW_MS, authorizedParties: [TEST_AZP] });
      expect(mine.ok, JSON.stringify(claims)).toBe(true);
      expect(mine).toEqual(await clerkVerify(token, key, [TEST_AZP]));
      expect((await verifySessionToken(token, settings)).ok).toBe(true);
    }
  });

  it("exp, nbf or iat that is not a number: Clerk's catch-all (invalid-claims, or missing-subject without a sub)", async () => {
    const key = jwkFromPem(signer.publicPem)!;
    for (const claim of ["exp", "nbf", "iat"] as const) {
      for (const value of ["soon", `${nowS()}`, null, true, [nowS()], {}]) {
        for (const sub of ["user_types", ""]) {
          const name = `${claim}: ${JSON.stringify(value)}, sub ${JSON.stringify(sub)}`;
          const token = signer.sign({ sub, [claim]: value as never });
          const mine = await verifyRs256Jwt(token, key, { clockSkewMs: CLOCK_SKEW_MS, authorizedParties: [TEST_AZP] });
          expect(mine, name).toEqual(err(sub ? "invalid-claims" : "missing-subject"));
          expect(mine, name).toEqual(await clerkVerify(token, key, [TEST_AZP]));
        }
      }
    }
  });

  it("an empty azp is refused even when the list of parties holds an empty string (as Clerk; env.ts never builds such a list)", async () => {
    const key = jwkFromPem(signer.publicPem)!;
    const parties = ["", TEST_AZP];
    for (const [azp, expected] of [
      ["", err("unauthorized-party")],
      [TEST_AZP, { ok: true }],
      [7, err("unauthorized-party")],
      [[TEST_AZP], err("unauthorized-party")],
    ] as const) {
      const token = signer.sign({ azp: azp as never });
      const mine = await verifyRs256Jwt(token, key, { clockSkewMs: CLOCK_SKEW_MS, authorizedParties: parties });
      expect(mine, JSON.stringify(azp)).toMatchObject(expected);
      expect(mine, JSON.stringify(azp)).toEqual(await clerkVerify(token, key, parties));
    }
  });

  it("malformed: not three parts, segments that are not canonical base64url of a JSON object", async () => {
    const valid = signRaw(rawHeader, b64(rawClaims()));
    const [header, payload, signature] = valid.split(".") as [string, string, string];
    // Payloads whose encoding leaves unused bits (length not a multiple of 4), for nonCanonical.
    const oddPayload = [b64({ ...rawClaims(), p: "" }), b64({ ...rawClaims(), p: "x" }), b64({ ...rawClaims(), p: "xx" })].find(
      (p) => p.length % 4 !== 0,
    )!;
    const cases: Record<string, string> = {
      ...malformedTokens(signer),
      "two parts (raw)": `${header}.${payload}`,
      "four parts (raw)": `${valid}.${signature}`,
      "four parts, last empty": `${valid}.`,
      "header padded": `${header}=.${payload}.${signature}`,
      "signature padded": `${valid}==`,
      "signature in the base64 alphabet": `${header}.${payload}.${signature.replaceAll("-", "+").replaceAll("_", "/")}x+/`,
      "signature spelled non-canonically": `${header}.${payload}.${nonCanonical(signature)}`,
      "payload spelled non-canonically (and signed so)": signRaw(header, nonCanonical(oddPayload)),
      "header JSON null (signed)": signRaw(b64(null), payload),
      "header JSON string (signed)": signRaw(b64("RS256"), payload),
      "payload JSON null (signed)": signRaw(header, b64(null)),
      "payload JSON array (signed)": signRaw(header, b64([rawClaims()])),
      "payload JSON string (signed)": signRaw(header, b64("user_raw")),
      "payload JSON number (signed)": signRaw(header, b64(42)),
      "header not JSON (signed)": signRaw(Buffer.from("{alg").toString("base64url"), payload),
      "payload not JSON (signed)": signRaw(header, Buffer.from('{"sub":').toString("base64url")),
    };
    for (const [name, token] of Object.entries(cases)) {
      const expected = name === "oversized" ? "invalid-signature" : "malformed";
      expect(await rs(token), name).toEqual(err(expected));
      expect(await rs(token, jwkFromPem(signer.publicPem)!, [TEST_AZP]), name).toEqual(err(expected));
    }
  });

  it("unsupported-algorithm: an alg that is not one of RS256, RS384, RS512 as a string, even correctly signed", async () => {
    const claims = b64(rawClaims());
    for (const alg of [["RS256"], 256, null, { RS256: true }, "rs256", "RS256 ", "HS256", "PS256", "none", "hasOwnProperty", "__proto__"]) {
      const token = signRaw(b64({ alg, typ: "JWT" }), claims);
      expect(await rs(token), JSON.stringify(alg)).toEqual(err("unsupported-algorithm"));
      expect(await clerkVerify(token, rawJwk, []), JSON.stringify(alg)).toEqual(err("unsupported-algorithm"));
    }
    const noAlg = signRaw(b64({ typ: "JWT" }), claims);
    expect(await rs(noAlg)).toEqual(err("unsupported-algorithm"));
  });

  it("exp, nbf and iat exactly at the clock skew, on a clock at a whole second (as Clerk: exp <=, nbf and iat >)", async () => {
    const whole = FROZEN - (FROZEN % 1000);
    vi.setSystemTime(whole);
    try {
      const s = whole / 1000;
      const skew = CLOCK_SKEW_MS / 1000;
      const cases: [string, Record<string, number | undefined>, Result<unknown, TokenRejectionReason>["ok"] | TokenRejectionReason][] = [
        ["exp at now - skew", { exp: s - skew }, "expired"],
        ["exp a second later", { exp: s - skew + 1 }, true],
        ["nbf at now + skew", { nbf: s + skew }, true],
        ["nbf a second later", { nbf: s + skew + 1 }, "not-yet-valid"],
        ["iat at now + skew", { iat: s + skew, nbf: undefined }, true],
        ["iat a second later", { iat: s + skew + 1, nbf: undefined }, "issued-in-future"],
      ];
      const key = jwkFromPem(signer.publicPem)!;
      for (const [name, claims, expected] of cases) {
        const token = signer.sign(claims);
        const mine = await verifyRs256Jwt(token, key, { clockSkewMs: CLOCK_SKEW_MS, authorizedParties: [TEST_AZP] });
        expect(mine.ok ? true : mine.error, name).toBe(expected);
        expect(mine, name).toEqual(await clerkVerify(token, key, [TEST_AZP]));
        await expectSameAnswer(name, token);
      }
    } finally {
      vi.setSystemTime(FROZEN);
    }
  });

  it("imports a key once per key object and algorithm, and forgets an import that failed", async () => {
    const spy = vi.spyOn(crypto.subtle, "importKey");
    try {
      const key = { ...jwkFromPem(signer.publicPem)! };
      const rs256 = signer.sign();
      for (let i = 0; i < 3; i++) expect((await rs(rs256, key)).ok).toBe(true);
      expect(spy).toHaveBeenCalledTimes(1);
      expect((await rs(signer.sign({}, { header: { alg: "RS384" } }), key)).ok).toBe(false);
      expect(spy).toHaveBeenCalledTimes(2);
      expect((await rs(rs256, { ...key })).ok).toBe(true);
      expect(spy).toHaveBeenCalledTimes(3);

      // A key WebCrypto refuses is Clerk's "verification failed" (the catch-all reason), and the
      // failed import (here made to fail, twice) is not kept: the next token imports again.
      const fresh = { ...key };
      const failOnce = () => spy.mockRejectedValueOnce(new DOMException("made to fail", "DataError"));
      failOnce();
      expect(await rs(rs256, fresh)).toEqual(err("invalid-claims"));
      failOnce();
      expect(await rs(signer.sign({ sub: "" }), fresh)).toEqual(err("missing-subject"));
      expect(spy).toHaveBeenCalledTimes(5);
      for (let i = 0; i < 2; i++) expect((await rs(rs256, fresh)).ok).toBe(true);
      expect(spy).toHaveBeenCalledTimes(6);
    } finally {
      spy.mockRestore();
    }
  });
});
