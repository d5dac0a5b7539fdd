/**
 * Clerk test kit: an RS256 signer with a fresh 2048-bit key (Clerk's PEM loader accepts only
 * 2048-bit RSA keys), builders for every kind of bad token, and a local server that answers
 * Clerk's Backend API JWKS endpoint (`GET {apiUrl}/v1/jwks`, `Authorization: Bearer <secret>`)
 * the way `verifyToken({ secretKey, apiUrl })` calls it.
 */
import { createHmac, generateKeyPairSync, randomBytes, sign as rsaSign, type KeyObject } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface Claims {
  sub: string;
  sid: string;
  iat: number;
  nbf: number;
  exp: number;
  azp: string;
  iss: string;
  [claim: string]: unknown;
}

/** Claims to override; a claim set to `undefined` is left out of the token. */
export type ClaimOverrides = { [K in keyof Claims]?: Claims[K] | undefined };

export interface SignOptions {
  /** Header fields to add or replace (e.g. `kid`, `typ`, `cat`). */
  header?: Record<string, unknown>;
  /** Sign with another private key (the header still carries this signer's kid unless overridden). */
  privateKey?: KeyObject;
}

export interface PublicJwk {
  kty: "RSA";
  n: string;
  e: string;
  kid: string;
  alg: "RS256";
  use: "sig";
}

export interface Jwks {
  keys: PublicJwk[];
}

export interface TestSigner {
  /** SPKI PEM, exactly as the Clerk dashboard shows it (64-column lines, trailing newline). */
  publicPem: string;
  kid: string;
  jwk: PublicJwk;
  /** `{ keys: [jwk] }`, what Clerk's `/v1/jwks` returns for this instance. */
  jwks: Jwks;
  /** The claims `sign()` uses when not overridden, computed from the (possibly faked) clock. */
  defaultClaims(): Claims;
  sign(claims?: ClaimOverrides, opts?: SignOptions): string;
}

export const TEST_AZP = "http://localhost:3000";
export const TEST_ISSUER = "https://clerk.test.local";

const b64url = (data: string | Buffer): string => Buffer.from(data).toString("base64url");
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function encodeUnsigned(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
}

function generateRsaKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 0x10001 });
}

/** A new signer with its own 2048-bit RSA key and kid. Tokens live 60 s by default. */
export function createTestSigner(): TestSigner {
  const { publicKey, privateKey } = generateRsaKeyPair();
  const kid = `ins_test_${randomBytes(8).toString("hex")}`;
  const exported = publicKey.export({ format: "jwk" });
  const jwk: PublicJwk = { kty: "RSA", n: String(exported.n), e: String(exported.e), kid, alg: "RS256", use: "sig" };
  const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();

  const defaultClaims = (): Claims => {
    const now = nowSeconds();
    return {
      sub: `user_test_${randomBytes(6).toString("hex")}`,
      sid: `sess_test_${randomBytes(6).toString("hex")}`,
      iat: now,
      nbf: now - 5,
      exp: now + 60,
      azp: TEST_AZP,
      iss: TEST_ISSUER,
    };
  };

  const sign = (claims: ClaimOverrides = {}, opts: SignOptions = {}): string => {
    const header = { alg: "RS256", typ: "JWT", kid, ...opts.header };
    const unsigned = encodeUnsigned(header, { ...defaultClaims(), ...claims });
    const signature = rsaSign("sha256", Buffer.from(unsigned), opts.privateKey ?? privateKey);
    return `${unsigned}.${b64url(signature)}`;
  };

  return { publicPem, kid, jwk, jwks: { keys: [jwk] }, defaultClaims, sign };
}

/** `publicPem` as a one-line env value: real newlines replaced by the two characters `\n`, quoted. */
export function escapedPem(pem: string): string {
  return `"${pem.replace(/\n/g, "\\n")}"`;
}

// ---- bad tokens ---------------------------------------------------------------------------

/** Expired a minute ago (well past the 5 s clock skew). */
export function expiredToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  const now = nowSeconds();
  return signer.sign({ iat: now - 180, nbf: now - 180, exp: now - 60, ...claims });
}

/** Not valid before a minute from now. */
export function futureNbfToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  const now = nowSeconds();
  return signer.sign({ iat: now, nbf: now + 60, exp: now + 120, ...claims });
}

/** Issued a minute in the future (nbf left out so only iat is wrong). */
export function futureIatToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  const now = nowSeconds();
  return signer.sign({ iat: now + 60, nbf: undefined, exp: now + 120, ...claims });
}

let otherKey: KeyObject | undefined;

