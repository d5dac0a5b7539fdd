/**
 * Keys at rest: no plaintext anywhere in the database, ciphertexts bound to their row
 * (user and provider), and key rotation with `reencryptAll` and the `keys:reencrypt` CLI.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql, type SQL } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateDatabase, openDatabase, type Database } from "../../db/client.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { reencryptAll } from "../../lib/keys/reencrypt.js";
import { createLogger, memorySink } from "../../lib/platform/log.js";
import { backends, backendLabel, type Backend, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const tsxCli = createRequire(import.meta.url).resolve("tsx/cli");
const noRateLimit = { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0" };

type Keys = ReturnType<typeof sampleKeys>;

/** Every row of every table (and the migration bookkeeping) as text. */
async function dumpDatabase(database: Database): Promise<{ tables: string[]; text: string }> {
  const tables = await database.rows<{ schema: string; name: string }>(sql`
    select table_schema as schema, table_name as name from information_schema.tables
    where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
    order by 1, 2
  `);
  let text = "";
  for (const { schema, name } of tables) {
    const rows = await database.rows<{ row: string }>(sql`select t::text as row from ${sql.identifier(schema)}.${sql.identifier(name)} t`);
    text += `\n-- ${schema}.${name}\n` + rows.map((r) => r.row).join("\n");
  }
  return { tables: tables.map((t) => `${t.schema}.${t.name}`), text };
}

/** The ways a plaintext key could sit in a table without being encrypted. */
function plaintextForms(key: string): string[] {
  const middle = key.slice(4, -4); // without a known prefix and without the hint
  return [
    key,
    middle,
    Buffer.from(key).toString("base64"),
    Buffer.from(key).toString("base64url"),
    Buffer.from(key).toString("hex"),
    key.split("").reverse().join(""),
  ];
}

async function keyRow(database: Database, userId: string, provider: string) {
  const [row] = await database.rows<{ id: number; key_ciphertext: string; key_version: string }>(sql`
    select k.id, k.key_ciphertext, k.key_version from api_keys k join onboarding_sessions s on s.id = k.session_id
    where s.user_id = ${userId} and k.provider = ${provider}
  `);
  if (!row) throw new Error(`no ${provider} row for ${userId}`);
  return row;
}

async function save(rt: TestRuntime, userId: string, body: Record<string, unknown>) {
  return expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body })), 200);
}

