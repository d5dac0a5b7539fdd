import { createDecipheriv, randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import {
  decryptKey,
  encryptKey,
  generateKeyringEntry,
  keyAad,
  parseKeyring,
  storedKeyId,
  type Keyring,
} from "../../lib/platform/crypto.js";
import { redact } from "../../lib/platform/log.js";

function keyring(spec: string): Keyring {
  const parsed = parseKeyring(spec);
  if (!parsed.ok) throw new Error(`keyring did not parse: ${parsed.error}`);
  return parsed.value;
}

const material = () => randomBytes(32).toString("base64");
const geminiKey = "AIzaSyD-exampleexampleexampleexample12";
const aad = keyAad("user_alice", "gemini");

describe("keyAad", () => {
  it("is userId|provider", () => {
    expect(keyAad("user_1", "exa")).toBe("user_1|exa");
  });
});

describe("encryptKey / decryptKey", () => {
  const ring = keyring(generateKeyringEntry("k1"));

  it("round-trips", () => {
    for (const plaintext of [geminiKey, "", "ü–漢字🔑", "x".repeat(5000)]) {
      const stored = encryptKey(ring, plaintext, aad);
      expect(decryptKey(ring, stored, aad)).toEqual({ ok: true, value: plaintext });
    }
  });

  it("stores keyId:nonce:ciphertext+tag with a 12-byte nonce and never the plaintext", () => {
    const stored = encryptKey(ring, geminiKey, aad);
    const [id, nonce, body, ...rest] = stored.split(":");
    expect(rest).toEqual([]);
    expect(id).toBe("k1");
    expect(Buffer.from(nonce!, "base64url")).toHaveLength(12);
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(Buffer.from(body!, "base64url")).toHaveLength(Buffer.byteLength(geminiKey) + 16);
    expect(stored).not.toContain(geminiKey);
    expect(stored).not.toContain(Buffer.from(geminiKey).toString("base64url").slice(0, 12));
  });

  it("uses exactly the configured key (AES-256-GCM, AAD, tag appended)", () => {
    const raw = randomBytes(32);
    const ring2 = keyring(`kat:${raw.toString("base64")}`);
    const stored = encryptKey(ring2, geminiKey, aad);
    const [, nonceText, bodyText] = stored.split(":") as [string, string, string];
    const body = Buffer.from(bodyText, "base64url");
    const decipher = createDecipheriv("aes-256-gcm", raw, Buffer.from(nonceText, "base64url"));
    decipher.setAAD(Buffer.from("user_alice|gemini"));
    decipher.setAuthTag(body.subarray(body.length - 16));
    const plaintext = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
    expect(plaintext.toString("utf8")).toBe(geminiKey);
  });

  it("gives a different ciphertext (and nonce) for every encryption of the same value", () => {
    const seen = new Set<string>();
    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const stored = encryptKey(ring, geminiKey, aad);
      seen.add(stored);
      nonces.add(stored.split(":")[1]!);
    }
    expect(seen.size).toBe(200);
    expect(nonces.size).toBe(200);
  });

  it("fails with auth-failed under another user's or another provider's AAD", () => {
    const stored = encryptKey(ring, geminiKey, keyAad("user_alice", "gemini"));
    expect(decryptKey(ring, stored, keyAad("user_bob", "gemini"))).toEqual({ ok: false, error: "auth-failed" });
    expect(decryptKey(ring, stored, keyAad("user_alice", "exa"))).toEqual({ ok: false, error: "auth-failed" });
    expect(decryptKey(ring, stored, keyAad("user_alic", "egemini"))).toEqual({ ok: false, error: "auth-failed" });
    expect(decryptKey(ring, stored, "")).toEqual({ ok: false, error: "auth-failed" });
  });

  it("detects every tampered byte of nonce, ciphertext and tag", () => {
    const stored = encryptKey(ring, geminiKey, aad);
    const [id, nonceText, bodyText] = stored.split(":") as [string, string, string];
    const nonce = Buffer.from(nonceText, "base64url");
    const body = Buffer.from(bodyText, "base64url");
    for (let i = 0; i < nonce.length; i++) {
      const changed = Buffer.from(nonce);
      changed[i]! ^= 0x01;
      const result = decryptKey(ring, `${id}:${changed.toString("base64url")}:${bodyText}`, aad);
      expect(result, `nonce byte ${i}`).toEqual({ ok: false, error: "auth-failed" });
    }
    for (let i = 0; i < body.length; i++) {
      const changed = Buffer.from(body);
      changed[i]! ^= 0x80;
      const result = decryptKey(ring, `${id}:${nonceText}:${changed.toString("base64url")}`, aad);
      expect(result, `body byte ${i}`).toEqual({ ok: false, error: "auth-failed" });
    }
    // Truncated tag, extra byte.
    const short = body.subarray(0, body.length - 1).toString("base64url");
    expect(decryptKey(ring, `${id}:${nonceText}:${short}`, aad)).toEqual({ ok: false, error: "auth-failed" });
    const long = Buffer.concat([body, Buffer.from([0])]).toString("base64url");
    expect(decryptKey(ring, `${id}:${nonceText}:${long}`, aad)).toEqual({ ok: false, error: "auth-failed" });
  });

  it("never accepts a changed character of the stored text", () => {
    const stored = encryptKey(ring, geminiKey, aad);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = stored.indexOf(":") + 1; i < stored.length; i++) {
      if (stored[i] === ":") continue;
      const replacement = alphabet[(alphabet.indexOf(stored[i]!) + 1) % alphabet.length]!;
      const changed = stored.slice(0, i) + replacement + stored.slice(i + 1);
      expect(decryptKey(ring, changed, aad).ok, `position ${i}`).toBe(false);
    }
  });

  it("answers unknown-key-id for a key id not in the keyring", () => {
    const other = keyring(generateKeyringEntry("other"));
    const stored = encryptKey(other, geminiKey, aad);
    expect(decryptKey(ring, stored, aad)).toEqual({ ok: false, error: "unknown-key-id" });
  });

  it("answers auth-failed when the id matches but the key is different", () => {
    const impostor = keyring(generateKeyringEntry("k1"));
    const stored = encryptKey(impostor, geminiKey, aad);
    expect(decryptKey(ring, stored, aad)).toEqual({ ok: false, error: "auth-failed" });
  });

  it("answers malformed, without throwing, for anything not in the stored format", () => {
    const stored = encryptKey(ring, geminiKey, aad);
    const [id, nonce, body] = stored.split(":") as [string, string, string];
    const bad: unknown[] = [
      "",
      geminiKey,
      "k1",
      "k1::",
      `${id}:${nonce}`,
      `${id}:${nonce}:${body}:extra`,
      `:${nonce}:${body}`,
      `${id}:${nonce.slice(1)}:${body}`, // 11-and-a-bit-byte nonce
      `${id}:${nonce}A:${body}`,
      `${id}:${nonce}:${body.slice(0, 20)}`, // shorter than a tag
      `${id}:${nonce}:${body}=`, // padding is not base64url as we write it
      `${id}:${nonce}:${body.replace(/.$/, "+")}`,
      `bad id:${nonce}:${body}`,
      `-dash:${nonce}:${body}`,
      `${"k".repeat(33)}:${nonce}:${body}`,
      ` ${stored}`,
      `${stored}\n`,
      null,
      undefined,
      42,
    ];
    for (const value of bad) {
      expect(() => decryptKey(ring, value as string, aad)).not.toThrow();
      expect(decryptKey(ring, value as string, aad), JSON.stringify(value)).toEqual({ ok: false, error: "malformed" });
    }
  });

  it("accepts only the canonical base64url spelling of the last character", () => {
    // 39 + 16 = 55 bytes: the last base64url character carries 2 data bits and 4 spare ones.
    const plaintext = "x".repeat(39);
    const stored = encryptKey(ring, plaintext, aad);
    const body = stored.split(":")[2]!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sibling = alphabet[alphabet.indexOf(body.at(-1)!) ^ 0x01]!; // differs only in a spare bit
    const changedBody = body.slice(0, -1) + sibling;
    expect(Buffer.from(changedBody, "base64url").equals(Buffer.from(body, "base64url"))).toBe(true);
    expect(decryptKey(ring, stored, aad)).toEqual({ ok: true, value: plaintext });
    expect(decryptKey(ring, stored.slice(0, -1) + sibling, aad)).toEqual({ ok: false, error: "malformed" });
  });
});

