/**
 * Key rotation: re-encrypts every stored provider key that is not sealed with the keyring's
 * current key (`KEY_ENCRYPTION_KEYS`, first entry). Run it after putting a new key first
 * and keeping the old ones after it; once it reports `failed: 0`, the old keys can go.
 *
 * It works on every driver, the Neon HTTP one included: no interactive transactions. Rows are
 * read in batches by id (keyset pagination, so a row that fails is not read again), and each
 * row is written by one statement that replaces the ciphertext only if it is still the one
 * that was read (a key saved or deleted meanwhile is left alone) and adds its `reencrypt`
 * audit row in the same statement. A row that does not decrypt is counted and logged (user,
 * provider, reason), never changed or deleted: its owner can save the key again.
 */
import { randomBytes } from "node:crypto";
import type { Database } from "../../db/client.js";
import { decryptKey, encryptKey, keyAad, keyFingerprint, type Keyring } from "../platform/crypto.js";
import type { Logger } from "../platform/log.js";
import { keysSealedWithOtherThan, resealKey } from "./store.js";

export interface ReencryptOptions {
  /** Rows read per query (default 100). */
  batchSize?: number;
  logger?: Logger;
  /** Recorded as `request_id` of the audit rows; default `reencrypt_<random>`. */
  runId?: string;
}

export interface ReencryptSummary {
  /** Rows found under another key than the current one. */
  scanned: number;
  /** Rows now sealed with the current key. */
  reencrypted: number;
  /** Rows that did not decrypt with any key of the keyring (left as they were). */
  failed: number;
  /** Rows saved again or deleted while the job ran (left to the newer write). */
  skipped: number;
}

/** Re-encrypts every `api_keys` row whose `key_version` is not `keyring.current.id`. */
export async function reencryptAll(database: Database, keyring: Keyring, options: ReencryptOptions = {}): Promise<ReencryptSummary> {
  const batchSize = options.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError("batchSize must be a positive integer");
  const logger = options.logger;
  const runId = options.runId ?? `reencrypt_${randomBytes(9).toString("base64url")}`;
  const current = keyring.current.id;
  const summary: ReencryptSummary = { scanned: 0, reencrypted: 0, failed: 0, skipped: 0 };

  let lastId = 0;
  for (;;) {
    const rows = await keysSealedWithOtherThan(database, { current, afterId: lastId, limit: batchSize });
    if (rows.length === 0) break;

    for (const row of rows) {
      lastId = Math.max(lastId, row.id);
      summary.scanned++;
      const aad = keyAad(row.userId, row.provider);
      const plain = decryptKey(keyring, row.ciphertext, aad);
      if (!plain.ok) {
        summary.failed++;
        logger?.warn("stored key could not be re-encrypted", { userId: row.userId, provider: row.provider, reason: plain.error });
        continue;
      }
      const ciphertext = encryptKey(keyring, plain.value, aad);
      // The fingerprints move to the current key too, so an unchanged save stays a no-op after rotation.
      const fingerprint = keyFingerprint(keyring, row.userId, row.provider, plain.value);
      const prefixFingerprint = keyFingerprint(keyring, row.userId, row.provider, plain.value.slice(0, -1));
      const replaced = await resealKey(database, row, { ciphertext, keyVersion: current, fingerprint, prefixFingerprint, runId });
      if (replaced) summary.reencrypted++;
      else {
        summary.skipped++;
        logger?.info("stored key changed while re-encrypting; left to the newer write", { userId: row.userId, provider: row.provider });
      }
    }
    if (rows.length < batchSize) break;
  }

  logger?.info("re-encryption finished", { keyVersion: current, runId, ...summary });
  return summary;
}