/** Runs the CLI as an operator would (`npx tsx scripts/keys-reencrypt.ts`), with only the given environment. */
function runCli(env: Record<string, string>, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [tsxCli, "scripts/keys-reencrypt.ts", ...args],
      { cwd: repoRoot, env, encoding: "utf8", timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const count = async (database: Database, query: SQL) => Number((await database.rows<{ n: number | string }>(query))[0]?.n);

for (const backend of backends) {
  describe.skipIf(!backend.available)(`encryption at rest ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    let dev: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      // One keyring for both modes: they share the database.
      const KEY_ENCRYPTION_KEYS = generateKeyringEntry("test1");
      prod = makeRuntime({ database, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS } });
      dev = makeRuntime({ database, mode: "development", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS, DEV_USER_ID: "user_enc_dev" } });
    });
    afterAll(async () => {
      prod.cleanup();
      dev.cleanup();
      await database.destroy();
    });

    it("the database holds no plaintext key, in any table", async () => {
      const saved: Keys[] = [];
      for (const [i, user] of ["user_plain_1", "user_plain_2", "user_plain_3"].entries()) {
        const keys = sampleKeys(100 + i);
        await save(prod, user, keys);
        saved.push(keys);
      }
      // Replace one key (old ciphertext overwritten, audit row added) and save in development too.
      const replacement = sampleKeys(110);
      await save(prod, "user_plain_1", { gemini: replacement.gemini });
      saved.push(replacement);
      const devKeys = sampleKeys(111);
      await expectStatus(await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: devKeys })), 200);
      saved.push(devKeys);

      const { tables, text } = await dumpDatabase(database);
      expect(tables).toEqual(expect.arrayContaining(["public.api_keys", "public.key_events", "public.onboarding_sessions"]));
      // Not vacuous: the rows are there, with their hints.
      expect(await count(database, sql`select count(*) as n from api_keys`)).toBeGreaterThanOrEqual(12);
      expect(text).toContain("…" + replacement.gemini.slice(-4));
      for (const keys of saved) {
        for (const [provider, key] of Object.entries(keys)) {
          for (const form of plaintextForms(key)) {
            expect(text.includes(form), `${provider} key (or an encoding of it) found in the database dump`).toBe(false);
          }
        }
      }
      // And the keys are really there, encrypted: each resolves for its owner.
      expect((await userApiKeys(prod.runtime, "user_plain_1")).keys).toEqual({ ...saved[0], gemini: replacement.gemini });
      expect((await userApiKeys(prod.runtime, "user_enc_dev")).keys).toEqual(devKeys);
    });

    it("a ciphertext copied onto another user's row does not decrypt there", async () => {
      const [a, b] = ["user_move_a", "user_move_b"];
      const [ka, kb] = [sampleKeys(201), sampleKeys(202)];
      await save(prod, a, ka);
      await save(prod, b, kb);

      // The attacker with database access copies A's ciphertexts into B's rows.
      for (const provider of ["copilotkit", "gemini"]) {
        const from = await keyRow(database, a, provider);
        const to = await keyRow(database, b, provider);
        await database.rows(sql`update api_keys set key_ciphertext = ${from.key_ciphertext} where id = ${to.id}`);
        expect((await keyRow(database, b, provider)).key_ciphertext).toBe(from.key_ciphertext);
      }
      const logStart = prod.logs.length;

      const resolved = await userApiKeys(prod.runtime, b);
      expect(resolved.source).toBe("database");
      expect(resolved.keys).toEqual({ exa: kb.exa });
      expect([...resolved.unreadable].sort()).toEqual(["copilotkit", "gemini"]);
      expect(JSON.stringify(resolved)).not.toContain(ka.copilotkit);
      expect(JSON.stringify(resolved)).not.toContain(ka.gemini);

      const listed = await expectStatus(await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token(b) })), 200);
      const text = JSON.stringify(listed);
      expect(text).not.toContain(ka.copilotkit);
      expect(text).not.toContain(ka.gemini);
      const copilot = listed.keys.find((k: { provider: string }) => k.provider === "copilotkit");
      expect(copilot).toBeDefined();
      expect(copilot.value).toBeUndefined();

      const warnings = prod.logs.slice(logStart).filter((l) => l.includes("could not be decrypted"));
      expect(warnings.length).toBeGreaterThanOrEqual(2);
      for (const line of warnings) {
        expect(JSON.parse(line)).toMatchObject({ level: "warn", userId: b, reason: "auth-failed" });
      }
      for (const line of prod.logs) for (const key of [...Object.values(ka), ...Object.values(kb)]) expect(line).not.toContain(key);

      // A is untouched.
      expect((await userApiKeys(prod.runtime, a)).keys).toEqual(ka);

      // Within one user, a ciphertext moved to another provider's row fails too.
      const gemini = await keyRow(database, a, "gemini");
      const exa = await keyRow(database, a, "exa");
      await database.rows(sql`update api_keys set key_ciphertext = ${gemini.key_ciphertext} where id = ${exa.id}`);
      const moved = await userApiKeys(prod.runtime, a);
      expect(moved.keys).toEqual({ gemini: ka.gemini, copilotkit: ka.copilotkit });
      expect(moved.unreadable).toEqual(["exa"]);
    });

    describe("key rotation", () => {
      const oldEntry = generateKeyringEntry("old");
      const newEntry = generateKeyringEntry("new");
      const rotated = `${newEntry},${oldEntry}`;
      const materials = [oldEntry, newEntry].map((e) => e.slice(e.indexOf(":") + 1));

      it("reencryptAll re-encrypts every row under the new first key and leaves undecryptable rows alone", async () => {
        const db = await backend.open();
        const before = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: oldEntry } });
        const during = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: rotated } });
        const after = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: newEntry } });
        const oldOnly = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: oldEntry } });
        try {
          const users = Array.from({ length: 7 }, (_, i) => `user_rot_${i}`);
          const saved = new Map<string, Partial<Keys>>();
          for (const [i, user] of users.entries()) {
            const keys = sampleKeys(300 + i);
            await save(before, user, keys);
            saved.set(user, keys);
          }
          const partial = { gemini: sampleKeys(399).gemini };
          await save(before, "user_rot_partial", partial);
          saved.set("user_rot_partial", partial);
          // One tampered row: user_rot_bad's gemini holds user_rot_0's ciphertext.
          await save(before, "user_rot_bad", { gemini: sampleKeys(398).gemini });
          const stolen = await keyRow(db, "user_rot_0", "gemini");
          const bad = await keyRow(db, "user_rot_bad", "gemini");
          await db.rows(sql`update api_keys set key_ciphertext = ${stolen.key_ciphertext} where id = ${bad.id}`);
          const total = 7 * 3 + 1 + 1;
          expect(await count(db, sql`select count(*) as n from api_keys where key_version = 'old'`)).toBe(total);
          const updatedBefore = await db.rows<{ id: number; updated_at: unknown }>(
            sql`select id, updated_at::text from api_keys order by id`,
          );

          const log = memorySink();
          const summary = await reencryptAll(db, await during.runtime.keyring(), {
            batchSize: 4,
            logger: createLogger({ sink: log.sink }),
          });
          expect(summary).toEqual({ scanned: total, reencrypted: total - 1, failed: 1, skipped: 0 });

          const rows = await db.rows<{ id: number; key_version: string; key_ciphertext: string }>(
            sql`select id, key_version, key_ciphertext from api_keys order by id`,
          );
          expect(rows).toHaveLength(total); // nothing deleted
          for (const row of rows) {
            if (Number(row.id) === Number(bad.id)) {
              expect(row).toMatchObject({ key_version: "old", key_ciphertext: stolen.key_ciphertext });
            } else {
              expect(row.key_version).toBe("new");
              expect(row.key_ciphertext.startsWith("new:")).toBe(true);
            }
          }
          // The key did not change, so neither does its updatedAt.
          expect(await db.rows(sql`select id, updated_at::text from api_keys order by id`)).toEqual(updatedBefore);

          // The failure is reported with user, provider and reason, and no key material.
          const failures = log.lines.filter((l) => l.includes("could not be re-encrypted"));
          expect(failures).toHaveLength(1);
          expect(JSON.parse(failures[0]!)).toMatchObject({ userId: "user_rot_bad", provider: "gemini", reason: "auth-failed" });
          const allKeys = [...saved.values()].flatMap((k) => Object.values(k));
          for (const line of log.lines) {
            for (const secret of [...allKeys, ...materials, ...rows.map((r) => r.key_ciphertext), stolen.key_ciphertext]) {
              expect(line).not.toContain(secret);
            }
            expect(line).not.toContain("[redacted]");
          }

          // One audit row per re-encrypted key, on the new key, without key material.
          const events = await db.rows<{ user_id: string; provider: string; key_version: string; request_id: string }>(
            sql`select user_id, provider, key_version, request_id from key_events where action = 'reencrypt'`,
          );
          expect(events).toHaveLength(total - 1);
          expect(new Set(events.map((e) => e.key_version))).toEqual(new Set(["new"]));
          expect(new Set(events.map((e) => e.request_id)).size).toBe(1);
          expect(events.some((e) => e.user_id === "user_rot_bad")).toBe(false);

          // Fingerprints moved to the new key: saving an unchanged key after the rotation is still a no-op.
          const unchanged = await expectStatus(
            await after.fetch(
              request("POST", "/api/onboarding/api-keys", {
                token: after.token(users[0]!),
                body: { provider: "exa", api_key: saved.get(users[0]!)!.exa },
              }),
            ),
            200,
          );
          expect(unchanged).toMatchObject({ saved: [], unchanged: ["exa"] });

          // Every key still resolves with the rotated keyring, then with the new key alone...
          for (const runtime of [during, after]) {
            for (const [user, keys] of saved) {
              expect((await userApiKeys(runtime.runtime, user)).keys, `${user}`).toEqual(keys);
            }
          }
          // ...and no longer with the old key alone: the rows really were re-encrypted.
          for (const [user, keys] of saved) {
            const stale = await userApiKeys(oldOnly.runtime, user);
            expect(stale.keys).toEqual({});
            expect([...stale.unreadable].sort()).toEqual(Object.keys(keys).sort());
          }

          // A second run finds only the row it cannot read.
          expect(await reencryptAll(db, await during.runtime.keyring(), { batchSize: 1 })).toEqual({
            scanned: 1,
            reencrypted: 0,
            failed: 1,
            skipped: 0,
          });
        } finally {
          for (const rt of [before, during, after, oldOnly]) rt.cleanup();
          await db.destroy();
        }
      });

      it("reencryptAll leaves a key saved while it ran to the newer write", async () => {
        const db = await backend.open();
        const before = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: oldEntry } });
        const during = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: rotated } });
        try {
          const first = sampleKeys(401);
          const second = sampleKeys(402);
          await save(before, "user_race", first);
          // The user saves a new Gemini key (still under the old key, from an instance not yet
          // rotated) right after the job read its batch and before it writes.
          let interleaved = false;
          const racing: Database = {
            ...db,
            async rows<T>(query: SQL): Promise<T[]> {
              const result = await db.rows<T>(query);
              if (!interleaved) {
                interleaved = true;
                await save(before, "user_race", { gemini: second.gemini });
              }
              return result;
            },
          };
          const summary = await reencryptAll(racing, await during.runtime.keyring(), { batchSize: 10 });
          expect(interleaved).toBe(true);
          expect(summary).toEqual({ scanned: 3, reencrypted: 2, failed: 0, skipped: 1 });
          // The newer key wins; the stale value read by the job was not written back.
          const expected = { ...first, gemini: second.gemini };
          expect((await userApiKeys(during.runtime, "user_race")).keys).toEqual(expected);
          expect((await keyRow(db, "user_race", "gemini")).key_version).toBe("old");
          // The next run picks it up.
          expect(await reencryptAll(db, await during.runtime.keyring())).toEqual({ scanned: 1, reencrypted: 1, failed: 0, skipped: 0 });
          expect((await userApiKeys(during.runtime, "user_race")).keys).toEqual(expected);
        } finally {
          before.cleanup();
          during.cleanup();
          await db.destroy();
        }
      });

      it("the keys:reencrypt CLI re-encrypts, prints counts and no key material, and exits 1 on failures", async () => {
        const cli = await cliDatabase(backend);
        let db = cli.database;
        const before = makeRuntime({ database: db, mode: "production", env: { ...noRateLimit, KEY_ENCRYPTION_KEYS: oldEntry } });
        try {
          const saved = new Map<string, Keys>();
          for (const i of [0, 1, 2]) {
            const keys = sampleKeys(500 + i);
            await save(before, `user_cli_${i}`, keys);
            saved.set(`user_cli_${i}`, keys);
          }
          await save(before, "user_cli_bad", { exa: sampleKeys(599).exa });
          const stolen = await keyRow(db, "user_cli_0", "exa");
          const bad = await keyRow(db, "user_cli_bad", "exa");
          await db.rows(sql`update api_keys set key_ciphertext = ${stolen.key_ciphertext} where id = ${bad.id}`);
          const oldCiphertexts = (await db.rows<{ c: string }>(sql`select key_ciphertext as c from api_keys`)).map((r) => r.c);

          const env = { ...cli.childEnv, DEPLOY_ENV: "production", KEY_ENCRYPTION_KEYS: rotated, LOG_LEVEL: "info" };
          await cli.release(db);
          const first = await runCli(env, ["--batch-size=2"]);
          expect(first.stdout, first.stderr).toContain("scanned 10, re-encrypted 9, failed 1, skipped 0");
          expect(first.stdout).toContain("current key new");
          expect(first.code, first.stderr).toBe(1);
          const failure = first.stderr.split("\n").find((l) => l.includes("could not be re-encrypted"));
          expect(failure, first.stderr).toBeDefined();
          expect(JSON.parse(failure!)).toMatchObject({ userId: "user_cli_bad", provider: "exa", reason: "auth-failed" });

          // The operator deals with the unreadable row (here: deletes it); the next run is clean.
          db = await cli.acquire();
          await db.rows(sql`delete from api_keys where id = ${bad.id}`);
          await cli.release(db);
          const second = await runCli(env);
          expect(second.code, second.stderr).toBe(0);
          expect(second.stdout).toContain("scanned 0, re-encrypted 0, failed 0, skipped 0");

          db = await cli.acquire();
          const rows = await db.rows<{ c: string; v: string }>(sql`select key_ciphertext as c, key_version as v from api_keys`);
          expect(rows).toHaveLength(9);
          expect(new Set(rows.map((r) => r.v))).toEqual(new Set(["new"]));
          const after = makeRuntime({ database: db, mode: "production", env: { KEY_ENCRYPTION_KEYS: newEntry } });
          for (const [user, keys] of saved) expect((await userApiKeys(after.runtime, user)).keys).toEqual(keys);
          after.cleanup();

          const output = [first.stdout, first.stderr, second.stdout, second.stderr].join("\n");
          const secrets = [
            ...[...saved.values()].flatMap((k) => Object.values(k)),
            sampleKeys(599).exa,
            ...materials,
            ...oldCiphertexts,
            ...rows.map((r) => r.c),
          ];
          for (const secret of secrets) expect(output).not.toContain(secret);
          expect(output).not.toContain("[redacted]");
        } finally {
          before.cleanup();
          await cli.destroy(db);
        }
      }, 180_000); // two child processes, each starting tsx and (PGlite) a WASM database
    });
  });
}

/**
 * A database the CLI child process can open too: the test PostgreSQL database, or PGlite in a
 * temporary directory, which one process at a time may hold: `release` closes ours before the
 * child runs and `acquire` opens it again (both no-ops on PostgreSQL).
 */
async function cliDatabase(backend: Backend): Promise<{
  database: Database;
  childEnv: Record<string, string>;
  release(db: Database): Promise<void>;
  acquire(): Promise<Database>;
  destroy(db: Database): Promise<void>;
}> {
  if (backend.name === "postgres") {
    const db = await backend.open();
    return {
      database: db,
      childEnv: { DATABASE_URL: db.url! },
      release: async () => {},
      acquire: async () => db,
      destroy: () => db.destroy(),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), "byok-cli-pglite-"));
  const open = () => openDatabase({ driver: "pglite", pgliteDir: dir });
  const db = await open();
  await migrateDatabase(db);
  return {
    database: db,
    childEnv: { PGLITE_DIR: dir },
    release: (current) => current.close(),
    acquire: open,
    destroy: async (current) => {
      await current.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