/** Right header and kid, but signed by another 2048-bit key. */
export function wrongKeyToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  otherKey ??= generateRsaKeyPair().privateKey;
  return signer.sign(claims, { privateKey: otherKey });
}

/** A valid token whose payload was edited after signing (sub swapped for another user). */
export function tamperedToken(signer: TestSigner, claims: ClaimOverrides = { sub: "user_someone_else" }): string {
  const [header = "", , signature = ""] = signer.sign().split(".");
  const payload = b64url(JSON.stringify({ ...signer.defaultClaims(), ...claims }));
  return `${header}.${payload}.${signature}`;
}

/** `alg: none`, no signature. Valid claims otherwise. */
export function algNoneToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  const header = { alg: "none", typ: "JWT", kid: signer.kid };
  return `${encodeUnsigned(header, { ...signer.defaultClaims(), ...claims })}.`;
}

/** The classic key-confusion attack: HS256 with the RSA public key's PEM text as HMAC secret. */
export function hs256WithPublicKeyToken(signer: TestSigner, claims: ClaimOverrides = {}, secret = signer.publicPem): string {
  const header = { alg: "HS256", typ: "JWT", kid: signer.kid };
  const unsigned = encodeUnsigned(header, { ...signer.defaultClaims(), ...claims });
  const signature = createHmac("sha256", secret).update(unsigned).digest();
  return `${unsigned}.${b64url(signature)}`;
}

/** Correctly signed, but minted for another frontend origin. */
export function wrongAzpToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  return signer.sign({ azp: "https://evil.example", ...claims });
}

/** Correctly signed, no `sub`. */
export function noSubToken(signer: TestSigner, claims: ClaimOverrides = {}): string {
  return signer.sign({ sub: undefined, ...claims });
}

/** Strings that are not a JWT at all, or whose parts do not decode to JSON objects. */
export function malformedTokens(signer: TestSigner): Record<string, string> {
  const valid = signer.sign();
  const [header = "", payload = "", signature = ""] = valid.split(".");
  return {
    empty: "",
    word: "not-a-token",
    "two parts": `${header}.${payload}`,
    "four parts": `${valid}.${signature}`,
    "header not base64url": `${header}!.${payload}.${signature}`,
    "header not JSON": `${b64url("hello")}.${payload}.${signature}`,
    "header a JSON array": `${b64url("[]")}.${payload}.${signature}`,
    "payload a JSON string": `${header}.${b64url('"user_1"')}.${signature}`,
    "payload not JSON": `${header}.${b64url("{sub:")}.${signature}`,
    oversized: `${header}.${b64url(JSON.stringify({ ...signer.defaultClaims(), pad: "x".repeat(20_000) }))}.${signature}`,
    "whitespace inside": `${header} .${payload}.${signature}`,
  };
}

// ---- JWKS server --------------------------------------------------------------------------

export interface JwksRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

export interface JwksServer {
  /** Base URL to pass as `apiUrl` (CLERK_API_URL). */
  url: string;
  /** How many JWKS requests arrived (any path, any answer). */
  requests(): number;
  /** Every request, in order. */
  log(): JwksRequest[];
  /** Serve another key set from now on (key rotation). */
  setJwks(jwks: Jwks): void;
  /** Answer every request with this status (e.g. 500) until set back to `null`. */
  failWith(status: number | null): void;
  /** Accept requests but never answer them (a hung upstream) until set back to `false`. */
  stall(on: boolean): void;
  close(): Promise<void>;
}

/**
 * A stand-in for Clerk's Backend API: `GET /v1/jwks` with `Authorization: Bearer <secretKey>`
 * answers `jwks`; a wrong bearer gets Clerk's 401 body; any other path 404.
 */
export async function startJwksServer(jwks: Jwks, options: { secretKey?: string } = {}): Promise<JwksServer> {
  let current = jwks;
  let failure: number | null = null;
  let stalled = false;
  const received: JwksRequest[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    received.push({ method: req.method ?? "", path, authorization: req.headers.authorization });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (stalled) return;
    if (failure !== null) return send(failure, { errors: [{ code: "internal_error", message: "test failure" }] });
    if (req.method !== "GET" || path !== "/v1/jwks") {
      return send(404, { errors: [{ code: "resource_not_found", message: "not found" }] });
    }
    if (options.secretKey !== undefined && req.headers.authorization !== `Bearer ${options.secretKey}`) {
      return send(401, {
        errors: [{ code: "clerk_key_invalid", message: "The provided Clerk Secret Key is invalid." }],
      });
    }
    return send(200, current);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => received.length,
    log: () => [...received],
    setJwks: (next) => {
      current = next;
    },
    failWith: (status) => {
      failure = status;
    },
    stall: (on) => {
      stalled = on;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
