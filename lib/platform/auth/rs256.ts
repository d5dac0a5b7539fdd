/**
 * The signature and claim checks of a Clerk session token, with WebCrypto (`crypto.subtle`) and
 * nothing else: what `verifyJwt` from `@clerk/backend/jwt` does once it holds a key, without
 * loading that package on a function's first request (`@clerk/backend` stays for webhooks).
 * `tests/unit/auth-rs256.security.test.ts` runs both on the same tokens and holds them to the same
 * answers, reason by reason.
 *
 * In Clerk's order, each failure mapped to our reason as verify.ts mapped Clerk's:
 * 1. three base64url parts that decode (canonical base64url, JSON objects) -> `malformed`;
 * 2. the algorithm pinned to the RSA PKCS#1 v1.5 family Clerk signs with (RS256, and RS384 / RS512
 *    which Clerk also accepts), never `none`, HMAC or EC -> `unsupported-algorithm`;
 * 3. the signature, by the configured key -> `invalid-signature` (a key WebCrypto cannot use for
 *    that algorithm is Clerk's "verification failed", the catch-all below);
 * 4. `sub` a string, `azp` among the authorized parties (when any), `exp` a number and not past,
 *    `nbf` and `iat` (when present) numbers and not in the future, each with the clock skew
 *    -> `unauthorized-party`, `expired`, `not-yet-valid`, `issued-in-future`, or the catch-all:
 *    `missing-subject` when `sub` is not a non-empty string, else `invalid-claims`.
 * The header's `typ` and `cat`, the non-empty `sub` and the session status are verify.ts's checks.
 */
import { err, ok, type Result } from "../../http/errors.js";
import type { TokenRejectionReason } from "./token.js";

export type JwtClaims = Record<string, unknown>;

export interface Rs256Options {
  clockSkewMs: number;
  /** Allowed `azp` values; undefined or empty: no check. */
  authorizedParties?: readonly string[] | undefined;
  /** Milliseconds since the epoch; default Date.now() (tests). */
  nowMs?: number;
}

const HASH_OF: Readonly<Record<string, string>> = { RS256: "SHA-256", RS384: "SHA-384", RS512: "SHA-512" };

/** Imported keys, per JWK object (jwkFromPem and the JWKS cache hand out the same object) and algorithm. */
const imported = new WeakMap<JsonWebKey, Map<string, Promise<CryptoKey>>>();

function importVerifyKey(key: JsonWebKey, alg: string): Promise<CryptoKey> {
  let byAlg = imported.get(key);
  if (!byAlg) imported.set(key, (byAlg = new Map()));
  let promise = byAlg.get(alg);
  if (!promise) {
    promise = crypto.subtle.importKey("jwk", key, { name: "RSASSA-PKCS1-v1_5", hash: HASH_OF[alg]! }, false, ["verify"]);
    // A key that cannot be imported is not remembered: the next token tries again.
    promise.catch(() => byAlg!.delete(alg));
    byAlg.set(alg, promise);
  }
  return promise;
}

/**
 * Strict base64url: only the URL-safe alphabet, no padding, and no bits left over (the canonical
 * encoding), as Clerk's decoder requires; Node's own decoder would skip what it cannot read.
 */
function decodeBase64Url(text: string): Buffer | null {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const alphabet = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 /* - */ || c === 95; /* _ */
    if (!alphabet) return null;
  }
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : null;
}

function decodeJson(text: string): JwtClaims | null {
  const bytes = decodeBase64Url(text);
  if (!bytes) return null;
  try {
    const value: unknown = JSON.parse(bytes.toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JwtClaims) : null;
  } catch {
    return null;
  }
}

const encoder = new TextEncoder();

const isNonEmptyString = (value: unknown): value is string => typeof value === "string" && value.length > 0;

/** Verifies a compact RS256/RS384/RS512 JWS and its time and party claims; the claims on success. */
export async function verifyRs256Jwt(
  token: string,
  key: JsonWebKey,
  options: Rs256Options,
): Promise<Result<JwtClaims, TokenRejectionReason>> {
  const parts = token.split(".");
  if (parts.length !== 3) return err("malformed");
  const [rawHeader = "", rawPayload = "", rawSignature = ""] = parts;
  const header = decodeJson(rawHeader);
  const payload = decodeJson(rawPayload);
  const signature = decodeBase64Url(rawSignature);
  if (!header || !payload || !signature) return err("malformed");

  const alg = header.alg;
  if (typeof alg !== "string" || !Object.hasOwn(HASH_OF, alg)) return err("unsupported-algorithm");

  const failed = (): Result<JwtClaims, TokenRejectionReason> => err(isNonEmptyString(payload.sub) ? "invalid-claims" : "missing-subject");
  let valid: boolean;
  try {
    const cryptoKey = await importVerifyKey(key, alg);
    valid = await crypto.subtle.verify(
      "RSASSA-PKCS1-v1_5",
      cryptoKey,
      new Uint8Array(signature),
      encoder.encode(`${rawHeader}.${rawPayload}`),
    );
  } catch {
    return failed();
  }
  if (!valid) return err("invalid-signature");

  const now = options.nowMs ?? Date.now();
  const skew = options.clockSkewMs;
  // Whole seconds, as Clerk's `Date#setUTCSeconds` reads a claim (a fraction is dropped).
  const ms = (seconds: number) => Math.trunc(seconds) * 1000;
  const { sub, azp, exp, nbf, iat } = payload;
  if (typeof sub !== "string") return failed();
  const parties = options.authorizedParties;
  if (parties && parties.length > 0 && (!azp || typeof azp !== "string" || !parties.includes(azp))) return err("unauthorized-party");
  if (typeof exp !== "number") return failed();
  if (ms(exp) <= now - skew) return err("expired");
  if (nbf !== undefined) {
    if (typeof nbf !== "number") return failed();
    if (ms(nbf) > now + skew) return err("not-yet-valid");
  }
  if (iat !== undefined) {
    if (typeof iat !== "number") return failed();
    if (ms(iat) > now + skew) return err("issued-in-future");
  }
  return ok(payload);
}