describe("keyring rotation", () => {
  it("encrypts with the first key and decrypts with every key", () => {
    const oldEntry = generateKeyringEntry("k2024");
    const newEntry = generateKeyringEntry("k2025");
    const before = keyring(oldEntry);
    const storedOld = encryptKey(before, geminiKey, aad);

    const after = keyring(`${newEntry},${oldEntry}`);
    expect(after.current.id).toBe("k2025");
    expect(after.ids).toEqual(["k2025", "k2024"]);
    expect(decryptKey(after, storedOld, aad)).toEqual({ ok: true, value: geminiKey });

    const storedNew = encryptKey(after, geminiKey, aad);
    expect(storedKeyId(storedNew)).toBe("k2025");
    expect(storedKeyId(storedOld)).toBe("k2024");
    expect(decryptKey(after, storedNew, aad)).toEqual({ ok: true, value: geminiKey });
    // The old ring cannot read what the new key wrote.
    expect(decryptKey(before, storedNew, aad)).toEqual({ ok: false, error: "unknown-key-id" });

    // Once the old key is retired, rows still on it are reported, not silently lost.
    const retired = keyring(newEntry);
    expect(decryptKey(retired, storedOld, aad)).toEqual({ ok: false, error: "unknown-key-id" });
  });

  it("re-encrypting moves a value to the current key", () => {
    const oldEntry = generateKeyringEntry("old");
    const ring = keyring(`${generateKeyringEntry("new")},${oldEntry}`);
    const stored = encryptKey(keyring(oldEntry), geminiKey, aad);
    expect(storedKeyId(stored)).not.toBe(ring.current.id);
    const plaintext = decryptKey(ring, stored, aad);
    if (!plaintext.ok) throw new Error(plaintext.error);
    const moved = encryptKey(ring, plaintext.value, aad);
    expect(storedKeyId(moved)).toBe(ring.current.id);
    expect(decryptKey(ring, moved, aad)).toEqual({ ok: true, value: geminiKey });
  });
});

