/**
 * Losing the development encryption key is loud (lib/platform/dev/keyring.ts). Following the README
 * after a first run (`cp .env.example .env`) wipes the generated KEY_ENCRYPTION_KEYS line;
 * the next save used to generate a new key silently, and every stored key became unreadable.
 * Now generation is refused while stored keys are sealed with an id we do not have, naming
 * the id and how to recover, and recovering (restoring the line, or deleting the keys) works
 * without a restart.
 */
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import dotenv from "dotenv";
import { sql } from "drizzle-orm";
import { backendLabel, backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys } from "../helpers/runtime.js";

/** Development without KEY_ENCRYPTION_KEYS; `envFile` shared between runtimes (default: the runtime's own temp file). */
const devEnv = (envFile?: string) => ({
  KEY_ENCRYPTION_KEYS: undefined,
  DEV_USER_ID: "user_lost_key",
  ...(envFile === undefined ? {} : { ENV_FILE: envFile }),
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`a lost development key ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await backend.open();
    });
    afterAll(async () => {
      await database?.destroy();
    });

    it("is not replaced by a new one: 500 naming the missing key id and how to recover, .env and database untouched", async () => {
      // First run: a key is saved and a development key generated into .env.
      const firstRun = makeRuntime({ database, mode: "development", env: devEnv() });
      const envFile = firstRun.envFile;
      const keys = sampleKeys(7100);
      await expectStatus(await firstRun.fetch(request("POST", "/api/onboarding/api-keys", { body: keys })), 200);
      const generatedLine = dotenv.parse(readFileSync(envFile)).KEY_ENCRYPTION_KEYS!;
      const keyId = generatedLine.slice(0, generatedLine.indexOf(":"));
      expect(keyId).toMatch(/^k\d{8}-[0-9a-f]{4}$/);

      // The README's `cp .env.example .env`: the generated line is gone.
      copyFileSync(".env.example", envFile);
      const before = readFileSync(envFile);
      const rowsBefore = await database.rows(sqlAllKeys());

      // A restarted server (a new runtime) is asked to save a key.
      const restarted = makeRuntime({ database, mode: "development", env: devEnv(envFile) });
      const response = await restarted.fetch(request("POST", "/api/onboarding/api-keys", { body: { gemini: sampleKeys(7101).gemini } }));
      const body = await expectStatus(response, 500);
      expect(body.code).toBe("server-misconfigured");
      expect(body.detail).toContain(`key id "${keyId}"`);
      expect(body.detail).toMatch(/3 saved keys/);
      expect(body.action).toMatch(/restore the KEY_ENCRYPTION_KEYS line/);
      expect(body.action).toContain("DELETE /api/onboarding/api-keys?provider=");
      // The same in members the web app shows as the two ways out.
      expect(body).toMatchObject({ reason: "keyring-missing", missingKeyIds: keyId, envFile });
      // The log says it too (the developer reads the terminal), with no key material.
      const logged = restarted.logs.join("\n");
      expect(logged).toContain(`key id \\"${keyId}\\"`);
      for (const secret of [generatedLine.slice(keyId.length + 1), ...Object.values(keys)]) {
        expect(logged).not.toContain(secret);
        expect(JSON.stringify(body)).not.toContain(secret);
      }
      // Nothing generated, nothing saved.
      expect(readFileSync(envFile).equals(before)).toBe(true);
      expect(await database.rows(sqlAllKeys())).toEqual(rowsBefore);

      // Recovery 1, without a restart: the old line is back, the old keys read again.
      writeFileSync(envFile, `${before.toString()}\nKEY_ENCRYPTION_KEYS=${generatedLine}\n`);
      await expectStatus(
        await restarted.fetch(request("POST", "/api/onboarding/api-keys", { body: { gemini: sampleKeys(7102).gemini } })),
        200,
      );
      const listed = await expectStatus(await restarted.fetch(request("GET", "/api/onboarding/api-keys")), 200);
      expect(listed.keys.find((k: { provider: string }) => k.provider === "copilotkit")?.value).toBe(keys.copilotkit);
      restarted.cleanup();
      firstRun.cleanup();
    });

    it("can start over once the unreadable keys are deleted", async () => {
      const seed = makeRuntime({ database, mode: "development", env: { DEV_USER_ID: "user_lost_key_2" } });
      await expectStatus(await seed.fetch(request("POST", "/api/onboarding/api-keys", { body: sampleKeys(7200) })), 200);
      // A development server without any key: refused while any stored key is sealed with another id.
      const holder = makeRuntime({ database, mode: "development", env: devEnv() });
      const envFile = holder.envFile;
      for (const user of ["user_lost_key", "user_lost_key_2"]) {
        const dev = makeRuntime({ database, mode: "development", env: { ...devEnv(envFile), DEV_USER_ID: user } });
        const refused = await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: { exa: sampleKeys(7201).exa } }));
        await expectStatus(refused, 500);
        // Deleting works without a key ring: the keys cannot be decrypted anyway.
        for (const provider of ["gemini", "exa", "copilotkit"]) {
          const deleted = await dev.fetch(request("DELETE", `/api/onboarding/api-keys?provider=${provider}`));
          expect([204, 404]).toContain(deleted.status);
        }
        dev.cleanup();
      }
      const fresh = makeRuntime({ database, mode: "development", env: { ...devEnv(envFile), DEV_USER_ID: "user_lost_key" } });
      await expectStatus(await fresh.fetch(request("POST", "/api/onboarding/api-keys", { body: { exa: sampleKeys(7202).exa } })), 200);
      expect(dotenv.parse(readFileSync(envFile)).KEY_ENCRYPTION_KEYS).toMatch(/^k\d{8}-[0-9a-f]{4}:/);
      for (const rt of [seed, holder, fresh]) rt.cleanup();
    });
  });
}

function sqlAllKeys() {
  // Every stored key, whoever it belongs to (ciphertexts stay inside the test).
  return sql`select session_id, provider, key_ciphertext, key_version, updated_at from api_keys order by 1, 2`;
}
