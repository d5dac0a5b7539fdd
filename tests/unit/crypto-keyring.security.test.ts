/**
 * The key ring's rules word for word (lib/platform/crypto.ts): each parse error and its message
 * (by position, never by id or content), each low-entropy reason and its boundary, which use
 * refuses which entry. Written from StrykerJS's surviving mutants (docs/mutation-testing.md).
 */
import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  decryptKey,
  encryptKey,
  generateKeyringEntry,
  keyAad,
  keyFingerprint,
  lowEntropyReason,
  parseKeyring,
  refusedEntries,
  type Keyring,
} from "../../lib/platform/crypto.js";

const b64 = (bytes: number[] | Uint8Array) => Buffer.from(bytes).toString("base64");
const random32 = () => b64(randomBytes(32));
/** 32 bytes that pass every test: distinct, no period, no step, not all printable. */
const good = Array.from({ length: 32 }, (_, i) => (i * 37 + ((i * i) % 11) + 200) % 256);
const parse = (spec: string): Keyring => {
  const parsed = parseKeyring(spec);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};
const errorOf = (spec: string) => {
  const parsed = parseKeyring(spec);
  return parsed.ok ? "ok" : parsed.error;
};

describe("lowEntropyReason", () => {
  it("takes random-looking bytes", () => {
    expect(lowEntropyReason(Uint8Array.from(good))).toBeUndefined();
    for (let i = 0; i < 20; i++) expect(lowEntropyReason(randomBytes(32))).toBeUndefined();
  });

  it("names each shape", () => {
    expect(lowEntropyReason(new Uint8Array(0))).toBe("it is empty");
    expect(lowEntropyReason(new Uint8Array(32).fill(7))).toBe("every byte is the same");
    // 15 distinct values: refused; 16: this test passes it on (to the later ones).
    const fifteen = Array.from({ length: 32 }, (_, i) => [3, 250, 17, 99, 140, 8, 201, 66, 33, 180, 121, 5, 77, 230, 160][i % 15]!);
    expect(lowEntropyReason(Uint8Array.from(fifteen))).toBe("it has fewer than 16 distinct byte values");
    const sixteen = Array.from({ length: 32 }, (_, i) => [3, 250, 17, 99, 140, 8, 201, 66, 33, 180, 121, 5, 77, 230, 160, 1][i % 16]!);
    expect(lowEntropyReason(Uint8Array.from(sixteen))).toBe("it repeats a short pattern"); // period 16, the longest looked for
    const seventeen = Array.from(
      { length: 34 },
      (_, i) => [3, 250, 17, 99, 140, 8, 201, 66, 33, 180, 121, 5, 77, 230, 160, 1, 222][i % 17]!,
    );
    expect(lowEntropyReason(Uint8Array.from(seventeen))).toBeUndefined(); // period 17: not looked for
    expect(lowEntropyReason(Uint8Array.from(Array.from({ length: 32 }, (_, i) => i)))).toBe("it is a counting sequence");
    expect(lowEntropyReason(Uint8Array.from(Array.from({ length: 32 }, (_, i) => (250 + i * 3) % 256)))).toBe("it is a counting sequence");
    expect(lowEntropyReason(Uint8Array.from(Array.from({ length: 32 }, (_, i) => (40 - i * 5 + 256) % 256)))).toBe(
      "it is a counting sequence",
    );
    expect(lowEntropyReason(Buffer.from("correct horse battery staple 123"))).toBe("it is printable text, not random bytes");
    const printableEdges = Buffer.from(" ~ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"); // 0x20 and 0x7e included
    expect(lowEntropyReason(printableEdges)).toBe("it is printable text, not random bytes");
    for (const outside of [0x1f, 0x7f]) {
      const bytes = Buffer.from(printableEdges);
      bytes[5] = outside;
      expect(lowEntropyReason(bytes), `0x${outside.toString(16)}`).toBeUndefined();
    }
  });

  it("a counting sequence must hold to the end, and a pattern must repeat to the end", () => {
    const almostCounting = Array.from({ length: 32 }, (_, i) => i);
    almostCounting[31] = 200;
    expect(lowEntropyReason(Uint8Array.from(almostCounting))).toBeUndefined();
    const almostCounting2 = Array.from({ length: 32 }, (_, i) => i);
    almostCounting2[2] = 100;
    expect(lowEntropyReason(Uint8Array.from(almostCounting2))).toBeUndefined();
    const almostPeriodic = Array.from(
      { length: 32 },
      (_, i) => [3, 250, 17, 99, 140, 8, 201, 66, 33, 180, 121, 5, 77, 230, 160, 1][i % 16]!,
    );
    almostPeriodic[31] = 42;
    expect(lowEntropyReason(Uint8Array.from(almostPeriodic))).toBeUndefined();
    // A period as long as the input is no pattern: two distinct bytes... n = 17 with period 16.
    const short = Uint8Array.from([...good.slice(0, 16), good[0]!]);
    expect(lowEntropyReason(short)).toBe("it repeats a short pattern");
    expect(lowEntropyReason(Uint8Array.from(good.slice(0, 16)))).toBeUndefined(); // period 16 = n: not a repeat
  });
});

