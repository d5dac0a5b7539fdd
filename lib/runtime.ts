/**
 * The runtime a handler runs with: config, logger, database and key ring. Functions use the
 * process-wide default built from `process.env` on first use (one per serverless instance);
 * tests and the local server run handlers inside `withRuntime(runtime, fn)` instead of
 * mutating globals.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { loadConfig, type Config } from "./env.js";
import { createLogger, type Logger, type LogSink } from "./log.js";
import { AppError } from "./http/errors.js";
import { generateKeyringEntry, parseKeyring, type Keyring } from "./crypto.js";
import { EnvFileWriter, readEnvFile } from "./keys/env-file.js";
import type { Database } from "../db/client.js";

export interface Runtime {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  /** The database, opened on first use and shared by every request of this instance. */
  database(): Promise<Database>;
  /** The key ring for encrypting keys; development generates one into .env when missing. */
  keyring(): Promise<Keyring>;
  readonly envWriter: EnvFileWriter;
  /** Per-instance flags, such as the once-only "[DEV MODE] Using .env file" line. */
  readonly once: Set<string>;
}

export interface RuntimeOptions {
  logger?: Logger;
  logSink?: LogSink;
  /** A database the caller owns (tests); otherwise one is opened from the config. */
  database?: Database | (() => Promise<Database>);
}

export function createRuntime(config: Readonly<Config>, options: RuntimeOptions = {}): Runtime {
  const logger = options.logger ?? createLogger({ level: config.logLevel, sink: options.logSink });
  const envWriter = new EnvFileWriter();
  let databasePromise: Promise<Database> | undefined;
  let keyringPromise: Promise<Keyring> | undefined;

  const openConfigured = async (): Promise<Database> => {
    const { openDatabase } = await import("../db/client.js");
    return openDatabase({
      driver: config.database.driver,
      url: config.database.url,
      pgliteDir: config.database.pgliteDir,
      namedStatements: config.database.namedStatements,
    });
  };

  return {
    config,
    logger,
    envWriter,
    once: new Set(),
    database() {
      if (!databasePromise) {
        const source = options.database;
        databasePromise =
          source === undefined ? openConfigured() : typeof source === "function" ? source() : Promise.resolve(source);
        // A failed open (database down) must be retried by the next request, not cached.
        databasePromise.catch(() => {
          databasePromise = undefined;
        });
      }
      return databasePromise;
    },
    keyring() {
      if (!keyringPromise) {
        keyringPromise = loadKeyring(config, envWriter, logger);
        keyringPromise.catch(() => {
          keyringPromise = undefined;
        });
      }
      return keyringPromise;
    },
  };
}

async function loadKeyring(config: Readonly<Config>, envWriter: EnvFileWriter, logger: Logger): Promise<Keyring> {
  let spec = config.keyEncryptionKeys;
  if (!spec && config.mode === "development") {
    // The .env file may have gained one since this process started.
    spec = (await readEnvFile(config.envFile)).KEY_ENCRYPTION_KEYS;
    if (!spec) {
      spec = generateKeyringEntry();
      await envWriter.set(config.envFile, { KEY_ENCRYPTION_KEYS: spec });
      logger.warn("generated a development KEY_ENCRYPTION_KEYS into the .env file", { envFile: config.envFile });
    }
  }
  if (!spec) {
    throw new AppError("server-misconfigured", {
      detail: "KEY_ENCRYPTION_KEYS is not set; production cannot store or read keys without it",
      action: "set KEY_ENCRYPTION_KEYS to id:base64(32 bytes); see .env.example",
    });
  }
  const parsed = parseKeyring(spec);
  if (!parsed.ok) {
    throw new AppError("server-misconfigured", { detail: `KEY_ENCRYPTION_KEYS is invalid: ${parsed.error}` });
  }
  return parsed.value;
}

const storage = new AsyncLocalStorage<Runtime>();
let processRuntime: Runtime | undefined;

/** The runtime of the current call: the one set by withRuntime, or the process default. */
export function getRuntime(): Runtime {
  const scoped = storage.getStore();
  if (scoped) return scoped;
  processRuntime ??= createRuntime(loadConfig());
  return processRuntime;
}

/** Runs fn (a handler call) with the given runtime. */
export function withRuntime<T>(runtime: Runtime, fn: () => T): T {
  return storage.run(runtime, fn);
}
