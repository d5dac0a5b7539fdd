/**
 * Development only: a key ring for a developer's machine. When neither the environment nor
 * the `.env` file holds `KEY_ENCRYPTION_KEYS`, one is generated and written into `.env`, so
 * `npm start` works on a fresh clone. Production never comes here (lib/runtime.ts).
 */
import { generateKeyringEntry } from "../crypto.js";
import type { Logger } from "../log.js";
import { readEnvFile, type EnvFileWriter } from "./env-file.js";

/** The development KEY_ENCRYPTION_KEYS spec: from `.env` (it may have gained one since start), else a new one. */
export async function developmentKeyringSpec(envFile: string, envWriter: EnvFileWriter, logger: Logger): Promise<string> {
  const existing = (await readEnvFile(envFile)).KEY_ENCRYPTION_KEYS;
  if (existing) return existing;
  const spec = generateKeyringEntry();
  await envWriter.set(envFile, { KEY_ENCRYPTION_KEYS: spec });
  logger.warn("generated a development KEY_ENCRYPTION_KEYS into the .env file", { envFile });
  return spec;
}
