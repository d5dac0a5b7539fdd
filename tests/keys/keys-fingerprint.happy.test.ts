/**
 * "Unchanged" without decrypting: each key is stored with a fingerprint (lib/platform/crypto.ts
 * keyFingerprint) that the saving statement compares. Bound to user, provider and encryption
 * key; never the key; saves equal to the stored key write nothing, even when they race.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { generateKeyringEntry, keyFingerprint, parseKeyring, type Keyring } from "../../lib/platform/crypto.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

const keyring = (id: string): Keyring => {
  const parsed = parseKeyring(generateKeyringEntry(id));
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};

describe("keyFingerprint", () => {
  const one = keyring("fp1");
  const two = keyring("fp2");
  const key = sampleKeys(1).gemini;

  it("is equal for the same user, provider, key and encryption key, and differs when any of them differs", () => {
    const fp = keyFingerprint(one, "user_a", "gemini", key);
    expect(keyFingerprint(one, "user_a", "gemini", key)).toBe(fp);
    expect(keyFingerprint(one, "user_b", "gemini", key)).not.toBe(fp);
    expect(keyFingerprint(one, "user_a", "exa", key)).not.toBe(fp);
    expect(keyFingerprint(one, "user_a", "gemini", key + "x")).not.toBe(fp);
    expect(keyFingerprint(two, "user_a", "gemini", key)).not.toBe(fp);
    // No ambiguity between user and provider: "user_a" + "gemini" is not "user_ag" + "emini".
    expect(keyFingerprint(one, "user_ag", "emini", key)).not.toBe(fp);
  });

  it("names its encryption key and holds nothing of the key", () => {
    const fp = keyFingerprint(one, "user_a", "gemini", key);
    expect(fp).toMatch(/^fp1:[A-Za-z0-9_-]{43}$/);
    for (let i = 0; i + 4 <= key.length; i++) expect(fp).not.toContain(key.slice(i, i + 4));
  });
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`saving an unchanged key ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let rt: TestRuntime;
    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({ database, mode: "production" });
    });
    afterAll(async () => {
      rt.cleanup();
      await database.destroy();
    });

    const save = (userId: string, body: unknown) =>
      rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body }));
    const audit = async (userId: string) =>
      (await database.rows<{ n: number }>(sql`select count(*)::int as n from key_events where user_id = ${userId}`))[0]!.n;

    it("ten identical saves at once write once: one audit row, one counted request", async () => {
      const userId = "user_fp_race";
      const key = sampleKeys(11).exa;
      const answers = await Promise.all(Array.from({ length: 10 }, () => save(userId, { provider: "exa", api_key: key })));
      const bodies = await Promise.all(answers.map((a) => expectStatus(a, 200)));
      expect(bodies.filter((b) => b.saved.length === 1)).toHaveLength(1);
      expect(bodies.filter((b) => b.unchanged.length === 1)).toHaveLength(9);
      expect(await audit(userId)).toBe(1);
      const [row] = await database.rows<{ count: number }>(
        sql`select count from rate_limits where user_id = ${userId} and bucket = 'key-writes'`,
      );
      // Racing first saves may each count (none had a stored key to compare with), never more than were sent.
      expect(Number(row!.count)).toBeGreaterThanOrEqual(1);
      expect(Number(row!.count)).toBeLessThanOrEqual(10);
    });

    it.skipIf(backend.name !== "postgres")(
      "saves of one new key that wait on the same row write it once (the upsert re-checks the fingerprint)",
      async () => {
        const userId = "user_fp_locked";
        const old = sampleKeys(21).exa;
        const next = sampleKeys(22).exa;
        await expectStatus(await save(userId, { exa: old }), 200);
        const { default: pg } = await import("pg");
        const holder = new pg.Client({ connectionString: database.url });
        await holder.connect();
        try {
          // Hold the row: every save below reads the old fingerprint (so each thinks the key changed)
          // and then waits for the row in its upsert.
          await holder.query("begin");
          await holder.query(
            "select 1 from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = $1 for update of k",
            [userId],
          );
          const pending = Array.from({ length: 5 }, () => save(userId, { provider: "exa", api_key: next }));
          await new Promise((resolve) => setTimeout(resolve, 300));
          await holder.query("commit");
          const bodies = await Promise.all((await Promise.all(pending)).map((a) => expectStatus(a, 200)));
          expect(bodies.filter((b) => b.saved.length === 1)).toHaveLength(1);
          expect(await audit(userId)).toBe(2); // the first save and one replace
        } finally {
          await holder.end();
        }
      },
    );

    it.skipIf(backend.name !== "postgres")(
      "a save is one round trip: the upsert, the rate limit and the list that answers it",
      async () => {
        const { default: pg } = await import("pg");
        const userId = "user_fp_round_trips";
        await expectStatus(await save(userId, sampleKeys(31)), 200); // warm: keyring, prepared statements
        const original = pg.Client.prototype.query;
        let queries = 0;
        // Counting, not changing: every statement still runs as sent.
        pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
          queries++;
          return (original as (...a: unknown[]) => unknown).apply(this, args);
        } as typeof original;
        try {
          for (const body of [sampleKeys(32), sampleKeys(32), { provider: "exa", api_key: sampleKeys(33).exa }]) {
            const before = queries;
            const answer = await expectStatus(await save(userId, body), 200);
            expect(queries - before, JSON.stringify(answer.saved)).toBe(1);
          }
        } finally {
          pg.Client.prototype.query = original;
        }
        // ...and the list it answered is the list as stored.
        const listed = await expectStatus(await rt.fetch(request("GET", "/api/onboarding/api-keys", { token: rt.token(userId) })), 200);
        const last = await expectStatus(await save(userId, { provider: "gemini", api_key: sampleKeys(34).gemini }), 200);
        expect(last.keys.map((k: { hint: string }) => k.hint)).toEqual([
          "…" + sampleKeys(34).gemini.slice(-4),
          listed.keys[1].hint,
          listed.keys[2].hint,
        ]);
        expect(last.keys[2].value).toBe(sampleKeys(32).copilotkit);
        const after = await expectStatus(await rt.fetch(request("GET", "/api/onboarding/api-keys", { token: rt.token(userId) })), 200);
        expect(last.keys).toEqual(after.keys);
      },
    );

    it("stores a fingerprint per key, never the key; a row saved before fingerprints existed is rewritten once", async () => {
      const userId = "user_fp_old";
      const keys = sampleKeys(12);
      await expectStatus(await save(userId, keys), 200);
      const rows = await database.rows<{ provider: string; f: string; p: string }>(
        sql`select k.provider, k.key_fingerprint as f, k.key_prefix_fingerprint as p from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${userId}`,
      );
      expect(rows).toHaveLength(3);
      for (const row of rows) {
        expect(row.f).toMatch(/^test1:/);
        expect(row.p).not.toBe(row.f);
        for (const key of Object.values(keys)) expect(row.f + row.p).not.toContain(key.slice(-8));
      }
      // An old row (no fingerprint): the first save of the same key writes, the next does not.
      await database.rows(
        sql`update api_keys set key_fingerprint = null, key_prefix_fingerprint = null where session_id = (select id from onboarding_sessions where user_id = ${userId})`,
      );
      const first = await expectStatus(await save(userId, { gemini: keys.gemini }), 200);
      expect(first).toMatchObject({ saved: ["gemini"], unchanged: [] });
      const second = await expectStatus(await save(userId, { gemini: keys.gemini }), 200);
      expect(second).toMatchObject({ saved: [], unchanged: ["gemini"] });
    });
  });
}
