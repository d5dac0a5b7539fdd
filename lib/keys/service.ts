/**
 * The onboarding key flows behind /api/onboarding/api-keys: save (database, plus the .env
 * file in development only), list (hints), delete.
 */
import { AppError } from "../http/errors.js";
import type { Deps } from "../runtime.js";
import type { SaveKeysBody, SaveKeysResponse, ListKeysResponse } from "../schemas.js";
import { providerInfo, providers, type Provider } from "./providers.js";
import { deleteKey, keysNeedingReplacement, listKeys, saveKeys } from "./store.js";
import { rateLimitCountSql, rateLimitOf, rateLimitState, type RateLimitState } from "../rate-limit.js";

/**
 * Saves the keys in `body` for `userId` (database; the .env file too in development) and
 * answers the saved list. `signal` aborts the optional upstream key check.
 */
export async function saveUserKeys(deps: Deps, userId: string, body: SaveKeysBody, signal?: AbortSignal): Promise<SaveKeysResponse> {
  const { logger } = deps;
  const keys: Partial<Record<Provider, string>> = {};
  for (const provider of providers) if (body[provider] !== undefined) keys[provider] = body[provider];

  const validated = new Set<Provider>();
  if (body.validate && keys.gemini) {
    // Loaded only here: key endpoints must not pay for the Gemini SDK at cold start.
    const { checkGeminiKey } = await import("../providers/gemini-check.js");
    const check = await checkGeminiKey(keys.gemini, {
      baseUrl: deps.config.gemini.baseUrl,
      timeoutMs: deps.config.upstreamTimeoutMs,
      signal,
    });
    if (!check.ok) throw check.error;
    validated.add("gemini");
  }

  const database = await deps.database();
  const keyring = await deps.keyring();
  const saved = await saveKeys(database, { userId, keys, validated, keyring, requestId: deps.requestId });
  const storage: SaveKeysResponse["storage"] = ["database"];

  if (deps.config.mode === "development") {
    const envValues: Record<string, string> = {};
    for (const provider of providers) if (keys[provider]) envValues[providerInfo[provider].envVar] = keys[provider];
    await deps.envWriter.set(deps.config.envFile, envValues);
    const frontendFile = deps.config.frontendEnvFile;
    const frontendVar = providerInfo.copilotkit.frontendEnvVar;
    if (frontendFile && frontendVar && keys.copilotkit) {
      await deps.envWriter.set(frontendFile, { [frontendVar]: keys.copilotkit });
    }
    storage.push("env");
  }
  logger.info("keys saved", { userId, providers: saved.map((s) => `${s.provider}:${s.action}`), storage });

  return {
    userId,
    mode: deps.config.mode,
    saved: saved.map((s) => s.provider),
    storage,
    keys: await listKeys(database, userId, () => deps.keyring()),
  };
}

export async function listUserKeys(deps: Deps, userId: string): Promise<ListKeysResponse> {
  const database = await deps.database();
  const keys = await listKeys(database, userId, () => deps.keyring());
  const have = new Set(keys.map((k) => k.provider));
  return {
    userId,
    mode: deps.config.mode,
    keys,
    missing: providers.filter((p) => !have.has(p)),
    needsReplacement: keysNeedingReplacement(keys),
  };
}

/**
 * Deletes one key, counting the request against the key-writes limit in the same statement
 * (one round trip). Throws 429 rate-limited (nothing deleted) or 404 key-not-found; returns
 * the rate-limit state for the RateLimit headers (null: no limit).
 */
export async function deleteUserKey(deps: Deps, userId: string, provider: Provider): Promise<RateLimitState | null> {
  const database = await deps.database();
  const limit = rateLimitOf(deps.config, "key-writes");
  const result = await deleteKey(database, {
    userId,
    provider,
    requestId: deps.requestId,
    ...(limit > 0 ? { rateLimit: { countSql: rateLimitCountSql(userId, "key-writes"), limit } } : {}),
  });
  const state = limit > 0 ? rateLimitState(deps, { userId, bucket: "key-writes", limit, row: result.rateLimitRow }) : null;
  if (!result.deleted) {
    throw new AppError("key-not-found", { detail: `no ${provider} key is saved for this user` });
  }
  if (deps.config.mode === "development") {
    await deps.envWriter.unset(deps.config.envFile, [providerInfo[provider].envVar]);
    const frontendVar = providerInfo[provider].frontendEnvVar;
    if (deps.config.frontendEnvFile && frontendVar) await deps.envWriter.unset(deps.config.frontendEnvFile, [frontendVar]);
  }
  deps.logger.info("key deleted", { userId, provider });
  return state;
}
