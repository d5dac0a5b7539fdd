/**
 * The key path taken apart, in this process: CPU time per call of each step (ours and
 * PostgreSQL's), measured sequentially with `process.cpuUsage()` and the database backend's
 * /proc counters. CPU time is what a CPU-bound server pays per request, and unlike latency it
 * barely moves when other jobs share the machine, so these numbers explain the load results.
 */
import { readFileSync } from "node:fs";
import { createPublicKey, verify as rsaVerify } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import type { Database } from "../db/client.js";
import { apiKeys, onboardingSessions } from "../db/schema.js";
import { verifyCached } from "../lib/platform/auth/cache.js";
import { verifySessionToken } from "../lib/platform/auth/verify.js";
import { decryptKey, encryptKey, keyAad, type Keyring } from "../lib/platform/crypto.js";
import { loadConfig } from "../lib/platform/env.js";
import { newRequestId } from "../lib/app.js";
import { listKeys, userCiphertextsSql } from "../lib/keys/store.js";
import { userApiKeys } from "../lib/keys/resolver.js";
import { createLogger } from "../lib/platform/log.js";
import { createRuntime } from "../lib/platform/runtime.js";
import { TEST_AZP, type TestSigner } from "../testkit/clerk.js";
import { benchUserId } from "./seed.js";

export interface StepCost {
  /** path: a whole step of a route; part: a piece of one; option: an alternative not (or no longer) used. */
  kind?: "path" | "part" | "option";
  step: string;
  /** CPU of this process per call, µs (includes libuv threads: WebCrypto runs there). */
  nodeUs: number;
  /** CPU of the PostgreSQL backend per call, µs (0 for steps without a query). */
  postgresUs: number;
  /** Wall time per sequential call, µs. */
  wallUs: number;
  calls: number;
}

function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

async function measure(step: string, calls: number, backendPid: number | null, fn: (i: number) => unknown): Promise<StepCost> {
  // Warm the JIT and the caches: the first few hundred calls of a step cost several times more.
  for (let i = 0; i < Math.max(500, calls / 2); i++) await fn(i);
  const pgBefore = backendPid ? processCpuSeconds(backendPid) : 0;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < calls; i++) await fn(i);
  const wall = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const pgAfter = backendPid ? processCpuSeconds(backendPid) : 0;
  return {
    step,
    nodeUs: (cpu.user + cpu.system) / calls,
    postgresUs: backendPid ? ((pgAfter - pgBefore) * 1e6) / calls : 0,
    wallUs: (wall * 1000) / calls,
    calls,
  };
}

/**
 * Costs of the key path's steps. `database` must be a node-postgres database with ONE
 * connection (so its backend's counters are the queries'), seeded by bench/seed.ts.
 */
