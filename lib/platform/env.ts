/**
 * The one place that reads `process.env`. It is parsed once with zod into a frozen,
 * typed config; tests build their own with `loadConfig({...})` instead of mutating globals.
 *
 * Mode detection (docs/configuration.md "Modes", the rule table) follows docs/api-key-flows.md, made fail-closed: any
 * recognisable hosting platform, a NODE_ENV other than `development`/`test` (`production`, `staging`, …), or a
 * DEPLOY_ENV other than `local`/`development` means production, and DEBUG=true cannot undo that. The one
 * exception is `vercel dev` on a developer's machine (`VERCEL=1` with `VERCEL_ENV=development`, as
 * `vercel env pull` writes them) together with DEBUG=true. Development is what is left: `npm start`,
 * `vercel dev` or a script on a machine that gives no signal at all.
 *
 * Whether the parsed configuration is usable (Clerk, key ring, …) is lib/platform/config-check.ts's
 * question; here only values that must never be used are refused (ConfigError).
 */
import { z } from "zod";
import { parseKeyring, type Keyring } from "./crypto.js";
import type { Result } from "../http/errors.js";

export type Mode = "development" | "production";
/** The database drivers (db/client.ts): embedded PGlite, node-postgres, Neon over HTTP or WebSocket. */
export const databaseDrivers = ["pglite", "pg", "neon-http", "neon-ws"] as const;
export type DatabaseDriver = (typeof databaseDrivers)[number];

