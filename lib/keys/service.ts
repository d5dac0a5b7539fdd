/**
 * The onboarding key flows behind /api/onboarding/api-keys: save (database, plus the .env
 * file in development only: lib/keys/env-mirror.ts), list (hints), delete.
 */
import { AppError } from "../http/errors.js";
import type { Deps } from "../platform/runtime.js";
import type { SaveKeysBody, SaveKeysResponse, ListKeysResponse } from "./schemas.js";
import { stat } from "node:fs/promises";
import { keyHint, providerInfo, providers, type Provider } from "../providers/registry.js";
import { deleteKey, keysNeedingReplacement, listKeys, saveKeys, type KeyView } from "./store.js";
import { envMirror } from "./env-mirror.js";
import { developmentKeys, usesDevelopmentKeys } from "./resolver.js";
import { readEnvFile } from "../platform/dev/env-file.js";
import { keyNotices } from "./notices.js";
import {
  errorWithRateLimit,
  KEY_EDITS_PER_MINUTE,
  limitFor,
  rateLimitCountSql,
  rateLimitedError,
  rateLimitState,
  tighterRateLimit,
  type RateLimitState,
} from "../platform/rate-limit.js";

/** What a save answers, and the rate-limit window it left (for the RateLimit headers). */
export interface SaveOutcome {
  body: SaveKeysResponse;
  rateLimit: RateLimitState | null;
}

/**
 * Saves the keys in `body` for `userId` (database; the .env file too in development) and
 * answers the saved list. A key equal to the stored one is unchanged: nothing written, no
 * audit row, not counted against the key-write limit (counted here, by the statement that
 * saves: lib/keys/store.ts). `hints` are values a client sent back as it was shown them
 * ("…abcd"): equal to the stored key's hint they mean "unchanged"; any other hint is a 400
 * and replaces nothing. `signal` aborts the optional upstream key check (`validate: true`),
 * which first counts one request in `key-checks` (its own statement, before the upstream call,
 * whatever the check answers; past the limit 429 with no upstream call and nothing saved).
 */
export async function saveUserKeys(
  deps: Deps,
  userId: string,
  body: SaveKeysBody,
  signal?: AbortSignal,
  hints: Partial<Record<Provider, string>> = {},
): Promise<SaveOutcome> {
  const { logger, config } = deps;
  const keys: Partial<Record<Provider, string>> = {};
  for (const provider of providers) if (body[provider] !== undefined) keys[provider] = body[provider];
  // Whatever their shape, the keys this request carries never reach a log line.
  logger.redactAlso(...Object.values(keys));

  const database = await deps.database();
  const hinted = providers.filter((p) => hints[p] !== undefined);
  if (hinted.length > 0) {
    const stored = await listKeys(database, userId, () => deps.keyring(), { withValues: false });
    for (const provider of hinted) {
      const view = stored.find((k) => k.provider === provider);
      if (!view || view.hint !== hints[provider] || view.hint === "…") {
        throw new AppError("invalid-key-format", {
          detail: `${providerInfo[provider].label} key is a hint ("…" and the last characters), not the saved key's; paste the whole key`,
          errors: [{ pointer: `/${provider}`, message: "a hint that does not match the saved key" }],
        });
      }
    }
  }

  const validated = new Set<Provider>();
  let keyChecks: RateLimitState | null = null;
  if (body.validate && keys.gemini) {
    // Counted before the upstream call, whatever it answers (accepted, refused, upstream down):
    // a refused key is never saved, so the key-writes limit alone would let anyone signed in
    // test leaked keys through this service for free. Past the limit: 429, no upstream call.
    keyChecks = await countKeyCheck(deps, userId);
    try {
      // Loaded only here: key endpoints must not pay for the Gemini SDK at cold start.
      const { checkGeminiKey } = await import("../providers/gemini-check.js");
      const check = await checkGeminiKey(keys.gemini, {
        baseUrl: config.gemini.baseUrl,
        timeoutMs: config.upstreamTimeoutMs,
        signal,
      });
      if (!check.ok) throw check.error;
    } catch (error) {
      // The refusal shows what is left of the caller's key-check window.
      throw errorWithRateLimit(error, keyChecks);
    }
    validated.add("gemini");
  }

  const keyWritesLimit = limitFor(config.rateLimits, "key-writes");
  const keyring = await deps.keyring();
  const outcome = await saveKeys(database, {
    userId,
    keys,
    validated,
    keyring,
    requestId: deps.requestId,
    serverRequestId: deps.serverRequestId,
    limits: keyWritesLimit === 0 ? null : { keyWrites: keyWritesLimit, keyEdits: KEY_EDITS_PER_MINUTE },
  });
  let rateLimit: RateLimitState | null = null;
  if (outcome.window) {
    const limit = outcome.window.bucket === "key-edits" ? KEY_EDITS_PER_MINUTE : keyWritesLimit;
    rateLimit = { limit, remaining: Math.max(0, limit - outcome.window.count), resetSeconds: outcome.window.resetSeconds };
  }
  if (outcome.limited && rateLimit && outcome.window) {
    logger.info("rate limited", { userId, bucket: outcome.window.bucket, limit: rateLimit.limit });
    throw rateLimitedError(outcome.window.bucket, rateLimit);
  }
  // Checked and saved: the headers show the tighter of the two windows this request counted in.
  rateLimit = tighterRateLimit(rateLimit, keyChecks);
  const changed = new Set(outcome.saved.map((s) => s.provider));
  const storage: SaveKeysResponse["storage"] = ["database"];

  const mirror = envMirror(deps);
  if (mirror.active) {
    // Only what changed: an unchanged save writes nothing anywhere.
    await mirror.write(Object.fromEntries(providers.filter((p) => changed.has(p) && keys[p]).map((p) => [p, keys[p]!])));
    storage.push("env");
  }
  const unchanged = [...outcome.unchanged, ...hinted].sort((a, b) => providers.indexOf(a) - providers.indexOf(b));
  logger.info("keys saved", { userId, providers: outcome.saved.map((s) => `${s.provider}:${s.action}`), unchanged, storage });

  return {
    body: {
      userId,
      mode: config.mode,
      saved: outcome.saved.map((s) => s.provider),
      unchanged,
      storage,
      // From the saving statement itself (one round trip); nothing saved: the list as it is.
      keys: await withSources(
        deps,
        userId,
        Object.keys(keys).length > 0 ? outcome.keys : await listKeys(database, userId, () => deps.keyring()),
      ),
    },
    rateLimit,
  };
}

