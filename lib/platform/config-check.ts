/**
 * Is a parsed configuration usable? The one list of configuration problems, asked by
 * `npm start` before it listens (scripts/start.ts), by every function instance on its first
 * request (the runtime caches the answer, lib/platform/runtime.ts), by `/api/health` (which answers
 * 503 `misconfigured` on an error) and by `npm run check-config` (scripts/check-config.ts).
 *
 * `lib/platform/env.ts` refuses values that must never be used (ConfigError: nothing runs); this
 * module finds configurations that parse but cannot work (errors) or work with a risk the
 * operator should know about (warnings). Messages name variables and rules, never values.
 * Only problems marked `public` are shown to anonymous callers of `/api/health`; the names of
 * the variables behind errors are shown too, but the operator's warnings (an empty
 * CLERK_AUTHORIZED_PARTIES, say) stay in the log and in check-config.
 */
import type { Config } from "./env.js";
import type { Logger } from "./log.js";
import { refusedEntries } from "./crypto.js";
import { jwkFromPem } from "./auth/pem.js";
import { parsePublishableKey } from "./auth/publishable-key.js";
import { GEMINI_PRICES_READ, isPriced, modelKey, retiredGeminiModels } from "../providers/prices.js";

/** How old the price table may get before check-config asks for a fresh read of Google's page. */
export const PRICE_TABLE_MAX_AGE_DAYS = 180;

export interface ConfigProblem {
  /** An error stops the service from working as configured (health 503); a warning does not. */
  severity: "error" | "warning";
  /** The variables to look at, by name. */
  variables: readonly string[];
  /** What is wrong and how to fix it: names and rules, never a value. */
  message: string;
  /** Safe to show anonymous callers of /api/health (otherwise the log and check-config only). */
  public: boolean;
}

const makeKey = "node -e \"console.log('k1:' + require('crypto').randomBytes(32).toString('base64'))\"";