describe("parseKeyring: every error, by position only", () => {
  const k = random32();
  it("says what is wrong with which entry", () => {
    expect(errorOf("")).toBe("KEY_ENCRYPTION_KEYS is empty; expected comma-separated id:base64(32 bytes) entries");
    expect(errorOf("   ")).toBe("KEY_ENCRYPTION_KEYS is empty; expected comma-separated id:base64(32 bytes) entries");
    expect(errorOf(`k1:${k},`)).toBe("KEY_ENCRYPTION_KEYS entry 2 is empty (stray comma?)");
    expect(errorOf(`k1:${k}, ,k3:${k}`)).toBe("KEY_ENCRYPTION_KEYS entry 2 is empty (stray comma?)");
    expect(errorOf(k)).toBe('KEY_ENCRYPTION_KEYS entry 1 has no "id:" prefix; expected id:base64(32 bytes)');
    expect(errorOf(`-k:${k}`)).toBe(
      'KEY_ENCRYPTION_KEYS entry 1 has an invalid id; ids are 1-32 of [A-Za-z0-9_-] and do not start with "-"',
    );
    expect(errorOf(`:${k}`)).toBe('KEY_ENCRYPTION_KEYS entry 1 has an invalid id; ids are 1-32 of [A-Za-z0-9_-] and do not start with "-"');
    expect(errorOf(`k1:${k},k2:${random32()},k1:${random32()}`)).toBe(
      "KEY_ENCRYPTION_KEYS entry 3 has the same id as entry 1; ids must be unique",
    );
    expect(errorOf(`k1:${k},k2:${random32()},k2:${random32()}`)).toBe(
      "KEY_ENCRYPTION_KEYS entry 3 has the same id as entry 2; ids must be unique",
    );
    expect(errorOf(`k1:${k.slice(0, 20)}`)).toBe(
      "KEY_ENCRYPTION_KEYS entry 1: key must be 32 random bytes in base64 (44 characters, e.g. from `openssl rand -base64 32`)",
    );
  });

  it("takes spaces around the material and the entry, and both base64 alphabets", () => {
    const keyring = parse(`  k1: ${k} , k2:${b64(good).replaceAll("+", "-").replaceAll("/", "_")}  `);
    expect(keyring.ids).toEqual(["k1", "k2"]);
    expect(keyring.current.id).toBe("k1");
    expect([...keyring.keys.keys()]).toEqual(["k1", "k2"]);
    expect(keyring.lowEntropy).toEqual([]);
    expect(Object.isFrozen(keyring)).toBe(true);
    expect(Object.isFrozen(keyring.ids)).toBe(true);
    expect(Object.isFrozen(keyring.lowEntropy)).toBe(true);
  });

  it("records weak entries by position and reason, never refusing them itself", () => {
    const keyring = parse(`a:${k},b:${b64(new Array(32).fill(0))},c:${b64(Buffer.from("correct horse battery staple 123"))}`);
    expect(keyring.lowEntropy).toEqual([
      { position: 2, reason: "every byte is the same" },
      { position: 3, reason: "it is printable text, not random bytes" },
    ]);
    expect(Object.isFrozen(keyring.lowEntropy[0])).toBe(true);
  });
});

