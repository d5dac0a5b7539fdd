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
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { decryptKey, encryptKey, keyAad, keyFingerprint, type Keyring } from "../platform/crypto.js";
import type { Logger } from "../platform/log.js";

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

interface Row {
  id: number | string;
  user_id: string;
  provider: string;
  key_ciphertext: string;
}

/** Re-encrypts every `api_keys` row whose `key_version` is not `keyring.current.id`. */
export async function reencryptAll(
  database: Database,
  keyring: Keyring,
  options: ReencryptOptions = {},
): Promise<ReencryptSummary> {
  const batchSize = options.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError("batchSize must be a positive integer");
  const logger = options.logger;
  const runId = options.runId ?? `reencrypt_${randomBytes(9).toString("base64url")}`;
  const current = keyring.current.id;
  const summary: ReencryptSummary = { scanned: 0, reencrypted: 0, failed: 0, skipped: 0 };

  let lastId = 0;
  for (;;) {
    const rows = await database.rows<Row>(sql`
      select k.id, s.user_id, k.provider, k.key_ciphertext
      from api_keys k join onboarding_sessions s on s.id = k.session_id
      where k.key_version <> ${current} and k.id > ${lastId}
      order by k.id
      limit ${batchSize}
    `);
    if (rows.length === 0) break;

    for (const row of rows) {
      const id = Number(row.id);
      lastId = Math.max(lastId, id);
      summary.scanned++;
      const aad = keyAad(row.user_id, row.provider);
      const plain = decryptKey(keyring, row.key_ciphertext, aad);
      if (!plain.ok) {
        summary.failed++;
        logger?.warn("stored key could not be re-encrypted", { userId: row.user_id, provider: row.provider, reason: plain.error });
        continue;
      }
      const ciphertext = encryptKey(keyring, plain.value, aad);
      // The fingerprints move to the current key too, so an unchanged save stays a no-op after rotation.
      const fingerprint = keyFingerprint(keyring, row.user_id, row.provider, plain.value);
      const prefixFingerprint = keyFingerprint(keyring, row.user_id, row.provider, plain.value.slice(0, -1));
      const updated = await database.rows<{ id: number }>(sql`
        with up as (
          update api_keys set key_ciphertext = ${ciphertext}, key_version = ${current},
            key_fingerprint = ${fingerprint}, key_prefix_fingerprint = ${prefixFingerprint}
          where id = ${id} and key_ciphertext = ${row.key_ciphertext}
          returning id, provider, key_version
        ),
        audit as (
          insert into key_events (user_id, provider, action, key_version, request_id)
          select ${row.user_id}, up.provider, 'reencrypt', up.key_version, ${runId} from up
        )
        select id from up
      `);
      if (updated.length === 1) summary.reencrypted++;
      else {
        summary.skipped++;
        logger?.info("stored key changed while re-encrypting; left to the newer write", { userId: row.user_id, provider: row.provider });
      }
    }
    if (rows.length < batchSize) break;
  }

  logger?.info("re-encryption finished", { keyVersion: current, runId, ...summary });
  return summary;
}
