/**
 * The PEM public key of CLERK_JWT_KEY, networkless mode: normalized (literal `\n`, quotes)
 * and parsed once with node:crypto, so any RSA key size works and a broken key is reported
 * as such (`invalid-jwt-key`) rather than as a bad token.
 */
import { createPublicKey, type JsonWebKey as NodeJsonWebKey } from "node:crypto";

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;

/**
 * Canonical PEM from what a dashboard copy, a `.env` file or a platform's settings page
 * delivers: surrounding whitespace and quotes removed, literal `\n` / `\r\n` turned into
 * newlines, the base64 body re-wrapped at 64 columns. A bare base64 body is taken as a
 * `PUBLIC KEY`. Does not check that the key is usable (`verifySessionToken` does).
 */
export function normalizePem(raw: string): string {
  let text = raw.trim();
  for (let q = text[0]; text.length >= 2 && (q === '"' || q === "'") && text.endsWith(q); q = text[0]) {
    text = text.slice(1, -1).trim();
  }
  text = text.replace(/\\r\\n|\\n|\\r/g, "\n").replace(/\r\n?/g, "\n");
  const block = PEM_BLOCK.exec(text);
  const label = block?.[1] ?? "PUBLIC KEY";
  const body = (block?.[2] ?? text).replace(/\s+/g, "");
  const lines = body.match(/.{1,64}/g) ?? [];
  return [`-----BEGIN ${label}-----`, ...lines, `-----END ${label}-----`, ""].join("\n");
}

/** PEM → JWK, memoized: the configured key is one string for the life of the process. */
const pemKeys = new Map<string, JsonWebKey | null>();

/** The RSA public key of a (raw, unnormalized) PEM as a JWK, or null when it is not one. */
export function jwkFromPem(raw: string): JsonWebKey | null {
  const cached = pemKeys.get(raw);
  if (cached !== undefined) return cached;
  let jwk: JsonWebKey | null = null;
  try {
    const key = createPublicKey({ key: normalizePem(raw), format: "pem" });
    if (key.asymmetricKeyType === "rsa") {
      const exported: NodeJsonWebKey = key.export({ format: "jwk" });
      jwk = { kty: "RSA", n: exported.n, e: exported.e };
    }
  } catch {
    jwk = null;
  }
  if (pemKeys.size > 16) pemKeys.clear();
  pemKeys.set(raw, jwk);
  return jwk;
}