/** Empty strings count as unset, as in create-t3-app. */
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const list = optionalString.transform((v) =>
  v === undefined
    ? []
    : v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
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

/**
 * Variables a hosting platform sets in every deployment (and a developer's machine does
 * not): any one of them, set to anything, means production.
 */
export const hostingPlatforms = [
  { variable: "VERCEL", platform: "vercel", name: "Vercel" },
  { variable: "AWS_LAMBDA_FUNCTION_NAME", platform: "lambda", name: "AWS Lambda" },
  { variable: "RENDER", platform: "render", name: "Render" },
  { variable: "NETLIFY", platform: "netlify", name: "Netlify" },
  { variable: "K_SERVICE", platform: "cloud-run", name: "Google Cloud Run (or Knative)" },
  { variable: "GAE_SERVICE", platform: "app-engine", name: "Google App Engine" },
  { variable: "FLY_APP_NAME", platform: "fly", name: "Fly.io" },
  { variable: "RAILWAY_ENVIRONMENT", platform: "railway", name: "Railway" },
  { variable: "RAILWAY_ENVIRONMENT_NAME", platform: "railway", name: "Railway" },
  { variable: "DYNO", platform: "heroku", name: "Heroku" },
  { variable: "KUBERNETES_SERVICE_HOST", platform: "kubernetes", name: "Kubernetes" },
  { variable: "ECS_CONTAINER_METADATA_URI_V4", platform: "ecs", name: "Amazon ECS" },
  { variable: "ECS_CONTAINER_METADATA_URI", platform: "ecs", name: "Amazon ECS" },
  { variable: "WEBSITE_INSTANCE_ID", platform: "azure-app-service", name: "Azure App Service" },
  { variable: "CONTAINER_APP_NAME", platform: "azure-container-apps", name: "Azure Container Apps" },
] as const;

export type Platform = (typeof hostingPlatforms)[number]["platform"];

/** A provider's (or Clerk's) base URL: http(s) only, in every mode (`z.url()` alone takes `file:`, `data:`, …). */
const upstreamUrl = optionalString.pipe(z.url({ protocol: /^https?$/, error: "must be an http: or https: URL" }).optional());

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
  NODE_ENV: optionalString,
  VERCEL_ENV: optionalString,
  DATABASE_URL: optionalString,
  DATABASE_DRIVER: optionalString.pipe(z.enum(databaseDrivers).optional()),
  PGLITE_DIR: optionalString,
  DATABASE_PREPARED_STATEMENTS: optionalString.pipe(z.enum(["named", "unnamed"]).optional()),
  CLERK_JWT_KEY: optionalString,
  CLERK_SECRET_KEY: optionalString,
  CLERK_API_URL: upstreamUrl,
  CLERK_AUTHORIZED_PARTIES: list,
  CLERK_WEBHOOK_SIGNING_SECRET: webhookSecret,
  CLERK_PUBLISHABLE_KEY: optionalString,
  KEY_ENCRYPTION_KEYS: optionalString,
  DEV_USER_ID: optionalString,
  ENV_FILE: optionalString,
  FRONTEND_ENV_FILE: optionalString,
  GEMINI_MODEL: optionalString,
  GEMINI_PRICE_INPUT_PER_MILLION: usdAmount,
  GEMINI_PRICE_OUTPUT_PER_MILLION: usdAmount,
  GEMINI_BASE_URL: upstreamUrl,
  EXA_BASE_URL: upstreamUrl,
  ALLOWED_ORIGINS: list,
  HEALTH_TOKEN: optionalString.pipe(
    z.string().min(16, "must be at least 16 characters (a random secret: /api/health gives its details to whoever sends it)").optional(),
  ),
  PORT: positiveInt(3000),
  HOST: optionalString,
  LOG_LEVEL: optionalString.pipe(z.enum(["debug", "info", "warn", "error"]).optional()),
  UPSTREAM_TIMEOUT_MS: positiveInt(30_000),
  RATE_LIMIT_GENERATE_PER_MINUTE: positiveInt(10),
  RATE_LIMIT_KEY_WRITES_PER_MINUTE: positiveInt(30),
  RATE_LIMIT_KEY_CHECKS_PER_MINUTE: positiveInt(10),
  RATE_LIMIT_GATEWAY_PER_MINUTE: positiveInt(60),
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
  /** Why the mode is what it is, for logs and /api/health: names variables, never their values. */
  modeReason: string;
  /** The hosting platform recognised (the first, when several are), or null. */
  platform: Platform | null;
  /** DEBUG was set to a true value (it never makes production development; see lib/platform/config-check.ts). */
  debug: boolean;
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
    /** `pk_…`, handed to the web app by GET /api/config (public by nature; lib/platform/auth/publishable-key.ts). */
    publishableKey?: string;
  };
  /** Raw KEY_ENCRYPTION_KEYS spec (`id:base64,...`); parsed by lib/platform/crypto.ts. */
  keyEncryptionKeys: string | undefined;
  /** KEY_ENCRYPTION_KEYS parsed once (lib/platform/crypto.ts parseKeyring); undefined when unset. */
  keyring: Result<Keyring, string> | undefined;
  devUserId: string;
  envFile: string;
  frontendEnvFile: string | undefined;
  /**
   * `price`: the operator's prices for the model (GEMINI_PRICE_INPUT_PER_MILLION and
   * GEMINI_PRICE_OUTPUT_PER_MILLION, USD per million tokens), for a model lib/providers/prices.ts has no
   * row for; they replace the row when both are set.
   */
  gemini: { model: string; baseUrl: string | undefined; price: { inputPerMillion: number; outputPerMillion: number } | undefined };
  exa: { baseUrl: string | undefined };
  allowedOrigins: string[];
  /** Sent as `x-health-token`, it gives the caller /api/health's details in production (lib/system/routes/health.ts). */
  healthToken: string | undefined;
  port: number;
  /** Address the local server (`npm start`) listens on: loopback unless production asks for more. */
  host: string;
  logLevel: "debug" | "info" | "warn" | "error";
  /** Longest wait for an upstream (Gemini, Exa) to answer or send its next chunk. */
  upstreamTimeoutMs: number;
  /** Per user and minute (0: no limit); `keyChecksPerMinute`: saves with `validate: true` (an upstream key check each). */
  rateLimits: { generatePerMinute: number; keyWritesPerMinute: number; keyChecksPerMinute: number; gatewayPerMinute: number };
  /**
   * Monthly spending caps per user (lib/generation/budget.ts). `defaultMonthlyUsd`: the cap of a user who
   * never chose one (null: none). `maxMonthlyUsd`: no user's cap may exceed it, and a user may
   * not turn their cap off (null: no maximum).
   */
  budget: { defaultMonthlyUsd: number | null; maxMonthlyUsd: number | null };
  /** Provider keys from the process environment: development fallback only. */
  processEnvKeys: { gemini?: string; exa?: string; copilotkit?: string };
}

