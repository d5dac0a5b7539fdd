/**
 * At-rest encryption of provider keys: AES-256-GCM with a random 96-bit nonce
 * per encryption and `userId|provider` as additional authenticated data, so a ciphertext
 * copied into another user's (or another provider's) row fails to decrypt.
 *
 * Stored format: `keyId:nonce:ciphertext+tag`, nonce and ciphertext base64url without
 * padding. A 12-byte nonce is always 16 base64url characters, which is what the
 * stored-ciphertext pattern in `lib/platform/log.ts` expects, so a stored value that slips into a
 * log line is redacted.
 *
 * Key material lives only in `KeyObject`s, which print as `SecretKeyObject { type: 'secret' }`
 * and serialise to `{}`, so logging a keyring by mistake leaks nothing.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from "node:crypto";
import { err, ok, type Result } from "../http/errors.js";

const algorithm = "aes-256-gcm";
const keyBytes = 32;
const nonceBytes = 12;
const tagBytes = 16;

/**
 * Key ids: 1–32 of `[A-Za-z0-9_-]`, as in the redaction pattern of `lib/platform/log.ts`. The first
 * character must not be `-`: the redaction pattern starts with `\b`, which never matches
 * before an id made only of dashes.
 */
export const keyIdPattern = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$/;

/** Standard or url-safe base64, padded or not (what `openssl rand -base64 32` and we produce). */
const base64KeyPattern = /^(?:[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?)$/;
const base64urlPattern = /^[A-Za-z0-9_-]+$/;

export interface KeyringKey {
  readonly id: string;
  /** Key material, never printable (see module comment). */
  readonly key: KeyObject;
}

export interface Keyring {
  /** The key that encrypts (the first entry); every key in `keys` decrypts. */
  readonly current: KeyringKey;
  /** All key ids, current first, in the order of `KEY_ENCRYPTION_KEYS`. */
  readonly ids: readonly string[];
  readonly keys: ReadonlyMap<string, KeyringKey>;
  /**
   * Entries whose 32 bytes do not look random (see {@link lowEntropyReason}), by position
   * (1-based) and reason, never by id or content. Whether a use refuses them:
   * {@link refusedEntries}.
   */
  readonly lowEntropy: readonly { readonly position: number; readonly reason: string }[];
}

export type DecryptError = "unknown-key-id" | "malformed" | "auth-failed";

/** What a key ring is about to be used for. */
export type KeyringUse = "production" | "development" | "reencrypt";

/**
 * The one strength rule for key rings: the entries `use` refuses. Production refuses every
 * entry that is not 32 random bytes; re-encryption refuses a weak first entry (the one rows
 * get sealed under; older entries may be weak, which is why they are being rotated out);
 * development refuses none (configProblems warns). Runtime, check-config and the
 * re-encryption command all ask this.
 */
export function refusedEntries(keyring: Keyring, use: KeyringUse): Keyring["lowEntropy"] {
  if (use === "production") return keyring.lowEntropy;
  if (use === "reencrypt") return keyring.lowEntropy.filter((weak) => weak.position === 1);
  return [];
}

/**
 * Parses `KEY_ENCRYPTION_KEYS`: comma-separated `id:base64(32 bytes)` entries, ids unique;
 * the first entry encrypts, all decrypt. Spaces around entries are ignored.
 * Error messages name the entry by position, never by id or content, so they never contain
 * key material.
 */
export function parseKeyring(spec: string): Result<Keyring, string> {
  const trimmed = spec.trim();
  if (trimmed === "") {
    return err("KEY_ENCRYPTION_KEYS is empty; expected comma-separated id:base64(32 bytes) entries");
  }
  const ids: string[] = [];
  const keys = new Map<string, KeyringKey>();
  const lowEntropy: { position: number; reason: string }[] = [];
  const entries = trimmed.split(",");
  for (const [index, rawEntry] of entries.entries()) {
    const position = `KEY_ENCRYPTION_KEYS entry ${index + 1}`;
    const entry = rawEntry.trim();
    if (entry === "") return err(`${position} is empty (stray comma?)`);
    const colon = entry.indexOf(":");
    if (colon === -1) return err(`${position} has no "id:" prefix; expected id:base64(32 bytes)`);
    const id = entry.slice(0, colon);
    const material = entry.slice(colon + 1).trim();
    // Messages name entries by position only: an "id" may be the first part of a key that
    // happens to contain a ":" or was pasted in the wrong place.
    if (!keyIdPattern.test(id)) {
      return err(`${position} has an invalid id; ids are 1-32 of [A-Za-z0-9_-] and do not start with "-"`);
    }
    if (keys.has(id)) return err(`${position} has the same id as entry ${ids.indexOf(id) + 1}; ids must be unique`);
    if (!base64KeyPattern.test(material)) {
      return err(`${position}: key must be 32 random bytes in base64 (44 characters, e.g. from \`openssl rand -base64 32\`)`);
    }
    const bytes = Buffer.from(material, "base64");
    if (bytes.length !== keyBytes) {
      return err(`${position}: key must decode to exactly 32 bytes`);
    }
    const weakness = lowEntropyReason(bytes);
    if (weakness !== undefined) lowEntropy.push(Object.freeze({ position: index + 1, reason: weakness }));
    keys.set(id, Object.freeze({ id, key: createSecretKey(bytes) })); // createSecretKey copies
    bytes.fill(0);
    ids.push(id);
  }
  const current = keys.get(ids[0] ?? "");
  if (current === undefined) return err("KEY_ENCRYPTION_KEYS has no entries");
  return ok(Object.freeze({ current, ids: Object.freeze(ids), keys, lowEntropy: Object.freeze(lowEntropy) }));
}

/**
 * Why 32 bytes of key material look chosen by a person or a pattern rather than drawn at
 * random, or `undefined` when they look random. Each test is one that 32 bytes from a
 * CSPRNG fail with a probability below 1e-13 (so a generated key is never refused), while
 * it catches what gets pasted by mistake: all zeros or one repeated byte, a short repeating
 * pattern, a counting sequence, or text (a password, a hex or base64 string taken as the
 * key itself). The reasons describe the shape, never the bytes.
 */
export function lowEntropyReason(bytes: Uint8Array): string | undefined {
  const n = bytes.length;
  if (n === 0) return "it is empty";
  // Fewer than 16 distinct values (random: about 30 of 32; P(< 16) ≈ 3e-17).
  const distinct = new Set(bytes).size;
  if (distinct === 1) return "every byte is the same";
  if (distinct < 16) return "it has fewer than 16 distinct byte values";
  // A pattern of at most 16 bytes repeated (random: P ≈ 256^-16).
  for (let period = 1; period <= 16 && period < n; period++) {
    let repeats = true;
    for (let i = period; i < n && repeats; i++) repeats = bytes[i] === bytes[i - period];
    if (repeats) return "it repeats a short pattern";
  }
  // A counting sequence such as 0, 1, 2, … (random: P = 256^-31).
  const step = (bytes[1]! - bytes[0]! + 256) % 256;
  let counting = true;
  for (let i = 2; i < n && counting; i++) counting = (bytes[i]! - bytes[i - 1]! + 256) % 256 === step;
  if (counting) return "it is a counting sequence";
  // Only printable ASCII: text, not random bytes (random: P = (95/256)^32 ≈ 2e-14).
  if (bytes.every((b) => b >= 0x20 && b <= 0x7e)) return "it is printable text, not random bytes";
  return undefined;
}

/**
 * A fresh `id:base64` keyring entry (32 random bytes, standard base64 with padding).
 * The default id is `k` + UTC date + 4 random hex digits, e.g. `k20260115-3f9a`, so two
 * rotations on one day still get distinct ids. Throws on an invalid `id` (programmer error).
 */
export function generateKeyringEntry(id?: string): string {
  const keyId = id ?? defaultKeyId();
  if (!keyIdPattern.test(keyId)) {
    throw new Error('invalid key id; ids are 1-32 of [A-Za-z0-9_-] and do not start with "-"');
  }
  return `${keyId}:${randomBytes(keyBytes).toString("base64")}`;
}

function defaultKeyId(): string {
  const date = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  return `k${date}-${randomBytes(2).toString("hex")}`;
}

/** Additional authenticated data binding a ciphertext to its row: `${userId}|${provider}`. */
export function keyAad(userId: string, provider: string): string {
  return `${userId}|${provider}`;
}

/**
 * Encrypts `plaintext` under the keyring's current key with a fresh random nonce.
 * Returns `keyId:nonceB64url:ciphertextPlusTagB64url`. Pass `keyAad(userId, provider)` as `aad`.
 */
export function encryptKey(keyring: Keyring, plaintext: string, aad: string): string {
  const { id, key } = keyring.current;
  const nonce = randomBytes(nonceBytes);
  const cipher = createCipheriv(algorithm, key, nonce, { authTagLength: tagBytes });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return `${id}:${nonce.toString("base64url")}:${body.toString("base64url")}`;
}

interface StoredParts {
  keyId: string;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

function parseStored(stored: string): StoredParts | undefined {
  const parts = stored.split(":");
  if (parts.length !== 3) return undefined;
  const [keyId, nonceText, bodyText] = parts as [string, string, string];
  if (!keyIdPattern.test(keyId)) return undefined;
  if (!base64urlPattern.test(nonceText) || !base64urlPattern.test(bodyText)) return undefined;
  const nonce = Buffer.from(nonceText, "base64url");
  const body = Buffer.from(bodyText, "base64url");
  // Only canonical encodings: otherwise two strings would stand for the same bytes, and a
  // changed character could go unnoticed.
  if (nonce.toString("base64url") !== nonceText || body.toString("base64url") !== bodyText) return undefined;
  if (nonce.length !== nonceBytes || body.length < tagBytes) return undefined;
  return {
    keyId,
    nonce,
    ciphertext: body.subarray(0, body.length - tagBytes),
    tag: body.subarray(body.length - tagBytes),
  };
}

/**
 * Decrypts a value made by `encryptKey`. Never throws for bad input: `malformed` when it is
 * not `keyId:nonce:ciphertext+tag`, `unknown-key-id` when its key is not in the keyring,
 * `auth-failed` when the key, the AAD (another user or provider) or any byte does not match.
 */
export function decryptKey(keyring: Keyring, stored: string, aad: string): Result<string, DecryptError> {
  if (typeof stored !== "string") return err("malformed");
  const parts = parseStored(stored);
  if (parts === undefined) return err("malformed");
  const key = keyring.keys.get(parts.keyId)?.key;
  if (key === undefined) return err("unknown-key-id");
  try {
    const decipher = createDecipheriv(algorithm, key, parts.nonce, { authTagLength: tagBytes });
    decipher.setAAD(Buffer.from(aad, "utf8"));
    decipher.setAuthTag(parts.tag);
    const plaintext = Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]);
    return ok(plaintext.toString("utf8"));
  } catch {
    return err("auth-failed");
  }
}

