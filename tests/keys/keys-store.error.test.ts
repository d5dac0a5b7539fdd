/**
 * The key list loads the key ring only when there is a key to check (lib/keys/store.ts
 * `listKeys`): a user without keys gets an empty list even while the key ring cannot be loaded,
 * and a user with keys gets that failure. Written from StrykerJS's surviving mutants
 * (docs/mutation-testing.md).
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listKeys, saveKeys } from "../../lib/keys/store.js";
import { parseKeyring, type Keyring } from "../../lib/platform/crypto.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { sampleKeys } from "../helpers/runtime.js";

const parsed = parseKeyring(`k1:${randomBytes(32).toString("base64")}`);
if (!parsed.ok) throw new Error(`keyring did not parse: ${parsed.error}`);
const ring: Keyring = parsed.value;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`listKeys and the key ring ${backendLabel(backend)}`, () => {
    let database: TestDatabase;

    beforeAll(async () => {
      database = await backend.open();
    });
    afterAll(async () => {
      await database?.destroy();
    });

    it("never loads the key ring for a user without keys; a user with keys gets the loading failure", async () => {
      let loads = 0;
      const broken = async (): Promise<Keyring> => {
        loads++;
        throw new Error("key ring unavailable");
      };
      expect(await listKeys(database, "user_without_keys", broken)).toEqual([]);
      expect(loads).toBe(0);

      await saveKeys(database, {
        userId: "user_with_keys",
        keys: { exa: sampleKeys(7).exa },
        validated: new Set(),
        keyring: ring,
        requestId: "req_store_1",
        limits: null,
      });
      await expect(listKeys(database, "user_with_keys", broken)).rejects.toThrow("key ring unavailable");
      expect(loads).toBe(1);
      const views = await listKeys(database, "user_with_keys", async () => ring);
      expect(views.map((v) => [v.provider, v.status])).toEqual([["exa", "unknown"]]);
      expect(await listKeys(database, "user_without_keys", broken)).toEqual([]);
      expect(loads).toBe(1);
    });
  });
}
