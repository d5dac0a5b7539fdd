/**
 * `userApiKeys(userId)`: the seed's resolver, fail-closed.
 * - development: the keys in the .env file (read fresh on every call, falling back to the
 *   process environment), whoever asks: a single developer pays for everything.
 * - production: that user's keys from the database in one query, decrypted with the AAD
 *   `user_id|provider`; never a file, never the operator's keys.
 */
import { decryptKey, keyAad } from "../platform/crypto.js";
import { readEnvFile } from "../platform/dev/env-file.js";
import { providerInfo, providers, type Provider } from "../providers/registry.js";
import { loadCiphertexts } from "./store.js";
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
  const { config, logger } = deps;
  if (config.mode === "development") return developmentKeys(deps);

  logger.info(`[PROD MODE] Using database for user ${userId}`, { userId });
  const database = await deps.database();
  return decryptUserKeys(deps, userId, await loadCiphertexts(database, userId), wanted);
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
 * A user's stored keys, decrypted with the AAD `user_id|provider`. Only `wanted` providers
 * are decrypted (default: all): a request never pays for keys it does not use.
 */
export async function decryptUserKeys(
  deps: Pick<Deps, "logger" | "keyring">,
  userId: string,
  rows: readonly { provider: Provider; ciphertext: string; version: string }[],
  wanted?: ReadonlySet<Provider>,
): Promise<UserKeys> {
  const keys: Partial<Record<Provider, string>> = {};
  const unreadable: Provider[] = [];
  const versions: Partial<Record<Provider, string>> = {};
  if (rows.length > 0) {
    const keyring = await deps.keyring();
    for (const row of rows) {
      if (wanted && !wanted.has(row.provider)) continue;
      const result = decryptKey(keyring, row.ciphertext, keyAad(userId, row.provider));
      if (result.ok) {
        keys[row.provider] = result.value;
        versions[row.provider] = row.version;
      } else {
        unreadable.push(row.provider);
        deps.logger.warn("stored key could not be decrypted", { userId, provider: row.provider, reason: result.error });
      }
    }
  }
  return { source: "database", keys, unreadable, versions };
}