/**
 * The key id a stored value was encrypted with (`undefined` if it is not in the stored
 * format), read from the value itself; the re-encryption job selects rows by the
 * `key_version` column, which saving and re-encrypting keep equal to this id.
 */
export function storedKeyId(stored: string): string | undefined {
  return parseStored(stored)?.keyId;
}

/** Fingerprint keys, derived once per encryption key (HKDF-SHA256; never the encryption key itself). */
const fingerprintKeys = new WeakMap<KeyringKey, KeyObject>();

function fingerprintKey(entry: KeyringKey): KeyObject {
  let derived = fingerprintKeys.get(entry);
  if (!derived) {
    derived = createSecretKey(Buffer.from(hkdfSync("sha256", entry.key, new Uint8Array(0), "byok-functions key fingerprint v1", 32)));
    fingerprintKeys.set(entry, derived);
  }
  return derived;
}

/**
 * `keyId:HMAC-SHA256(userId|provider|key)` under a key derived from the keyring's current
 * encryption key: equal for an equal key of the same user and provider, useless to anyone
 * without KEY_ENCRYPTION_KEYS (no offline guessing of a key from its fingerprint), and
 * different for another user or provider. Stored beside the ciphertext so a save can tell
 * "unchanged" without decrypting; never logged or returned.
 */
export function keyFingerprint(keyring: Keyring, userId: string, provider: string, key: string): string {
  const mac = createHmac("sha256", fingerprintKey(keyring.current)).update(`${userId}\0${provider}\0${key}`, "utf8").digest("base64url");
  return `${keyring.current.id}:${mac}`;
}
