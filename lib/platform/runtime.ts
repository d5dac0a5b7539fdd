/**
 * The services a request runs with: config, logger, database and key ring. One runtime per
 * serverless instance (built from `process.env` on first use by `processRuntime()`); tests
 * and the local server build their own with `createRuntime(config, …)` and hand it to
 * `createApp`. Domain code receives them as `Deps` (the runtime bound to one request),
 * never the HTTP context.
 */
import { loadConfig, type Config } from "./env.js";
import { createLogger, type Logger, type LogSink } from "./log.js";
import { AppError } from "../http/errors.js";
import { parseKeyring, refusedEntries, type Keyring } from "./crypto.js";
import { EnvFileWriter } from "./dev/env-file.js";
import { configProblems, logConfigProblems, type ConfigProblem } from "./config-check.js";
import type { Database } from "../../db/client.js";

export interface Runtime {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  /** The database, opened on first use and shared by every request of this instance. */
  database(): Promise<Database>;
  /** The key ring for encrypting keys; development generates one into .env when missing. */
  keyring(): Promise<Keyring>;
  /**
   * The configuration's problems (lib/platform/config-check.ts), worked out and logged once per
   * runtime: the app asks on every request, so the first request of an instance reports them.
   */
  configProblems(): readonly ConfigProblem[];
  readonly envWriter: EnvFileWriter;
  /** Per-instance flags, such as the once-only "[DEV MODE] Using .env file" line. */
  readonly once: Set<string>;
}

/** A runtime bound to one request: its logger carries the request id. */
export interface Deps extends Runtime {
  readonly requestId: string;
  /** The id the server made for this request (the same as requestId unless the client sent its own). */
  readonly serverRequestId: string;
}

export function bindRequest(runtime: Runtime, requestId: string, serverRequestId: string = requestId): Deps {
  return {
    config: runtime.config,
    logger: runtime.logger.scope({ requestId }),
    database: runtime.database,
    keyring: runtime.keyring,
    configProblems: runtime.configProblems,
    envWriter: runtime.envWriter,
    once: runtime.once,
    requestId,
    serverRequestId,
  };
}

export interface RuntimeOptions {
  logger?: Logger;
  logSink?: LogSink;
  /** A database the caller owns (tests); otherwise one is opened from the config. */
  database?: Database | (() => Promise<Database>);
  /** The configuration's problems when the caller already checked (and logged) them, as `npm start` does. */
  configProblems?: readonly ConfigProblem[];
}

export function createRuntime(config: Readonly<Config>, options: RuntimeOptions = {}): Runtime {
  const logger = options.logger ?? createLogger({ level: config.logLevel, sink: options.logSink });
  const envWriter = new EnvFileWriter();
  let databasePromise: Promise<Database> | undefined;
  let keyringPromise: Promise<Keyring> | undefined;
  let problems = options.configProblems;

  const openConfigured = async (): Promise<Database> => {
    const { openDatabase } = await import("../../db/client.js");
    return openDatabase({
      driver: config.database.driver,
      url: config.database.url,
      pgliteDir: config.database.pgliteDir,
      namedStatements: config.database.namedStatements,
    });
  };

  const runtime: Runtime = {
    config,
    logger,
    envWriter,
    once: new Set(),
    database() {
      if (!databasePromise) {
        const source = options.database;
        databasePromise = source === undefined ? openConfigured() : typeof source === "function" ? source() : Promise.resolve(source);
        // A failed open (database down) must be retried by the next request, not cached.
        databasePromise.catch(() => {
          databasePromise = undefined;
        });
      }
      return databasePromise;
    },
    keyring() {
      if (!keyringPromise) {
        keyringPromise = loadKeyring(config, envWriter, logger, () => runtime.database());
        keyringPromise.catch(() => {
          keyringPromise = undefined;
        });
      }
      return keyringPromise;
    },
    configProblems() {
      if (problems === undefined) {
        problems = Object.freeze(configProblems(config));
        logConfigProblems(problems, logger);
      }
      return problems;
    },
  };
  return runtime;
}

/** What a caller of a key endpoint learns about a broken key ring: nothing more (the log says which). */
const keyringMisconfigured = () =>
  new AppError("server-misconfigured", {
    detail: "key encryption is not configured correctly on this deployment; no key can be stored or read",
    action: "the operator must fix KEY_ENCRYPTION_KEYS (npm run check-config says how)",
  });

async function loadKeyring(
  config: Readonly<Config>,
  envWriter: EnvFileWriter,
  logger: Logger,
  database: () => Promise<Database>,
): Promise<Keyring> {
  let parsed = config.keyring;
  if (!parsed && config.mode === "development") {
    const { developmentKeyringSpec } = await import("./dev/keyring.js");
    parsed = parseKeyring(await developmentKeyringSpec(config.envFile, envWriter, logger, database));
  }
  if (!parsed) {
    logger.error("KEY_ENCRYPTION_KEYS is not set: production cannot store or read keys without it");
    throw keyringMisconfigured();
  }
  if (!parsed.ok) {
    // The detail names entries by position, never by id or content; still, it is the operator's to read.
    logger.error("KEY_ENCRYPTION_KEYS is invalid", { problem: parsed.error });
    throw keyringMisconfigured();
  }
  const refused = refusedEntries(parsed.value, config.mode);
  if (refused.length > 0) {
    logger.error("KEY_ENCRYPTION_KEYS refused: an entry is not 32 random bytes", {
      entries: refused.map((weak) => `entry ${weak.position}: ${weak.reason}`),
    });
    throw keyringMisconfigured();
  }
  return parsed.value;
}

let processDefault: Runtime | undefined;

/**
 * The instance's runtime, built from `process.env` on first use. Throws ConfigError while the
 * environment does not parse (not cached: the next request tries again).
 */
export function processRuntime(): Runtime {
  processDefault ??= createRuntime(loadConfig());
  return processDefault;
}
