/**
 * `userApiKeys(userId)`: the seed's resolver, fail-closed.
 * - development: the keys in the .env file (read fresh on every call, falling back to the
 *   process environment), whoever asks: a single developer pays for everything.
 * - production: that user's keys from the database in one query, decrypted with the AAD
 *   `user_id|provider`; never a file, never the operator's keys.
 *
 * There is one read path for stored keys: the query is lib/keys/store.ts `userCiphertextsSql`
 * and its rows are decoded here, by `decodeKeyRows`, only. Generation (lib/generation/start.ts)
 * composes that query into its first statement and decodes what it returns with
 * `decodeKeyRows`; `userApiKeys` runs the query alone and decodes the same way.
 */
import { decryptKey, keyAad } from "../platform/crypto.js";
import { readEnvFile } from "../platform/dev/env-file.js";
import { providerInfo, providers, type Provider } from "../providers/registry.js";
import { userCiphertextsSql, type CiphertextRow } from "./store.js";
import type { Deps } from "../platform/runtime.js";

export type KeySource = "env" | "database";

export interface UserKeys {
  source: KeySource;
  keys: Partial<Record<Provider, string>>;
  /** Stored keys that failed to decrypt (tampered, moved or sealed with a retired key). */
  unreadable: Provider[];
  /**
   * The version (`updated_at`) of each stored key returned, so what an upstream call says
   * about it is recorded on that key and not on one saved since (lib/keys/health.ts). Empty
   * in development, whose keys come from the .env file.
   */
  versions: Partial<Record<Provider, string>>;
}

/**
 * The keys `userId`'s requests run with (see above); `deps.logger` should carry the request id.
 * `wanted` limits decryption (production) to the providers the caller will use.
 */
export async function userApiKeys(
  deps: Pick<Deps, "config" | "logger" | "database" | "keyring" | "once">,
  userId: string,
  wanted?: ReadonlySet<Provider>,
): Promise<UserKeys> {
  if (deps.config.mode === "development") return developmentKeys(deps);
  const database = await deps.database();
  return decodeKeyRows(deps, userId, await database.rows<CiphertextRow>(userCiphertextsSql(userId)), wanted);
}

/**
 * The development keys: the .env file, read fresh (falling back to the process environment),
 * whoever asks. Logs "[DEV MODE] Using .env file" once per instance.
 */
export async function developmentKeys(deps: Pick<Deps, "config" | "logger" | "once">): Promise<UserKeys> {
  const { config, logger } = deps;
  if (!deps.once.has("dev-mode-log")) {
    deps.once.add("dev-mode-log");
    logger.info("[DEV MODE] Using .env file", { envFile: config.envFile });
  }
  const file = await readEnvFile(config.envFile);
  const keys: Partial<Record<Provider, string>> = {};
  for (const provider of providers) {
    const value = file[providerInfo[provider].envVar] || config.processEnvKeys[provider];
    if (value) keys[provider] = value;
  }
  return { source: "env", keys, unreadable: [], versions: {} };
}

/**
 * Rows of `userCiphertextsSql` (from the query alone or from a statement that composes it) as
 * the user's keys, each decrypted with the AAD `user_id|provider`; rows without a key (null
 * columns of a left join) are skipped. Only `wanted` providers are decrypted (default: all):
 * a request never pays for keys it does not use. Logs "[PROD MODE] Using database for user <id>".
 */
export async function decodeKeyRows(
  deps: Pick<Deps, "logger" | "keyring">,
  userId: string,
  rows: readonly CiphertextRow[],
  wanted?: ReadonlySet<Provider>,
): Promise<UserKeys> {
  deps.logger.info(`[PROD MODE] Using database for user ${userId}`, { userId });
  const keys: Partial<Record<Provider, string>> = {};
  const unreadable: Provider[] = [];
  const versions: Partial<Record<Provider, string>> = {};
  const stored = rows.filter(
    (r): r is CiphertextRow & { provider: Provider; ciphertext: string } => r.provider !== null && r.ciphertext !== null,
  );
  if (stored.length > 0) {
    const keyring = await deps.keyring();
    for (const row of stored) {
      if (wanted && !wanted.has(row.provider)) continue;
      const result = decryptKey(keyring, row.ciphertext, keyAad(userId, row.provider));
      if (result.ok) {
        keys[row.provider] = result.value;
        versions[row.provider] = String(row.version);
      } else {
        unreadable.push(row.provider);
        deps.logger.warn("stored key could not be decrypted", { userId, provider: row.provider, reason: result.error });
      }
    }
  }
  return { source: "database", keys, unreadable, versions };
}