/**
 * Gemini 3.5 Flash: GA since 2026-05-19, $1.50 / $9.00 per million input / output tokens
 * (ai.google.dev/gemini-api/docs/pricing and /deprecations, read 2026-12-07; the 2.5 models
 * it replaces are shut down). docs/provider-facts.md has the table.
 */
export const DEFAULT_GEMINI_MODEL = "gemini-3.5-flash";

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration: ${issues.join("; ")}`);
    this.name = "ConfigError";
  }
}

const loopbackHosts = new Set(["127.0.0.1", "::1", "[::1]", "localhost"]);

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

interface ModeDecision {
  mode: Mode;
  modeReason: string;
  platform: Platform | null;
}

/** The mode table (docs/configuration.md); reasons name variables (and values only when they are fixed words). */
function decideMode(
  env: RawEnv,
  e: { DEBUG: boolean; DEPLOY_ENV?: string; NODE_ENV?: string; VERCEL_ENV?: string },
  assumeProduction: boolean,
): ModeDecision {
  const present = (name: string) => (env[name] ?? "").trim() !== "";
  const underVercelDev = present("VERCEL") && e.VERCEL_ENV?.toLowerCase() === "development";
  const vercelDevWithDebug = underVercelDev && e.DEBUG;
  const platforms = hostingPlatforms.filter((p) => present(p.variable) && !(p.variable === "VERCEL" && vercelDevWithDebug));
  const signals = platforms.map((p) => `${p.variable} is set (${p.name})`);
  if (assumeProduction) signals.unshift("checked as production (--production)");
  const nodeEnv = e.NODE_ENV?.toLowerCase();
  if (nodeEnv === "production") signals.push("NODE_ENV=production");
  else if (nodeEnv !== undefined && nodeEnv !== "development" && nodeEnv !== "test") {
    signals.push("NODE_ENV is set to something other than development or test");
  }
  const deployEnv = e.DEPLOY_ENV?.toLowerCase();
  if (deployEnv !== undefined && deployEnv !== "local" && deployEnv !== "development") {
    signals.push("DEPLOY_ENV is set to something other than local or development");
  }
  if (signals.length > 0) {
    const hint =
      underVercelDev && !e.DEBUG ? " (under vercel dev, VERCEL_ENV=development means development only together with DEBUG=true)" : "";
    return { mode: "production", modeReason: signals.join("; ") + hint, platform: platforms[0]?.platform ?? null };
  }
  if (vercelDevWithDebug) {
    return { mode: "development", modeReason: "vercel dev (VERCEL=1 with VERCEL_ENV=development) and DEBUG=true", platform: null };
  }
  return {
    mode: "development",
    modeReason:
      deployEnv === undefined
        ? "no hosting platform recognised, NODE_ENV is unset, development or test, and DEPLOY_ENV is unset"
        : `no hosting platform recognised, NODE_ENV is unset, development or test, and DEPLOY_ENV=${deployEnv}`,
    platform: null,
  };
}

/** Hosts a plain-http upstream may have in production: this machine only (a local proxy or sidecar). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export interface LoadOptions {
  /** Production whatever the environment says (`npm run check-config -- --production`, before deploying). */
  assumeProduction?: boolean;
}

/** Parses an environment (default: `process.env`) into a frozen Config. Throws ConfigError. */
export function loadConfig(env: RawEnv = process.env, options: LoadOptions = {}): Readonly<Config> {
  const parsed = rawSchema.safeParse(env);
  if (!parsed.success) {
    // Name the variable and the rule, never the value.
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  }
  const e = parsed.data;
  const { mode, modeReason, platform } = decideMode(env, e, options.assumeProduction === true);
  const production = mode === "production";

  const driver = e.DATABASE_DRIVER ?? guessDriver(e.DATABASE_URL);
  if (driver !== "pglite" && e.DATABASE_URL === undefined) {
    throw new ConfigError([`DATABASE_DRIVER=${driver} needs DATABASE_URL`]);
  }
  if ((e.GEMINI_PRICE_INPUT_PER_MILLION === undefined) !== (e.GEMINI_PRICE_OUTPUT_PER_MILLION === undefined)) {
    throw new ConfigError(["GEMINI_PRICE_INPUT_PER_MILLION and GEMINI_PRICE_OUTPUT_PER_MILLION go together: set both or neither"]);
  }
  if (production) {
    // Users' provider keys travel to these URLs, and CLERK_SECRET_KEY to Clerk's: in clear only to this machine.
    const plain = (["GEMINI_BASE_URL", "EXA_BASE_URL", "CLERK_API_URL"] as const).filter((name) => {
      const value = e[name];
      if (value === undefined) return false;
      const url = new URL(value);
      return url.protocol !== "https:" && !isLoopbackHost(url.hostname);
    });
    if (plain.length > 0) {
      throw new ConfigError(
        plain.map((name) => `${name}: must be an https: URL in production (http: only to a loopback host: localhost, 127.0.0.1, [::1])`),
      );
    }
  }

  const host = e.HOST ?? "127.0.0.1";
  if (!production && !loopbackHosts.has(host.toLowerCase())) {
    throw new ConfigError([
      "HOST: development serves your .env keys without sign-in, so it listens on loopback only (127.0.0.1, ::1 or localhost); 0.0.0.0 is for production platforms such as Render",
    ]);
  }
  const budgetDefault = e.BUDGET_DEFAULT_USD ?? null;
  const budgetMax = e.BUDGET_MAX_USD ?? null;

  const config: Config = {
    mode,
    modeReason,
    platform,
    debug: e.DEBUG,
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
      publishableKey: e.CLERK_PUBLISHABLE_KEY,
    },
    keyEncryptionKeys: e.KEY_ENCRYPTION_KEYS,
    keyring: e.KEY_ENCRYPTION_KEYS === undefined ? undefined : parseKeyring(e.KEY_ENCRYPTION_KEYS),
    devUserId: e.DEV_USER_ID ?? "local-dev",
    envFile: e.ENV_FILE ?? "./.env",
    frontendEnvFile: e.FRONTEND_ENV_FILE,
    gemini: {
      model: e.GEMINI_MODEL ?? DEFAULT_GEMINI_MODEL,
      baseUrl: e.GEMINI_BASE_URL,
      price:
        e.GEMINI_PRICE_INPUT_PER_MILLION !== undefined && e.GEMINI_PRICE_OUTPUT_PER_MILLION !== undefined
          ? { inputPerMillion: e.GEMINI_PRICE_INPUT_PER_MILLION, outputPerMillion: e.GEMINI_PRICE_OUTPUT_PER_MILLION }
          : undefined,
    },
    exa: { baseUrl: e.EXA_BASE_URL },
    allowedOrigins: e.ALLOWED_ORIGINS,
    healthToken: e.HEALTH_TOKEN,
    port: e.PORT,
    host,
    logLevel: e.LOG_LEVEL ?? "info",
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    rateLimits: {
      generatePerMinute: e.RATE_LIMIT_GENERATE_PER_MINUTE,
      keyWritesPerMinute: e.RATE_LIMIT_KEY_WRITES_PER_MINUTE,
      keyChecksPerMinute: e.RATE_LIMIT_KEY_CHECKS_PER_MINUTE,
      gatewayPerMinute: e.RATE_LIMIT_GATEWAY_PER_MINUTE,
    },
    budget: { defaultMonthlyUsd: budgetDefault, maxMonthlyUsd: budgetMax },
    processEnvKeys: production
      ? {} // fail closed: production never sees the operator's keys
      : { gemini: e.GEMINI_API_KEY, exa: e.EXA_API_KEY, copilotkit: e.COPILOTKIT_API_KEY },
  };
  return Object.freeze(config);
}
