/**
 * `userApiKeys(userId)`: the seed's resolver, fail-closed.
 * - development: the developer (every request without a session token) pays. Each provider's key comes
 *   from the first of: the .env file (read fresh on every call), the process environment as
 *   the server was started (never the copy of the .env file loaded into it at start:
 *   lib/platform/dev/dotenv.ts), the database (the developer's saved keys). The key list
 *   (lib/keys/service.ts `listUserKeys`) shows exactly these, with their `source`, so what the
 *   page shows is what a generation uses, and a key deleted from the file and the database is
 *   never used again, restart or not.
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

/** Where a development key comes from, in the order they are looked at. */
export type DevelopmentKeySource = "env-file" | "process-env" | "database";

export interface UserKeys {
  source: KeySource;
  /** Development: where each key comes from (see above). */
  sources?: Partial<Record<Provider, DevelopmentKeySource>>;
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
  if (usesDevelopmentKeys(deps.config, userId)) return developmentKeys(deps);
  const database = await deps.database();
  return decodeKeyRows(deps, userId, await database.rows<CiphertextRow>(userCiphertextsSql(userId)), wanted);
}

/**
 * Whether `userId`'s requests run on the development keys: in development, the developer's
 * (`DEV_USER_ID`, every request without a session token). A user signed in through Clerk in
 * development runs on their own saved keys, as in production, so two signed-in users never
 * see or use each other's keys, nor the developer's.
 */
export function usesDevelopmentKeys(config: Pick<Deps["config"], "mode" | "devUserId">, userId: string): boolean {
  return config.mode === "development" && userId === config.devUserId;
}

/**
 * The development keys (see the file comment): the .env file, read fresh; then the process
 * environment as started; then the developer's saved keys in the database (decrypted only
 * for providers the first two lack). A file or environment key equal to the saved one carries
 * the saved one's version, so what a generation learns about it is recorded on it. Logs
 * "[DEV MODE] Using .env file" once per instance.
 */
export async function developmentKeys(deps: Pick<Deps, "config" | "logger" | "once" | "database" | "keyring">): Promise<UserKeys> {
  const { config, logger } = deps;
  if (!deps.once.has("dev-mode-log")) {
    deps.once.add("dev-mode-log");
    logger.info("[DEV MODE] Using .env file", { envFile: config.envFile });
  }
  const file = await readEnvFile(config.envFile);
  const keys: Partial<Record<Provider, string>> = {};
  const sources: Partial<Record<Provider, DevelopmentKeySource>> = {};
  for (const provider of providers) {
    const fromFile = file[providerInfo[provider].envVar];
    const fromProcess = config.processEnvKeys[provider];
    if (fromFile) [keys[provider], sources[provider]] = [fromFile, "env-file"];
    else if (fromProcess) [keys[provider], sources[provider]] = [fromProcess, "process-env"];
  }
  const database = await deps.database();
  const rows = await database.rows<CiphertextRow>(userCiphertextsSql(config.devUserId));
  let stored: UserKeys | undefined;
  try {
    if (rows.some((r) => r.ciphertext !== null)) stored = await decodeKeyRows(deps, config.devUserId, rows, undefined, { quiet: true });
  } catch (error) {
    // No key ring (its .env line lost): only a problem when a saved key is the one to use.
    if (providers.some((p) => keys[p] === undefined && rows.some((r) => r.provider === p))) throw error;
  }
  const versions: Partial<Record<Provider, string>> = {};
  const unreadable: Provider[] = [];
  for (const provider of providers) {
    const saved = stored?.keys[provider];
    if (keys[provider] === undefined) {
      if (saved !== undefined) [keys[provider], sources[provider]] = [saved, "database"];
      else if (stored?.unreadable.includes(provider)) unreadable.push(provider);
    }
    if (saved !== undefined && saved === keys[provider] && stored?.versions[provider]) versions[provider] = stored.versions[provider];
  }
  return { source: "env", sources, keys, unreadable, versions };
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
  options: { quiet?: boolean } = {},
): Promise<UserKeys> {
  if (!options.quiet) deps.logger.info(`[PROD MODE] Using database for user ${userId}`, { userId });
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
