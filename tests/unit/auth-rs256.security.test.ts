/**
 * The WebCrypto session-token check (lib/platform/auth/rs256.ts, used by verify.ts) against
 * Clerk's own `verifyJwt` (`@clerk/backend/jwt`, what verify.ts called before) on the same tokens:
 *
 * - a reference `verifySessionToken` built on Clerk's verifyJwt exactly as verify.ts was (same pre-checks,
 *   same reason mapping) must give the same answer as the real one for every forged-token battery
 *   case (tests/helpers/battery.ts), every malformed token, and randomised claim sets and
 *   byte-level mutations (fast-check, seed logged, bounded sizes), with the clock frozen;
 * - `verifyRs256Jwt` and Clerk's `verifyJwt` agree accept/reject (and on the reason) directly,
 *   with and without authorized parties, for both key forms (PEM-derived JWK, JWKS JWK with `alg`).
 */
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