describe("refusedEntries: which use refuses which entry", () => {
  const weakFirst = parse(`a:${b64(new Array(32).fill(1))},b:${random32()},c:${b64(new Array(32).fill(2))}`);
  const weakLater = parse(`a:${random32()},c:${b64(new Array(32).fill(2))}`);
  it("production refuses every weak entry; re-encryption only a weak first one; development none", () => {
    expect(refusedEntries(weakFirst, "production").map((w) => w.position)).toEqual([1, 3]);
    expect(refusedEntries(weakFirst, "reencrypt").map((w) => w.position)).toEqual([1]);
    expect(refusedEntries(weakLater, "reencrypt")).toEqual([]);
    expect(refusedEntries(weakLater, "production").map((w) => w.position)).toEqual([2]);
    expect(refusedEntries(weakFirst, "development")).toEqual([]);
  });
});

describe("generateKeyringEntry", () => {
  it("is id:standard base64 of 32 bytes, 44 characters with padding", () => {
    const entry = generateKeyringEntry("k9");
    const [id, material] = entry.split(":") as [string, string];
    expect(id).toBe("k9");
    expect(material).toHaveLength(44);
    expect(material.endsWith("=")).toBe(true);
    expect(Buffer.from(material, "base64")).toHaveLength(32);
    expect(parse(entry).lowEntropy).toEqual([]);
  });
});

describe("keyFingerprint", () => {
  const entryA = `fa:${b64(good)}`;
  const entryB = `fb:${random32()}`;
  it("is keyId:HMAC-SHA256 of user, provider and key (NUL-separated) under HKDF-SHA256(key, info 'byok-functions key fingerprint v1')", () => {
    const keyring = parse(`${entryA},${entryB}`);
    const derived = Buffer.from(hkdfSync("sha256", Buffer.from(good), new Uint8Array(0), "byok-functions key fingerprint v1", 32));
    const expected = createHmac("sha256", derived).update("user_1\0gemini\0AIzaSecret", "utf8").digest("base64url");
    expect(keyFingerprint(keyring, "user_1", "gemini", "AIzaSecret")).toBe(`fa:${expected}`);
    // Cached per key: the same answer again.
    expect(keyFingerprint(keyring, "user_1", "gemini", "AIzaSecret")).toBe(`fa:${expected}`);
    // Non-ASCII keys are hashed as UTF-8.
    const utf8 = createHmac("sha256", derived).update("user_1\0gemini\0ключ", "utf8").digest("base64url");
    expect(keyFingerprint(keyring, "user_1", "gemini", "ключ")).toBe(`fa:${utf8}`);
  });

  it("differs for another user, provider, key or encryption key", () => {
    const keyring = parse(`${entryA},${entryB}`);
    const other = parse(`${entryB},${entryA}`);
    const base = keyFingerprint(keyring, "u", "gemini", "k");
    expect(
      new Set([
        base,
        keyFingerprint(keyring, "v", "gemini", "k"),
        keyFingerprint(keyring, "u", "exa", "k"),
        keyFingerprint(keyring, "u", "gemini", "k2"),
      ]).size,
    ).toBe(4);
    expect(keyFingerprint(other, "u", "gemini", "k").startsWith("fb:")).toBe(true);
    expect(keyFingerprint(other, "u", "gemini", "k").slice(3)).not.toBe(base.slice(3));
  });
});

describe("decryptKey: the stored format's nonce is exactly 12 bytes", () => {
  it("a value with a nonce of another length is malformed (not merely a failed decryption)", () => {
    const keyring = parse(`n1:${random32()}`);
    const aad = keyAad("user_nonce", "gemini");
    const stored = encryptKey(keyring, "AIzaNonceCheck", aad);
    const [id, , body] = stored.split(":") as [string, string, string];
    for (const bytes of [8, 11, 13, 16]) {
      const other = `${id}:${randomBytes(bytes).toString("base64url")}:${body}`;
      expect(decryptKey(keyring, other, aad), `${bytes}-byte nonce`).toEqual({ ok: false, error: "malformed" });
    }
    expect(decryptKey(keyring, stored, aad)).toEqual({ ok: true, value: "AIzaNonceCheck" });
  });
});
