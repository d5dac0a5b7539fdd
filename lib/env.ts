/**
 * The one place that reads `process.env`. It is parsed once with zod into a frozen,
 * typed config; tests build their own with `loadConfig({...})` instead of mutating globals.
 *
 * Mode detection is the seed's, made fail-closed: any hosting-platform signal, or any
 * DEPLOY_ENV other than `local`, means production, and DEBUG=true cannot undo that.
 */
import { z } from "zod";

export type Mode = "development" | "production";
export type DatabaseDriver = "pglite" | "pg" | "neon-http" | "neon-ws";

/** Empty strings count as unset, as in create-t3-app. */
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const list = optionalString.transform((v) =>
  v === undefined ? [] : v.split(",").map((s) => s.trim()).filter(Boolean),
);

const bool = optionalString.transform((v) => v !== undefined && /^(1|true|yes|on)$/i.test(v));

const positiveInt = (fallback: number) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+$/, "must be a whole number")
      .transform(Number)
      .optional()
      .transform((v) => v ?? fallback),
  );

/** A non-negative USD amount such as `5` or `12.50` (at most 999999.99999999: numeric(14, 8)). */
const usdAmount = optionalString.pipe(
  z
    .string()
    .regex(/^\d{1,6}(\.\d{1,8})?$/, "must be a USD amount such as 5 or 12.50 (0 to 999999.99999999)")
    .transform(Number)
    .optional(),
);

/** Clerk's webhook signing secret: `whsec_` + base64 (Standard Webhooks). */
const webhookSecret = optionalString.pipe(
  z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]{16,}={0,2}$/, "must be the whsec_… signing secret of the webhook endpoint in Clerk's dashboard")
    .optional(),
);

const rawSchema = z.object({
  DEBUG: bool,
  DEPLOY_ENV: optionalString,
  VERCEL: optionalString,
  AWS_LAMBDA_FUNCTION_NAME: optionalString,
  RENDER: optionalString,
  DATABASE_URL: optionalString,
  DATABASE_DRIVER: optionalString.pipe(z.enum(["pglite", "pg", "neon-http", "neon-ws"]).optional()),
  PGLITE_DIR: optionalString,
  DATABASE_PREPARED_STATEMENTS: optionalString.pipe(z.enum(["named", "unnamed"]).optional()),
  CLERK_JWT_KEY: optionalString,
  CLERK_SECRET_KEY: optionalString,
  CLERK_API_URL: optionalString,
  CLERK_AUTHORIZED_PARTIES: list,
  CLERK_WEBHOOK_SIGNING_SECRET: webhookSecret,
  KEY_ENCRYPTION_KEYS: optionalString,
  DEV_USER_ID: optionalString,
  ENV_FILE: optionalString,
  FRONTEND_ENV_FILE: optionalString,
  GEMINI_MODEL: optionalString,
  GEMINI_BASE_URL: optionalString.pipe(z.url().optional()),
  EXA_BASE_URL: optionalString.pipe(z.url().optional()),
  ALLOWED_ORIGINS: list,
  PORT: positiveInt(3000),
  LOG_LEVEL: optionalString.pipe(z.enum(["debug", "info", "warn", "error"]).optional()),
  UPSTREAM_TIMEOUT_MS: positiveInt(30_000),
  RATE_LIMIT_GENERATE_PER_MINUTE: positiveInt(10),
  RATE_LIMIT_KEY_WRITES_PER_MINUTE: positiveInt(30),
  BUDGET_DEFAULT_USD: usdAmount,
  BUDGET_MAX_USD: usdAmount,
  // Development-mode fallbacks for userApiKeys() when the .env file lacks a key.
  GEMINI_API_KEY: optionalString,
  EXA_API_KEY: optionalString,
  COPILOTKIT_API_KEY: optionalString,
});

export type RawEnv = Record<string, string | undefined>;

