/**
 * The key list's per-instance memo of test-decryptions (lib/keys/decrypt-memo.ts), and the list's
 * timestamps formatted in SQL (lib/keys/store.ts):
 *
 * - an unchanged ciphertext is decrypted once per keyring; a re-saved key (new ciphertext), another
 *   user or provider (other AAD) and another keyring object (rotation) are decrypted again;
 * - a ciphertext that does not open stays "unreadable" from memory, and one copied to another
 *   user does not ride on the owner's entry;
 * - the memo holds neither the plaintext nor the ciphertext; a value the list returns is decrypted
 *   every time and never remembered;
 * - through the app, a list after a list answers the same, a key re-saved under a new keyring
 *   shows its new state, and timestamps with microseconds come back exactly as `Date#toISOString()`.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDecryptMemo } from "../../lib/keys/decrypt-memo.js";
import { decryptKey, encryptKey, generateKeyringEntry, keyAad, parseKeyring, type Keyring } from "../../lib/platform/crypto.js";
import { backendLabel, backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys } from "../helpers/runtime.js";

function keyring(id: string): Keyring {
  const parsed = parseKeyring(generateKeyringEntry(id));
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

function countingMemo() {
  let calls = 0;
  const memo = createDecryptMemo({
    decrypt: (ring, stored, aad) => {
      calls += 1;
      return decryptKey(ring, stored, aad);
    },
  });
  return { memo, calls: () => calls };
}

describe("the decrypt memo", () => {
  const ring = keyring("m1");
  const { gemini, exa, copilotkit } = sampleKeys(8800);
  const sealed = encryptKey(ring, gemini, keyAad("user_a", "gemini"));

  it("decrypts an unchanged ciphertext once, and again when anything that binds it changes", () => {
    const { memo, calls } = countingMemo();
    expect(memo.check(ring, "user_a", "gemini", sealed, false)).toEqual({ decrypts: true, notices: expect.any(Array) });
    expect(memo.check(ring, "user_a", "gemini", sealed, false).decrypts).toBe(true);
    expect(calls()).toBe(1);

    const resealed = encryptKey(ring, gemini, keyAad("user_a", "gemini"));
    expect(resealed).not.toBe(sealed);
    expect(memo.check(ring, "user_a", "gemini", resealed, false).decrypts).toBe(true);
    expect(calls()).toBe(2);

    // Rotation: a new keyring object starts empty (here it cannot open the row at all).
    const rotated = keyring("m2");
    expect(memo.check(rotated, "user_a", "gemini", sealed, false).decrypts).toBe(false);
    expect(calls()).toBe(3);
  });

  it("a ciphertext copied to another user or provider is decrypted there, and fails (AAD)", () => {
    const { memo, calls } = countingMemo();
    expect(memo.check(ring, "user_a", "gemini", sealed, false).decrypts).toBe(true);
    expect(memo.check(ring, "user_b", "gemini", sealed, false).decrypts).toBe(false);
    expect(memo.check(ring, "user_a", "exa", sealed, false).decrypts).toBe(false);
    expect(calls()).toBe(3);
    // Remembered failures stay failures.
    expect(memo.check(ring, "user_b", "gemini", sealed, false).decrypts).toBe(false);
    expect(calls()).toBe(3);
  });

  it("keeps neither plaintext nor ciphertext; a returned value is decrypted every time and not kept", () => {
    const { memo, calls } = countingMemo();
    const exaSealed = encryptKey(ring, exa, keyAad("user_a", "exa"));
    const ckSealed = encryptKey(ring, copilotkit, keyAad("user_a", "copilotkit"));
    memo.check(ring, "user_a", "gemini", sealed, false);
    memo.check(ring, "user_a", "exa", exaSealed, false);
    expect(memo.check(ring, "user_a", "copilotkit", ckSealed, true).value).toBe(copilotkit);
    expect(memo.check(ring, "user_a", "copilotkit", ckSealed, true).value).toBe(copilotkit);
    expect(calls()).toBe(4);
    const kept = JSON.stringify(memo.entries(ring));
    expect(memo.entries(ring)).toHaveLength(2);
    for (const secret of [gemini, exa, copilotkit, sealed, exaSealed, ckSealed]) expect(kept).not.toContain(secret);
  });

  it("stays bounded (oldest entry out first)", () => {
    const memo = createDecryptMemo({ maxEntries: 2 });
    for (const user of ["u1", "u2", "u3"]) memo.check(ring, user, "gemini", encryptKey(ring, gemini, keyAad(user, "gemini")), false);
    expect(memo.entries(ring)).toHaveLength(2);
  });
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`the key list with the memo and SQL timestamps ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await backend.open();
    });
    afterAll(async () => {
      await database?.destroy();
    });

    it("answers the same list twice, shows a re-saved key's new state, and formats timestamps like toISOString", async () => {
      // Production: the list is the stored rows (development lists the developer's .env keys first).
      const runtime = makeRuntime({ database, mode: "production" });
      const token = runtime.token("user_memo");
      const keys = sampleKeys(8810);
      await expectStatus(await runtime.fetch(request("POST", "/api/onboarding/api-keys", { token, body: keys })), 200);
      const first = await expectStatus(await runtime.fetch(request("GET", "/api/onboarding/api-keys", { token })), 200);
      const second = await expectStatus(await runtime.fetch(request("GET", "/api/onboarding/api-keys", { token })), 200);
      expect(second).toEqual(first);

      // Microseconds in the database: the API answers milliseconds, truncated, as Date#toISOString does.
      await database.rows(
        sql`update api_keys set updated_at = '2026-01-02 03:04:05.678901+00', last_used_at = '2026-01-02 03:04:06.999999+00'`,
      );
      const listed = (await expectStatus(await runtime.fetch(request("GET", "/api/onboarding/api-keys", { token })), 200)) as {
        keys: { provider: string; updatedAt: string; lastUsedAt?: string }[];
      };
      for (const view of listed.keys) {
        expect(view.updatedAt).toBe(new Date("2026-01-02T03:04:05.678901Z").toISOString());
        expect(view.lastUsedAt).toBe("2026-01-02T03:04:06.999Z");
      }

      // A row whose ciphertext no longer opens (sealed for another user) shows unreadable at once.
      await database.rows(
        sql`update api_keys set key_ciphertext = (select key_ciphertext from api_keys where provider = 'exa') where provider = 'gemini'`,
      );
      const broken = (await expectStatus(await runtime.fetch(request("GET", "/api/onboarding/api-keys", { token })), 200)) as {
        keys: { provider: string; status: string }[];
      };
      expect(broken.keys.find((k) => k.provider === "gemini")?.status).toBe("unreadable");
      expect(broken.keys.find((k) => k.provider === "exa")?.status).not.toBe("unreadable");
    });
  });
}
