/**
 * What the key list learned from test-decrypting a stored key, remembered per instance so an
 * unchanged ciphertext is not decrypted again on every list (each AES-GCM open costs more CPU than
 * the rest of the list's row handling).
 *
 * The trade-off, and why it is safe:
 * - Only the outcome is kept: "decrypts" or not, and the notices derived from the key's shape
 *   (what the list shows the user anyway). Never the plaintext, never the ciphertext: an entry is
 *   keyed by the SHA-256 of (user, provider, ciphertext), so a memory dump of the instance holds
 *   nothing it did not already have (the keyring itself is in memory).
 * - The key is the whole ciphertext with its AAD's inputs: a re-saved key (new nonce, new
 *   ciphertext) is a new entry; a ciphertext copied to another user or provider is another entry,
 *   and fails to decrypt there (the AAD binds it), as it would without the memo.
 * - Entries belong to one keyring object: a new configuration (rotation, a key id removed) starts
 *   empty, so "decrypts" is never carried over to a keyring that might not open the row.
 * - A provider whose value the list returns (a publishable key) still decrypts every time: the
 *   value is needed and is not kept here either.
 * - Bounded (oldest first out), so a long-lived server's memory stays flat.
 * Plaintext needed for work (generation, key checks) never goes through here: lib/keys/resolver.ts
 * decrypts what it uses, when it uses it.
 */
import { createHash } from "node:crypto";
import { decryptKey, keyAad, type Keyring } from "../platform/crypto.js";
import type { Provider } from "../providers/registry.js";
import { keyNotices, type KeyNotice } from "./notices.js";

export interface StoredKeyCheck {
  decrypts: boolean;
  notices: KeyNotice[];
  /** Only when asked for (`withValue`), never remembered. */
  value?: string;
}

type Decrypt = typeof decryptKey;

const MAX_ENTRIES = 10_000;

export interface DecryptMemo {
  /** Test-decrypts `ciphertext` (or answers from memory); `withValue` decrypts and returns the plaintext. */
  check(keyring: Keyring, userId: string, provider: Provider, ciphertext: string, withValue: boolean): StoredKeyCheck;
  /** Entries kept for `keyring` (tests). */
  entries(keyring: Keyring): { digest: string; decrypts: boolean; notices: KeyNotice[] }[];
}

export function createDecryptMemo(options: { decrypt?: Decrypt; maxEntries?: number } = {}): DecryptMemo {
  const decrypt = options.decrypt ?? decryptKey;
  const maxEntries = options.maxEntries ?? MAX_ENTRIES;
  const byKeyring = new WeakMap<Keyring, Map<string, { decrypts: boolean; notices: KeyNotice[] }>>();
  return {
    check(keyring, userId, provider, ciphertext, withValue) {
      if (withValue) {
        const opened = decrypt(keyring, ciphertext, keyAad(userId, provider));
        return opened.ok
          ? { decrypts: true, notices: keyNotices(provider, opened.value), value: opened.value }
          : { decrypts: false, notices: [] };
      }
      let memo = byKeyring.get(keyring);
      if (!memo) byKeyring.set(keyring, (memo = new Map()));
      const digest = createHash("sha256").update(`${userId}\u0000${provider}\u0000${ciphertext}`).digest("base64url");
      const known = memo.get(digest);
      if (known) return { decrypts: known.decrypts, notices: known.notices };
      const opened = decrypt(keyring, ciphertext, keyAad(userId, provider));
      const outcome = opened.ok ? { decrypts: true, notices: keyNotices(provider, opened.value) } : { decrypts: false, notices: [] };
      if (memo.size >= maxEntries) memo.delete(memo.keys().next().value!);
      memo.set(digest, outcome);
      return { decrypts: outcome.decrypts, notices: outcome.notices };
    },
    entries(keyring) {
      return [...(byKeyring.get(keyring) ?? new Map()).entries()].map(([digest, e]) => ({ digest, ...e }));
    },
  };
}

/** The instance's memo, the one the key list uses. */
export const storedKeyChecks = createDecryptMemo();