export async function measureBreakdown(options: {
  database: Database;
  keyring: Keyring;
  keyringSpec: string;
  signer: TestSigner;
  users: number;
  scale?: number;
}): Promise<StepCost[]> {
  const { database, keyring, signer } = options;
  const scale = options.scale ?? 1;
  const n = (base: number) => Math.max(50, Math.round(base * scale));
  const [{ pid }] = (await database.rows<{ pid: number }>(sql`select pg_backend_pid() as pid`)) as [{ pid: number }];
  const userAt = (i: number) => benchUserId(1 + ((i * 7919) % options.users));
  const config = loadConfig({
    DEPLOY_ENV: "production",
    CLERK_JWT_KEY: signer.publicPem,
    CLERK_AUTHORIZED_PARTIES: TEST_AZP,
    KEY_ENCRYPTION_KEYS: options.keyringSpec,
    DATABASE_URL: "postgres://bench.invalid/unused",
  });
  // Log lines are built and redacted as in production, then dropped instead of written.
  const runtime = createRuntime(config, { database, logger: createLogger({ level: "info", sink: () => {} }) });
  const now = Math.floor(Date.now() / 1000);
  const tokens = Array.from({ length: 64 }, (_, i) => signer.sign({ sub: userAt(i), exp: now + 3600 }));
  const settings = config.clerk;
  const publicKey = createPublicKey(signer.publicPem);
  const ciphertext = encryptKey(keyring, "ck_pub_bench_breakdown_key_0000000", keyAad("user_x", "copilotkit"));
  const logger = createLogger({ level: "info", sink: () => {} });

  // Shapes of the key query, for comparison with what lib/keys/store.ts ships.
  const joinQuery = (userId: string) =>
    database.db
      .select({ provider: apiKeys.provider, ciphertext: apiKeys.keyCiphertext })
      .from(apiKeys)
      .innerJoin(onboardingSessions, and(eq(apiKeys.sessionId, onboardingSessions.id), eq(onboardingSessions.userId, userId)));
  const sessionOf = (userId: ReturnType<typeof sql.placeholder> | string) =>
    database.db.select({ id: onboardingSessions.id }).from(onboardingSessions).where(eq(onboardingSessions.userId, userId));
  const buildOnce = (name: string) =>
    database.db
      .select({ provider: apiKeys.provider, ciphertext: apiKeys.keyCiphertext })
      .from(apiKeys)
      .where(eq(apiKeys.sessionId, sessionOf(sql.placeholder("userId"))))
      .prepare(name);
  const prepared = buildOnce("bench_load_ciphertexts");
  // An empty name: Drizzle keeps the built SQL, node-postgres still sends an unnamed statement.
  const builtOnce = buildOnce("");

  const steps: StepCost[] = [];
  const add = async (kind: StepCost["kind"], step: string, calls: number, db: boolean, fn: (i: number) => unknown) => {
    steps.push({ ...(await measure(step, calls, db ? pid : null, fn)), kind });
  };
  // What the routes do.
  await add("path", "floor: `SELECT 1` through Drizzle", n(3000), true, () => database.rows(sql`select 1`));
  await add(
    "path",
    "session check as `requireUser` does it (`verifyCached`: SHA-256 of the token, cache hit)",
    n(3000),
    false,
    async (i) => {
      const result = await verifyCached(tokens[i % tokens.length]!, settings);
      if (!result.ok) throw new Error(`bench token rejected: ${result.error.reason}`);
    },
  );
  await add(
    "path",
    "  on a cache miss (a new token): Clerk's verification (`verifySessionToken`, CLERK_JWT_KEY)",
    n(1500),
    false,
    async (i) => {
      const result = await verifySessionToken(tokens[i % tokens.length]!, settings);
      if (!result.ok) throw new Error(`bench token rejected: ${result.error.reason}`);
    },
  );
  await add("path", "`listKeys()` (GET api-keys): one query + 1 decrypt", n(3000), true, (i) =>
    listKeys(database, userAt(i), () => runtime.keyring()),
  );
  await add("path", "`userApiKeys()`: one query + 3 decrypts + 1 log line", n(3000), true, (i) => userApiKeys(runtime, userAt(i)));
  // Their parts.
  await add(
    "part",
    "`userCiphertextsSql()` run alone, as `userApiKeys()` does (generation composes it into its first statement)",
    n(3000),
    true,
    (i) => database.rows(userCiphertextsSql(userAt(i))),
  );
  await add("part", "`decryptKey()` (AES-256-GCM, one key)", n(10000), false, () => {
    if (!decryptKey(keyring, ciphertext, keyAad("user_x", "copilotkit")).ok) throw new Error("decrypt failed");
  });
  await add("part", "one info log line (JSON + redaction, not written)", n(10000), false, (i) =>
    logger.info(`[PROD MODE] Using database for user ${userAt(i)}`, { userId: userAt(i) }),
  );
  await add("part", "`newRequestId()` (every request, floor included)", n(10000), false, () => newRequestId());
  // Options not taken (or taken by this change): what each would cost.
  await add("option", "key query as first written: two-table join, built by Drizzle per call", n(3000), true, (i) => joinQuery(userAt(i)));
  await add("option", "key query as a subquery, built by Drizzle per call", n(3000), true, (i) =>
    database.db
      .select({ provider: apiKeys.provider, ciphertext: apiKeys.keyCiphertext })
      .from(apiKeys)
      .where(eq(apiKeys.sessionId, sessionOf(userAt(i)))),
  );
  await add("option", 'key query as a subquery built once (`.prepare("")`, as `listKeys()` ships)', n(3000), true, (i) =>
    builtOnce.execute({ userId: userAt(i) }),
  );
  await add("option", "key query as a named prepared statement (`.prepare(name)`)", n(3000), true, (i) =>
    prepared.execute({ userId: userAt(i) }),
  );
  await add("option", "RSA-2048 signature check alone (node:crypto, key parsed once)", n(3000), false, (i) => {
    const [h, p, s] = tokens[i % tokens.length]!.split(".") as [string, string, string];
    if (!rsaVerify("sha256", Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, "base64url"))) throw new Error("bad signature");
  });
  return steps;
}
