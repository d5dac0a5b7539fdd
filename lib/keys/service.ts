/**
 * The onboarding key flows behind /api/onboarding/api-keys: save (database, plus the .env
 * file in development only), list (hints), delete.
 */
import { AppError } from "../http/errors.js";
import type { RequestContext } from "../http/handler.js";
import type { SaveKeysBody, SaveKeysResponse, ListKeysResponse } from "../schemas.js";
import { providerInfo, providers, type Provider } from "./providers.js";
import { deleteKey, listKeys, saveKeys } from "./store.js";

type Ctx = Pick<RequestContext, "runtime" | "logger" | "requestId" | "request">;

export async function saveUserKeys(ctx: Ctx, userId: string, body: SaveKeysBody): Promise<SaveKeysResponse> {
  const { runtime, logger } = ctx;
  const keys: Partial<Record<Provider, string>> = {};
  for (const provider of providers) if (body[provider] !== undefined) keys[provider] = body[provider];

  const validated = new Set<Provider>();
  if (body.validate && keys.gemini) {
    // Loaded only here: key endpoints must not pay for the Gemini SDK at cold start.
    const { checkGeminiKey } = await import("../providers/gemini.js");
    const check = await checkGeminiKey(keys.gemini, {
      baseUrl: runtime.config.gemini.baseUrl,
      timeoutMs: runtime.config.upstreamTimeoutMs,
      signal: ctx.request.signal,
    });
    if (!check.ok) throw check.error;
    validated.add("gemini");
  }

  const database = await runtime.database();
  const keyring = await runtime.keyring();
  const saved = await saveKeys(database, { userId, keys, validated, keyring, requestId: ctx.requestId });
  const storage: SaveKeysResponse["storage"] = ["database"];

  if (runtime.config.mode === "development") {
    const envValues: Record<string, string> = {};
    for (const provider of providers) if (keys[provider]) envValues[providerInfo[provider].envVar] = keys[provider];
    await runtime.envWriter.set(runtime.config.envFile, envValues);
    const frontendFile = runtime.config.frontendEnvFile;
    const frontendVar = providerInfo.copilotkit.frontendEnvVar;
    if (frontendFile && frontendVar && keys.copilotkit) {
      await runtime.envWriter.set(frontendFile, { [frontendVar]: keys.copilotkit });
    }
    storage.push("env");
  }
  logger.info("keys saved", { userId, providers: saved.map((s) => `${s.provider}:${s.action}`), storage });

  return {
    userId,
    mode: runtime.config.mode,
    saved: saved.map((s) => s.provider),
    storage,
    keys: await listKeys(database, userId, () => runtime.keyring()),
  };
}

export async function listUserKeys(ctx: Ctx, userId: string): Promise<ListKeysResponse> {
  const database = await ctx.runtime.database();
  const keys = await listKeys(database, userId, () => ctx.runtime.keyring());
  const have = new Set(keys.map((k) => k.provider));
  return { userId, mode: ctx.runtime.config.mode, keys, missing: providers.filter((p) => !have.has(p)) };
}

export async function deleteUserKey(ctx: Ctx, userId: string, provider: Provider): Promise<void> {
  const { runtime } = ctx;
  const database = await runtime.database();
  const deleted = await deleteKey(database, { userId, provider, requestId: ctx.requestId });
  if (!deleted) {
    throw new AppError("key-not-found", { detail: `no ${provider} key is saved for this user` });
  }
  if (runtime.config.mode === "development") {
    await runtime.envWriter.unset(runtime.config.envFile, [providerInfo[provider].envVar]);
    const frontendVar = providerInfo[provider].frontendEnvVar;
    if (runtime.config.frontendEnvFile && frontendVar) await runtime.envWriter.unset(runtime.config.frontendEnvFile, [frontendVar]);
  }
  ctx.logger.info("key deleted", { userId, provider });
}