describe("storedKeyId", () => {
  it("returns the id, or undefined for malformed values", () => {
    const ring = keyring(generateKeyringEntry("abc_1-2"));
    expect(storedKeyId(encryptKey(ring, "x", aad))).toBe("abc_1-2");
    expect(storedKeyId("nope")).toBeUndefined();
    expect(storedKeyId("a:b:c")).toBeUndefined();
  });
});

describe("log redaction of stored values", () => {
  it("redacts every stored value whatever the id and plaintext length", () => {
    const ids = ["k", "_", "0", "k20260115-3f9a", "A".repeat(32), "a_b-c"];
    for (const id of ids) {
      const ring = keyring(generateKeyringEntry(id));
      for (const plaintext of ["", "a", geminiKey, "x".repeat(300)]) {
        for (let i = 0; i < 20; i++) {
          const stored = encryptKey(ring, plaintext, aad);
          expect(redact(stored), stored).toBe("[redacted]");
          expect(redact(`{"ciphertext":"${stored}"}`)).toBe('{"ciphertext":"[redacted]"}');
          expect(redact(`row ${stored} saved`)).toBe("row [redacted] saved");
        }
      }
    }
  });
});

describe("parseKeyring", () => {
  it("accepts id:base64 entries, padded or not, standard or url-safe, with spaces around entries", () => {
    const raw = randomBytes(32);
    const variants = [
      raw.toString("base64"),
      raw.toString("base64").replace(/=$/, ""),
      raw.toString("base64url"),
      `${raw.toString("base64url")}=`,
    ];
    for (const [i, encoded] of variants.entries()) {
      const ring = keyring(` k${i}:${encoded} , other:${material()} `);
      expect(ring.current.id).toBe(`k${i}`);
      expect(ring.ids).toEqual([`k${i}`, "other"]);
      // Same bytes whatever the spelling.
      const stored = encryptKey(ring, "v", aad);
      expect(decryptKey(keyring(`k${i}:${raw.toString("base64")}`), stored, aad)).toEqual({ ok: true, value: "v" });
    }
  });

  it("rejects bad specs with messages that contain no key material", () => {
    const key = material();
    const short = randomBytes(16).toString("base64");
    const long = randomBytes(48).toString("base64");
    // Base64 of these bytes has no "+" or "/", so its first 20 characters form a valid id.
    const alnum = Buffer.from("a secret key that is 32 bytes!!!").toString("base64");
    const cases: Array<[string, RegExp]> = [
      ["", /empty/],
      ["   ", /empty/],
      [key, /no "id:" prefix/],
      [`k1:${key},`, /entry 2 is empty/],
      [`k1:${key},,k2:${material()}`, /entry 2 is empty/],
      [`${key.slice(0, 20)}:${key.slice(20)}`, /invalid id|32 random bytes/], // a key split at a ":"
      [`${alnum.slice(0, 20)}:${alnum.slice(20)}`, /32 random bytes/],
      [`${alnum.slice(0, 20)}:${alnum.slice(20)},k2:${alnum}`, /32 random bytes/],
      [`k1:${alnum},${alnum.slice(0, 20)}:${alnum.slice(20)}`, /entry 2: key must be 32 random bytes/],
      [`bad id:${key}`, /invalid id/],
      [`-k:${key}`, /invalid id/],
      [`${"k".repeat(33)}:${key}`, /invalid id/],
      [`k1:${key},k1:${material()}`, /entry 2 has the same id as entry 1/],
      [`k1:${short}`, /32 random bytes/],
      [`k1:${long}`, /32 random bytes/],
      [`k1:${key.slice(0, -2)}!=`, /32 random bytes/],
      [`k1:${key}:${key}`, /32 random bytes/],
      [`k1:`, /32 random bytes/],
      [`k1:${key} ${key}`, /32 random bytes/],
    ];
    for (const [spec, message] of cases) {
      const parsed = parseKeyring(spec);
      expect(parsed.ok, spec).toBe(false);
      if (parsed.ok) continue;
      expect(parsed.error).toMatch(message);
      // No run of 6+ characters of any key material used in the spec.
      for (const secret of [key, short, long, alnum]) {
        for (let i = 0; i + 6 <= secret.length; i++) {
          expect(parsed.error.includes(secret.slice(i, i + 6)), `${parsed.error} leaks ${secret}`).toBe(false);
        }
        expect(parsed.error).not.toContain(Buffer.from(secret, "base64").toString("hex").slice(0, 8));
      }
    }
  });

  it("keeps key material out of inspect() and JSON", () => {
    const entry = generateKeyringEntry("k1");
    const encoded = entry.slice(3);
    const ring = keyring(entry);
    const hex = Buffer.from(encoded, "base64").toString("hex");
    for (const text of [inspect(ring, { depth: 10, showHidden: true }), JSON.stringify(ring)]) {
      expect(text).not.toContain(encoded.slice(0, 10));
      expect(text).not.toContain(hex.slice(0, 10));
    }
  });
});

describe("generateKeyringEntry", () => {
  it("makes a parseable entry with 32 fresh random bytes", () => {
    const a = generateKeyringEntry("k1");
    const b = generateKeyringEntry("k1");
    expect(a).not.toBe(b);
    expect(a).toMatch(/^k1:[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(3), "base64")).toHaveLength(32);
    expect(parseKeyring(a).ok).toBe(true);
  });

  it("defaults to a dated id that differs between calls", () => {
    const a = generateKeyringEntry();
    const b = generateKeyringEntry();
    const today = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    expect(a.split(":")[0]).toMatch(new RegExp(`^k${today}-[0-9a-f]{4}$`));
    expect(parseKeyring(`${a},${b}`).ok).toBe(a.split(":")[0] !== b.split(":")[0]);
    expect(parseKeyring(a).ok).toBe(true);
  });

  it("refuses an invalid id", () => {
    expect(() => generateKeyringEntry("has space")).toThrow(/invalid key id/);
    expect(() => generateKeyringEntry("")).toThrow(/invalid key id/);
    expect(() => generateKeyringEntry("x".repeat(33))).toThrow(/invalid key id/);
  });
});