/**
 * Counts one upstream key check of `userId` in `key-checks` (one small statement, only for
 * `validate: true`); throws 429 rate-limited past the limit. Null: the limit is off.
 */
async function countKeyCheck(deps: Deps, userId: string): Promise<RateLimitState | null> {
  const limit = limitFor(deps.config.rateLimits, "key-checks");
  if (limit === 0) return null;
  const database = await deps.database();
  const [row] = await database.rows<{ count: unknown; reset: unknown }>(rateLimitCountSql(userId, "key-checks"));
  return rateLimitState(deps, { userId, bucket: "key-checks", limit, row });
}

export async function listUserKeys(deps: Deps, userId: string): Promise<ListKeysResponse> {
  const database = await deps.database();
  const keys = await withSources(deps, userId, await listKeys(database, userId, () => deps.keyring()));
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
  const limit = limitFor(deps.config.rateLimits, "key-writes");
  const result = await deleteKey(database, {
    userId,
    provider,
    requestId: deps.requestId,
    serverRequestId: deps.serverRequestId,
    ...(limit > 0 ? { rateLimit: { countSql: rateLimitCountSql(userId, "key-writes"), limit } } : {}),
  });
  const state = limit > 0 ? rateLimitState(deps, { userId, bucket: "key-writes", limit, row: result.rateLimitRow }) : null;
  if (!result.deleted) {
    // Development: a key only in the .env file (never saved through the API) is deleted there.
    const envVar = providerInfo[provider].envVar;
    const inFile = usesDevelopmentKeys(deps.config, userId) && Boolean((await readEnvFile(deps.config.envFile))[envVar]);
    if (!inFile) {
      const inProcess = usesDevelopmentKeys(deps.config, userId) && Boolean(deps.config.processEnvKeys[provider]);
      throw new AppError("key-not-found", {
        detail: inProcess
          ? `the ${provider} key is set in this server's environment (${envVar}), not saved: unset it and restart the server`
          : `no ${provider} key is saved for this user`,
      });
    }
  }
  await envMirror(deps).remove([provider]);
  deps.logger.info("key deleted", { userId, provider });
  return state;
}

/** When the server process started: the moment a key from its environment took effect. */
const processStartedAt = new Date(Date.now() - Math.round(process.uptime() * 1000)).toISOString();

/**
 * The views with where each key comes from (`source`). Production, and a user signed in in
 * development: the database, always. The developer (lib/keys/resolver.ts `usesDevelopmentKeys`): exactly the keys a generation would use (lib/keys/resolver.ts
 * `developmentKeys`): a saved key that the .env file or the environment overrides is shown
 * as the key in force, and a key only in the file or the environment is listed too.
 */
async function withSources(deps: Deps, userId: string, views: KeyView[]): Promise<KeyView[]> {
  if (!usesDevelopmentKeys(deps.config, userId)) return views.map((v) => ({ ...v, source: "database" as const }));
  const resolved = await developmentKeys(deps);
  const out: KeyView[] = [];
  for (const provider of providers) {
    const value = resolved.keys[provider];
    const source = resolved.sources?.[provider];
    const saved = views.find((v) => v.provider === provider);
    if (value === undefined || source === undefined) {
      if (saved) out.push({ ...saved, source: "database" }); // unreadable: shown so it can be replaced
      continue;
    }
    if (saved && (source === "database" || resolved.versions[provider] !== undefined)) {
      out.push({ ...saved, source });
      continue;
    }
    const view: KeyView = { provider, hint: keyHint(value), updatedAt: await sourceTime(deps, source), status: "unknown", source };
    const notices = keyNotices(provider, value);
    if (notices.length > 0) view.notices = notices;
    if (providerInfo[provider].returnsValue) view.value = value;
    out.push(view);
  }
  return out;
}

async function sourceTime(deps: Deps, source: "env-file" | "process-env" | "database"): Promise<string> {
  if (source !== "env-file") return processStartedAt;
  return (await stat(deps.config.envFile).catch(() => null))?.mtime.toISOString() ?? processStartedAt;
}
