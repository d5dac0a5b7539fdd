/**
 * Development only: a key ring for a developer's machine. When neither the environment nor
 * the `.env` file holds `KEY_ENCRYPTION_KEYS`, one is generated and written into `.env`, so
 * `npm start` works on a fresh clone. Production never comes here (lib/platform/runtime.ts).
 *
 * Generating is refused while the database holds keys sealed with a key id we do not have
 * (e.g. `cp .env.example .env` after a first run wiped the generated line): a new key could
 * never open them, and saving new keys over them would hide the loss. The error says which
 * id is missing and how to recover.
 */
import { sql } from "drizzle-orm";
import { generateKeyringEntry, keyIdPattern } from "../crypto.js";
import { AppError } from "../../http/errors.js";
import type { Logger } from "../log.js";
import type { Database } from "../../../db/client.js";
import { readEnvFile, type EnvFileWriter } from "./env-file.js";

/** Key ids that sealed stored keys, with how many keys each sealed (from `keyId:nonce:ciphertext`). */
export async function sealingKeyIds(database: Database): Promise<Map<string, number>> {
  // The id is the stored value's prefix (lib/platform/crypto.ts `storedKeyId`); only the id leaves the database.
  const rows = await database.rows<{ key_id: string; keys: number | string }>(sql`
    select split_part(key_ciphertext, ':', 1) as key_id, count(*) as keys
    from api_keys
    where key_ciphertext like '%:%:%'
    group by 1
    order by 1
  `);
  const ids = new Map<string, number>();
  // An id that is not in the key id format is not printed (it could be part of a key).
  for (const row of rows) ids.set(keyIdPattern.test(row.key_id) ? row.key_id : "(malformed)", Number(row.keys));
  return ids;
}

/** The development KEY_ENCRYPTION_KEYS spec: from `.env` (it may have gained one since start), else a new one. */
export async function developmentKeyringSpec(
  envFile: string,
  envWriter: EnvFileWriter,
  logger: Logger,
  database: () => Promise<Database>,
): Promise<string> {
  const existing = (await readEnvFile(envFile)).KEY_ENCRYPTION_KEYS;
  if (existing) return existing;
  const orphaned = await sealingKeyIds(await database());
  if (orphaned.size > 0) {
    const total = [...orphaned.values()].reduce((a, b) => a + b, 0);
    const ids = [...orphaned.keys()].map((id) => `"${id}"`).join(", ");
    const detail =
      `KEY_ENCRYPTION_KEYS is not set, but the database holds ${total} saved key${total === 1 ? "" : "s"} sealed with key id ${ids}; ` +
      `a new development key could never decrypt ${total === 1 ? "it" : "them"}, so none was generated`;
    const action =
      `restore the KEY_ENCRYPTION_KEYS line holding key id ${ids} in ${envFile} (from a backup of the file, or the environment ` +
      `the server ran with before), or, to start over, delete the saved keys (DELETE /api/onboarding/api-keys?provider=… ` +
      `for each provider; they cannot be decrypted anyway), then try again`;
    logger.error(`${detail}; to recover: ${action}`, { envFile, missingKeyIds: [...orphaned.keys()] });
    throw new AppError("server-misconfigured", { detail, action });
  }
  const spec = generateKeyringEntry();
  await envWriter.set(envFile, { KEY_ENCRYPTION_KEYS: spec });
  logger.warn("generated a development KEY_ENCRYPTION_KEYS into the .env file", { envFile });
  return spec;
}