export interface Config {
  mode: Mode;
  /** Why the mode is what it is, for logs and /api/health. */
  modeReason: string;
  /** Problems worth an operator's attention; never secrets. */
  warnings: string[];
  platform: "vercel" | "lambda" | "render" | null;
  database: {
    url: string | undefined;
    driver: DatabaseDriver;
    pgliteDir: string;
    /**
     * Named (server-side cached) statements for the per-request key queries: on by default
     * for node-postgres, which halves PostgreSQL's CPU per key lookup; turn off
     * (`DATABASE_PREPARED_STATEMENTS=unnamed`) behind a transaction-mode pooler that does not
     * support prepared statements.
     */
    namedStatements: boolean;
  };
  clerk: {
    jwtKey?: string;
    secretKey?: string;
    apiUrl?: string;
    authorizedParties: string[];
    /** Verifies POST /api/webhooks/clerk (`whsec_…`); unset: that endpoint answers 500. */
    webhookSigningSecret?: string;
  };
  /** Raw KEY_ENCRYPTION_KEYS spec (`id:base64,...`); parsed by lib/crypto.ts. */
  keyEncryptionKeys: string | undefined;
  devUserId: string;
  envFile: string;
  frontendEnvFile: string | undefined;
  gemini: { model: string; baseUrl: string | undefined };
  exa: { baseUrl: string | undefined };
  allowedOrigins: string[];
  port: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** Longest wait for an upstream (Gemini, Exa) to answer or send its next chunk. */
  upstreamTimeoutMs: number;
  rateLimits: { generatePerMinute: number; keyWritesPerMinute: number };
  /**
   * Monthly spending caps per user (lib/budget.ts). `defaultMonthlyUsd`: the cap of a user who
   * never chose one (null: none). `maxMonthlyUsd`: no user's cap may exceed it, and a user may
   * not turn their cap off (null: no maximum).
   */
  budget: { defaultMonthlyUsd: number | null; maxMonthlyUsd: number | null };
  /** Provider keys from the process environment: development fallback only. */
  processEnvKeys: { gemini?: string; exa?: string; copilotkit?: string };
}

