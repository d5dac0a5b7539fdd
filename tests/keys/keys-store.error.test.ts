/**
 * The key list loads the key ring only when there is a key to check (lib/keys/store.ts
 * `listKeys`): a user without keys gets an empty list even while the key ring cannot be loaded,
 * and a user with keys gets that failure. The account deletion's tombstone keeps the server's
 * request id, and a rate-limited delete whose statement answers no row reports nothing deleted.
 * Written from StrykerJS's surviving mutants
 * (docs/mutation-testing.md).
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { deleteAccountData } from "../../lib/account/account.js";
import { deleteKey, listKeys, saveKeys } from "../../lib/keys/store.js";
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

    it("the account deletion's tombstone keeps the server's request id (null without one)", async () => {
      for (const [userId, serverRequestId] of [
        ["user_gone_1", "srv_req_4711"],
        ["user_gone_2", undefined],
      ] as const) {
        await saveKeys(database, {
          userId,
          keys: { exa: sampleKeys(8).exa },
          validated: new Set(),
          keyring: ring,
          requestId: "req_save",
          limits: null,
        });
        await deleteAccountData(database, { userId, requestId: "req_delete", ...(serverRequestId ? { serverRequestId } : {}) });
        const rows = await database.rows<{ action: string; request_id: string; server_request_id: string | null }>(
          sql`select action, request_id, server_request_id from key_events where user_id = ${userId}`,
        );
        expect(rows).toEqual([{ action: "account-delete", request_id: "req_delete", server_request_id: serverRequestId ?? null }]);
      }
    });
  });
}

describe("deleteKey with a rate limit, on a statement that answers no row", () => {
  it("reports nothing deleted and an empty rate-limit row instead of throwing", async () => {
    const noRow = { rows: async () => [] } as unknown as Database;
    const result = await deleteKey(noRow, {
      userId: "user_x",
      provider: "exa",
      requestId: "req_x",
      rateLimit: { countSql: sql`select 1 as count, now() as reset`, limit: 5 },
    });
    expect(result).toEqual({ deleted: false, rateLimitRow: { count: undefined, reset: undefined } });
    expect(Object.keys(result.rateLimitRow!)).toEqual(["count", "reset"]);
  });
});