/** Every problem of `config`, errors first. Pure but for `now` (the price table's age): no I/O, no logging. */
export function configProblems(config: Readonly<Config>, now: Date = new Date()): ConfigProblem[] {
  const production = config.mode === "production";
  const problems: ConfigProblem[] = [];
  const error = (variables: string[], message: string) => problems.push({ severity: "error", variables, message, public: false });
  const warning = (variables: string[], message: string, isPublic = false) =>
    problems.push({ severity: "warning", variables, message, public: isPublic });

  // ---- Clerk ----
  const { jwtKey, secretKey, authorizedParties } = config.clerk;
  if (production && !jwtKey && !secretKey) {
    error(
      ["CLERK_JWT_KEY", "CLERK_SECRET_KEY"],
      "production needs CLERK_JWT_KEY (preferred) or CLERK_SECRET_KEY; without one every protected request answers 500 server-misconfigured",
    );
  }
  if (jwtKey && jwkFromPem(jwtKey) === null) {
    error(
      ["CLERK_JWT_KEY"],
      "is not an RSA public key in PEM form; copy it from the Clerk dashboard (API keys > JWT public key), newlines or literal \\n both work",
    );
  }
  if (production && (jwtKey || secretKey) && authorizedParties.length === 0) {
    warning(
      ["CLERK_AUTHORIZED_PARTIES"],
      "is empty: tokens minted for any origin (and __session cookies sent cross-site) are accepted; list your frontend origins",
    );
  }
  if (!production && !jwtKey && !secretKey) {
    warning(["CLERK_JWT_KEY", "CLERK_SECRET_KEY"], "no Clerk configuration: every request runs as DEV_USER_ID (default local-dev)");
  }
  if (production && (jwtKey || secretKey) && !config.clerk.webhookSigningSecret) {
    warning(
      ["CLERK_WEBHOOK_SIGNING_SECRET"],
      "is not set: POST /api/webhooks/clerk answers 500, so users deleted in Clerk keep their data here",
    );
  }

  const publishableKey = config.clerk.publishableKey;
  if (publishableKey !== undefined && parsePublishableKey(publishableKey) === null) {
    error(
      ["CLERK_PUBLISHABLE_KEY"],
      "is not a Clerk publishable key (pk_test_… or pk_live_…); copy it from the Clerk dashboard (API keys > Publishable key)",
    );
  }
  if (production && publishableKey === undefined) {
    warning(["CLERK_PUBLISHABLE_KEY"], "is not set: the web app at / cannot sign anyone in (the API itself works)");
  }

  // ---- budgets ----
  const { defaultMonthlyUsd, maxMonthlyUsd } = config.budget;
  if (maxMonthlyUsd !== null && (defaultMonthlyUsd === null || defaultMonthlyUsd > maxMonthlyUsd)) {
    warning(
      ["BUDGET_DEFAULT_USD", "BUDGET_MAX_USD"],
      defaultMonthlyUsd === null
        ? "BUDGET_MAX_USD is set without BUDGET_DEFAULT_USD: users who never chose a cap get the maximum"
        : "BUDGET_DEFAULT_USD is above BUDGET_MAX_USD: the maximum applies",
    );
  }

  // ---- key encryption ----
  const keyring = config.keyring;
  if (keyring === undefined) {
    if (production) {
      error(
        ["KEY_ENCRYPTION_KEYS"],
        "is not set: production cannot store or read keys (key endpoints answer 500 server-misconfigured); " +
          `set it to id:base64(32 random bytes), e.g. from ${makeKey}`,
      );
    }
  } else {
    if (!keyring.ok) {
      // parseKeyring names entries by position only, never by id or content.
      error(["KEY_ENCRYPTION_KEYS"], `does not parse: ${keyring.error}`);
    } else {
      const refused = refusedEntries(keyring.value, config.mode);
      for (const weak of keyring.value.lowEntropy) {
        const isRefused = refused.includes(weak);
        const message =
          `entry ${weak.position} is not 32 random bytes (${weak.reason}); ` +
          (isRefused ? "production refuses it" : "production would refuse it") +
          `. Make a key with ${makeKey}; to replace a key already in use, put the new one first and run npm run keys:reencrypt`;
        if (isRefused) error(["KEY_ENCRYPTION_KEYS"], message);
        else warning(["KEY_ENCRYPTION_KEYS"], message);
      }
    }
  }

  // ---- the Gemini model and its price ----
  const model = config.gemini.model;
  const retiredOn = retiredGeminiModels[modelKey(model)];
  if (retiredOn !== undefined) {
    const message = `names a model Google shut down on ${retiredOn} (ai.google.dev/gemini-api/docs/deprecations): every generation fails with 503 model-unavailable; unset it for the default model`;
    if (production) error(["GEMINI_MODEL"], message);
    else warning(["GEMINI_MODEL"], message);
  } else if (!isPriced(model, config.gemini.price)) {
    const message =
      "names a model without a price in the table (lib/providers/prices.ts, docs/provider-facts.md): set GEMINI_PRICE_INPUT_PER_MILLION and " +
      "GEMINI_PRICE_OUTPUT_PER_MILLION (USD per million tokens, from ai.google.dev/gemini-api/docs/pricing) so usage and caps are metered";
    if (production) error(["GEMINI_MODEL", "GEMINI_PRICE_INPUT_PER_MILLION", "GEMINI_PRICE_OUTPUT_PER_MILLION"], message);
    else
      warning(
        ["GEMINI_MODEL", "GEMINI_PRICE_INPUT_PER_MILLION", "GEMINI_PRICE_OUTPUT_PER_MILLION"],
        `${message}; until then development charges the dearest known price`,
      );
  }
  const tableAgeDays = Math.floor((now.getTime() - Date.parse(`${GEMINI_PRICES_READ}T00:00:00Z`)) / 86_400_000);
  if (tableAgeDays > PRICE_TABLE_MAX_AGE_DAYS && config.gemini.price === undefined) {
    warning(
      ["GEMINI_MODEL"],
      `the Gemini price table was read from ai.google.dev/gemini-api/docs/pricing on ${GEMINI_PRICES_READ}, ${tableAgeDays} days ago: ` +
        "check the prices (docs/provider-facts.md), or set GEMINI_PRICE_INPUT_PER_MILLION and GEMINI_PRICE_OUTPUT_PER_MILLION",
    );
  }

  // ---- mode and database ----
  if (production && config.debug) {
    warning(["DEBUG"], "DEBUG=true is ignored in production: keys come from the database only, never from .env", true);
  }
  if (production && config.database.driver === "pglite") {
    warning(["DATABASE_URL"], "production without DATABASE_URL uses the embedded PGlite database: data lives on this instance only");
  }

  return problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1));
}

/** The variables behind errors, each once: what `/api/health` names publicly. */
export function misconfiguredVariables(problems: readonly ConfigProblem[]): string[] {
  return [...new Set(problems.filter((p) => p.severity === "error").flatMap((p) => p.variables))];
}

/** One line: `error KEY_ENCRYPTION_KEYS: is not set: …`. */
export function formatConfigProblem(problem: ConfigProblem): string {
  return `${problem.severity} ${problem.variables.join(" / ")}: ${problem.message}`;
}

/** Logs each problem once (errors at error level, warnings at warn level). */
export function logConfigProblems(problems: readonly ConfigProblem[], logger: Logger): void {
  for (const problem of problems) {
    const fields = { variables: [...problem.variables] };
    const line = `configuration ${formatConfigProblem(problem)}`;
    if (problem.severity === "error") logger.error(line, fields);
    else logger.warn(line, fields);
  }
}