export const DEFAULT_GEMINI_MODEL = "gemini-2.5-flash";

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration: ${issues.join("; ")}`);
    this.name = "ConfigError";
  }
}

function guessDriver(url: string | undefined): DatabaseDriver {
  if (url === undefined) return "pglite";
  let host = "";
  try {
    host = new URL(url).hostname;
  } catch {
    return "pg";
  }
  return host.endsWith(".neon.tech") ? "neon-http" : "pg";
}

/** Parses an environment (default: `process.env`) into a frozen Config. Throws ConfigError. */
export function loadConfig(env: RawEnv = process.env): Readonly<Config> {
  const parsed = rawSchema.safeParse(env);
  if (!parsed.success) {
    // Name the variable and the rule, never the value.
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  }
  const e = parsed.data;
  const platform = e.VERCEL ? "vercel" : e.AWS_LAMBDA_FUNCTION_NAME ? "lambda" : e.RENDER ? "render" : null;
  const deployEnv = e.DEPLOY_ENV?.toLowerCase();
  const production = platform !== null || (deployEnv !== undefined && deployEnv !== "local");
  const mode: Mode = production ? "production" : "development";
  const modeReason = platform
    ? `running on ${platform}`
    : production
      ? `DEPLOY_ENV=${deployEnv}`
      : "not on a hosting platform and DEPLOY_ENV unset or local";

  const warnings: string[] = [];
  if (production && e.DEBUG) {
    warnings.push("DEBUG=true is ignored in production: keys come from the database only, never from .env");
  }
  const driver = e.DATABASE_DRIVER ?? guessDriver(e.DATABASE_URL);
  if (driver !== "pglite" && e.DATABASE_URL === undefined) {
    throw new ConfigError([`DATABASE_DRIVER=${driver} needs DATABASE_URL`]);
  }
  if (production && driver === "pglite") {
    warnings.push("production without DATABASE_URL uses the embedded PGlite database: data lives on this instance only");
  }
  const hasClerk = Boolean(e.CLERK_JWT_KEY || e.CLERK_SECRET_KEY);
  if (production && !hasClerk) {
    warnings.push("no CLERK_JWT_KEY or CLERK_SECRET_KEY: every protected request answers 500 server-misconfigured");
  }
  if (production && hasClerk && e.CLERK_AUTHORIZED_PARTIES.length === 0) {
    warnings.push("CLERK_AUTHORIZED_PARTIES is empty: tokens minted for any origin (and __session cookies sent cross-site) are accepted");
  }
  if (production && !e.KEY_ENCRYPTION_KEYS) {
    warnings.push("no KEY_ENCRYPTION_KEYS: key endpoints answer 500 server-misconfigured");
  }
  if (production && hasClerk && !e.CLERK_WEBHOOK_SIGNING_SECRET) {
    warnings.push("no CLERK_WEBHOOK_SIGNING_SECRET: POST /api/webhooks/clerk answers 500, so users deleted in Clerk keep their data here");
  }
  const budgetDefault = e.BUDGET_DEFAULT_USD ?? null;
  const budgetMax = e.BUDGET_MAX_USD ?? null;
  if (budgetMax !== null && (budgetDefault === null || budgetDefault > budgetMax)) {
    warnings.push(
      budgetDefault === null
        ? `BUDGET_MAX_USD is set without BUDGET_DEFAULT_USD: users who never chose a cap get the maximum (${budgetMax} USD)`
        : `BUDGET_DEFAULT_USD (${budgetDefault}) is above BUDGET_MAX_USD (${budgetMax}): the maximum applies`,
    );
  }
  if (!production && !hasClerk) {
    warnings.push(`no Clerk configuration: every request runs as DEV_USER_ID (${e.DEV_USER_ID ?? "local-dev"})`);
  }

  const config: Config = {
    mode,
    modeReason,
    warnings,
    platform,
    database: {
      url: e.DATABASE_URL,
      driver,
      pgliteDir: e.PGLITE_DIR ?? "./.data/pglite",
      namedStatements: (e.DATABASE_PREPARED_STATEMENTS ?? (driver === "pg" ? "named" : "unnamed")) === "named",
    },
    clerk: {
      jwtKey: e.CLERK_JWT_KEY,
      secretKey: e.CLERK_SECRET_KEY,
      apiUrl: e.CLERK_API_URL,
      authorizedParties: e.CLERK_AUTHORIZED_PARTIES,
      webhookSigningSecret: e.CLERK_WEBHOOK_SIGNING_SECRET,
    },
    keyEncryptionKeys: e.KEY_ENCRYPTION_KEYS,
    devUserId: e.DEV_USER_ID ?? "local-dev",
    envFile: e.ENV_FILE ?? "./.env",
    frontendEnvFile: e.FRONTEND_ENV_FILE,
    gemini: { model: e.GEMINI_MODEL ?? DEFAULT_GEMINI_MODEL, baseUrl: e.GEMINI_BASE_URL },
    exa: { baseUrl: e.EXA_BASE_URL },
    allowedOrigins: e.ALLOWED_ORIGINS,
    port: e.PORT,
    logLevel: e.LOG_LEVEL ?? "info",
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    rateLimits: {
      generatePerMinute: e.RATE_LIMIT_GENERATE_PER_MINUTE,
      keyWritesPerMinute: e.RATE_LIMIT_KEY_WRITES_PER_MINUTE,
    },
    budget: { defaultMonthlyUsd: budgetDefault, maxMonthlyUsd: budgetMax },
    processEnvKeys: production
      ? {} // fail closed: production never sees the operator's keys
      : { gemini: e.GEMINI_API_KEY, exa: e.EXA_API_KEY, copilotkit: e.COPILOTKIT_API_KEY },
  };
  return Object.freeze(config);
}
