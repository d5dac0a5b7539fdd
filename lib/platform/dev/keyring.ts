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
import { generateKeyringEntry } from "../crypto.js";
import { AppError } from "../../http/errors.js";
import type { Logger } from "../log.js";
import type { Database } from "../../../db/client.js";
import { readEnvFile, type EnvFileWriter } from "./env-file.js";

/**
 * Key ids that sealed stored keys, with how many keys each sealed. The key store owns that
 * query (lib/keys/store.ts `sealingKeyIds`, like every statement on the key tables) and hands
 * it over when it loads: this base module may not import a feature. Every path that asks for
 * a key ring imports the key store, so it is there whenever a key ring is generated.
 */
export type SealedKeyCensus = (database: Database) => Promise<Map<string, number>>;

let sealedKeyCensus: SealedKeyCensus | undefined;

/** Called by lib/keys/store.ts as it loads. */
export function provideSealedKeyCensus(census: SealedKeyCensus): void {
  sealedKeyCensus = census;
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
  // Fail closed: without the census a new key could hide stored keys it can never open.
  if (!sealedKeyCensus)
    throw new Error("development key ring: the key store (lib/keys/store.ts) is not loaded, so stored keys cannot be checked");
  const orphaned = await sealedKeyCensus(await database());
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
    // The page (web/app.ts) shows the two ways out from these members.
    throw new AppError("server-misconfigured", {
      detail,
      action,
      extra: { reason: "keyring-missing", missingKeyIds: [...orphaned.keys()].join(","), envFile },
    });
  }
  const spec = generateKeyringEntry();
  await envWriter.set(envFile, { KEY_ENCRYPTION_KEYS: spec });
  logger.warn("generated a development KEY_ENCRYPTION_KEYS into the .env file", { envFile });
  return spec;
}
