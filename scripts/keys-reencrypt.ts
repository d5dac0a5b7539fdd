/**
 * `npm run keys:reencrypt [-- --batch-size=N]`: re-encrypts every stored key under the
 * current KEY_ENCRYPTION_KEYS entry (the first). Configuration as for `npm start`: the real
 * environment, plus the `.env` file in development only.
 *
 * Prints one summary line (counts only, never key material) and exits 0 when every row is
 * on the current key, 1 when some rows could not be decrypted (see the log lines naming
 * user and provider), 2 when it could not run (configuration, database).
 */
import { refusedEntries } from "../lib/platform/crypto.js";
import { createLogger, redact } from "../lib/platform/log.js";
import { failer, loadConfigOrFail } from "./cli.js";
import { openDatabase, type Database } from "../db/client.js";
import { reencryptAll } from "../lib/keys/reencrypt.js";

const usage = "usage: npm run keys:reencrypt [-- --batch-size=N]";

const fail: (message: string) => never = failer("keys:reencrypt", 2);

function parseArgs(argv: readonly string[]): { batchSize: number } {
  let batchSize = 100;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    const match = /^--batch-size(?:=(.*))?$/.exec(arg);
    if (!match) fail(`unknown argument ${JSON.stringify(arg)}; ${usage}`);
    const value = match[1] ?? argv[++i];
    if (value === undefined || !/^[1-9]\d{0,5}$/.test(value)) fail(`--batch-size needs a whole number from 1 to 999999; ${usage}`);
    batchSize = Number(value);
  }
  return { batchSize };
}

async function main(): Promise<void> {
  const { batchSize } = parseArgs(process.argv.slice(2));
  const config = loadConfigOrFail(fail);
  const logger = createLogger({ level: config.logLevel });
  const keyring = config.keyring;
  if (!keyring) fail("KEY_ENCRYPTION_KEYS is not set; put the new key first and keep the old ones after it");
  if (!keyring.ok) fail(`KEY_ENCRYPTION_KEYS is invalid: ${keyring.error}`);
  const [weakCurrent] = refusedEntries(keyring.value, "reencrypt");
  if (weakCurrent) {
    fail(
      `KEY_ENCRYPTION_KEYS entry 1 (the key rows would be re-encrypted under) is not 32 random bytes (${weakCurrent.reason}); ` +
        "put a random key first (npm run check-config says how to make one)",
    );
  }

  let database: Database;
  try {
    database = await openDatabase({ driver: config.database.driver, url: config.database.url, pgliteDir: config.database.pgliteDir });
  } catch (error) {
    fail(`could not open the ${config.database.driver} database (${error instanceof Error ? error.name : "error"})`);
  }
  let summary: Awaited<ReturnType<typeof reencryptAll>>;
  try {
    summary = await reencryptAll(database, keyring.value, { batchSize, logger });
  } catch (error) {
    await database.close().catch(() => {});
    // Drizzle's query errors quote the SQL parameters (ciphertexts): print only the driver's cause.
    const cause =
      error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.name : "error";
    fail(`re-encryption stopped: ${redact(cause.slice(0, 300))}`);
  }
  await database.close().catch(() => {});

  process.stdout.write(
    `keys:reencrypt: current key ${keyring.value.current.id}; scanned ${summary.scanned}, re-encrypted ${summary.reencrypted}, ` +
      `failed ${summary.failed}, skipped ${summary.skipped}\n`,
  );
  if (summary.failed > 0) {
    process.stderr.write(
      `keys:reencrypt: ${summary.failed} stored key(s) could not be decrypted with any KEY_ENCRYPTION_KEYS entry; ` +
        "they were left unchanged (see the log lines for user and provider); keep the old keys until they are resolved\n",
    );
    process.exit(1);
  }
  process.exit(0);
}

main().catch((error) => {
  fail(`failed: ${error instanceof Error ? error.name : "error"}`);
});
