/**
 * Typing edits are typing (lib/keys/store.ts saveKeys): only a run of one-character edits of
 * one key, each within TYPING_WINDOW_SECONDS of that key's last write, counts in the 600/min
 * `key-edits` bucket, and the whole run leaves one audit row. Ping-pong between two values
 * (K+c, K, K+c, ...), an edit after the window and edits of several keys in one request are
 * writes (30/min), each with its audit row.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { TYPING_WINDOW_SECONDS } from "../../lib/keys/store.js";
import { KEY_EDITS_PER_MINUTE } from "../../lib/platform/rate-limit.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

const KEY_WRITES_PER_MINUTE = 30; // the default (lib/platform/env.ts RATE_LIMIT_KEY_WRITES_PER_MINUTE)

for (const backend of backends) {
  describe.skipIf(!backend.available)(`typing edits of a saved key ${backendLabel(backend)}`, () => {
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

    /** One save; `bucket` is the window it was counted in (its RateLimit-Policy), null when nothing was counted. */
    async function save(userId: string, body: Record<string, string>) {
      const response = await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body }));
      const policy = response.headers.get("ratelimit-policy");
      const data = await response.json();
      const bucket =
        response.status === 200 && data.saved.length === 0
          ? null
          : policy === `${KEY_EDITS_PER_MINUTE};w=60`
            ? "key-edits"
            : policy === `${KEY_WRITES_PER_MINUTE};w=60`
              ? "key-writes"
              : policy;
      return { status: response.status, bucket, data };
    }
    const audit = async (userId: string) =>
      (
        await database.rows<{ provider: string; action: string }>(
          sql`select provider, action from key_events where user_id = ${userId} order by id`,
        )
      ).map((e) => `${e.provider}:${e.action}`);
    const counted = async (userId: string) =>
      Object.fromEntries(
        (await database.rows<{ bucket: string; count: number }>(sql`select bucket, count from rate_limits where user_id = ${userId}`)).map(
          (r) => [r.bucket, Number(r.count)],
        ),
      );
    /** Moves the last write of `userId`'s `provider` key `seconds` into the past (no sleeping in tests). */
    const ageKey = (userId: string, provider: string, seconds: number) =>
      database.rows(sql`update api_keys set updated_at = now() - make_interval(secs => ${seconds})
        where provider = ${provider} and session_id = (select id from onboarding_sessions where user_id = ${userId})`);
    /** The requests counted below must fall in one rate-limit minute (the database's clock minute). */
    async function awayFromWindowEnd(): Promise<void> {
      const [clock] = await database.rows<{ s: number }>(sql`select extract(second from now())::float8 as s`);
      if (Number(clock!.s) > 45) await new Promise((resolve) => setTimeout(resolve, (61 - Number(clock!.s)) * 1000));
    }

    it("alternating K+c and K is ping-pong: writes with an audit row each, refused at the 31st write", { timeout: 60_000 }, async () => {
      await awayFromWindowEnd();
      const userId = `user_typing_pingpong_${backend.name}`;
      const K = sampleKeys(41).gemini;
      expect(await save(userId, { gemini: K })).toMatchObject({ status: 200, bucket: "key-writes" });
      const answers: Awaited<ReturnType<typeof save>>[] = [];
      for (let i = 1; i <= 40; i++) {
        const answer = await save(userId, { gemini: i % 2 === 1 ? K + "c" : K });
        answers.push(answer);
        if (answer.status !== 200) break;
      }
      // One keystroke and its backspace are typing (the user may be correcting a typo); from the
      // next return to a value the key just had on, every save is a write.
      expect(answers.slice(0, 2).map((a) => a.bucket)).toEqual(["key-edits", "key-edits"]);
      expect(answers.slice(2, -1).map((a) => a.bucket)).toEqual(Array(KEY_WRITES_PER_MINUTE - 1).fill("key-writes"));
      // The 31st write of the minute is refused, and writes nothing.
      const refused = answers.at(-1)!;
      expect(refused.status).toBe(429);
      expect(refused.data.code).toBe("rate-limited");
      expect(await counted(userId)).toEqual({ "key-writes": KEY_WRITES_PER_MINUTE + 1, "key-edits": 2 });
      // One audit row per write (the first save and 29 replaces), one for the typing run.
      expect(await audit(userId)).toEqual(["gemini:save", ...Array(1 + (KEY_WRITES_PER_MINUTE - 1)).fill("gemini:replace")]);
      expect((await userApiKeys(rt.runtime, userId)).keys.gemini).toBe(answers.length % 2 === 0 ? K + "c" : K);
    });

    it("ping-pong through a third value (K+a, K, K+b, K, ...) is no cheaper", async () => {
      const userId = `user_typing_pingpong3_${backend.name}`;
      const K = sampleKeys(42).gemini;
      await save(userId, { gemini: K });
      const values = [K + "a", K, K + "b", K, K + "a", K, K + "b", K];
      const buckets = [];
      for (const value of values) buckets.push((await save(userId, { gemini: value })).bucket);
      // A typo corrected (K+a, backspace, K+b) is typing; going back again is ping-pong.
      expect(buckets).toEqual([
        "key-edits",
        "key-edits",
        "key-edits",
        "key-writes",
        "key-writes",
        "key-writes",
        "key-writes",
        "key-writes",
      ]);
      expect(await audit(userId)).toEqual(["gemini:save", ...Array(1 + 5).fill("gemini:replace")]);
    });

    it("a real typing run of 40 keystrokes, corrections included, never sees a 429 and leaves one audit row", async () => {
      const userId = `user_typing_run_${backend.name}`;
      const K = sampleKeys(43).gemini;
      const typed = "Tq7_wZ-3kLm9Pz2XcVb8Nn4Rr6Yy1Uu5Ii0Oo.Hh"; // 40 characters
      expect(typed).toHaveLength(40);
      expect(await save(userId, { gemini: K })).toMatchObject({ status: 200, bucket: "key-writes" });
      const answers = [];
      for (let i = 1; i <= typed.length; i++) {
        answers.push(await save(userId, { gemini: K + typed.slice(0, i) }));
        if (i === 20) {
          // A typo corrected: type "x", delete it, type the right character again ("abc", "ab", "abd").
          answers.push(await save(userId, { gemini: K + typed.slice(0, i) + "x" }));
          answers.push(await save(userId, { gemini: K + typed.slice(0, i) }));
        }
        if (i === 30) {
          // Delete the last three characters and type them again.
          for (const cut of [1, 2, 3, 2, 1, 0]) answers.push(await save(userId, { gemini: K + typed.slice(0, i - cut) }));
        }
      }
      expect(answers.length).toBe(40 + 2 + 6);
      expect(answers.map((a) => a.status)).toEqual(Array(answers.length).fill(200));
      expect(answers.map((a) => a.bucket)).toEqual(Array(answers.length).fill("key-edits"));
      expect((await userApiKeys(rt.runtime, userId)).keys.gemini).toBe(K + typed);
      expect(await audit(userId)).toEqual(["gemini:save", "gemini:replace"]);
      expect(await counted(userId)).toMatchObject({ "key-writes": 1 });
      // An unchanged save is still free, and the next keystroke continues the run.
      expect(await save(userId, { gemini: K + typed })).toMatchObject({ status: 200, bucket: null, data: { unchanged: ["gemini"] } });
      expect(await save(userId, { gemini: K + typed + "q" })).toMatchObject({ status: 200, bucket: "key-edits" });
      expect(await audit(userId)).toEqual(["gemini:save", "gemini:replace"]);
    });

    it("edits of two keys in one request count as a write, with an audit row per key; one key edited beside unchanged ones is typing", async () => {
      const userId = `user_typing_two_${backend.name}`;
      const keys = sampleKeys(44);
      await save(userId, keys);
      const both = await save(userId, { gemini: keys.gemini + "g", copilotkit: keys.copilotkit + "c" });
      expect(both).toMatchObject({ status: 200, bucket: "key-writes", data: { saved: ["gemini", "copilotkit"] } });
      expect((await audit(userId)).sort()).toEqual(["copilotkit:replace", "copilotkit:save", "exa:save", "gemini:replace", "gemini:save"]);
      // ALwrity's auto-save sends every key: one changed among unchanged ones is a typing edit.
      const one = await save(userId, { gemini: keys.gemini + "gh", exa: keys.exa, copilotkit: keys.copilotkit + "c" });
      expect(one).toMatchObject({ status: 200, bucket: "key-edits", data: { saved: ["gemini"], unchanged: ["exa", "copilotkit"] } });
      expect(await counted(userId)).toEqual({ "key-writes": 2, "key-edits": 1 });
    });

    it(`an edit more than ${TYPING_WINDOW_SECONDS} s after the key's last write is a write, and starts a new run`, async () => {
      const userId = `user_typing_window_${backend.name}`;
      const K = sampleKeys(45).gemini;
      await save(userId, { gemini: K });
      expect((await save(userId, { gemini: K + "a" })).bucket).toBe("key-edits");
      // Just inside the window: still typing (and the same run: no audit row).
      await ageKey(userId, "gemini", TYPING_WINDOW_SECONDS - 2);
      expect((await save(userId, { gemini: K + "ab" })).bucket).toBe("key-edits");
      expect(await audit(userId)).toEqual(["gemini:save", "gemini:replace"]);
      // Past the window: a write, with its audit row.
      await ageKey(userId, "gemini", TYPING_WINDOW_SECONDS + 1);
      expect((await save(userId, { gemini: K + "abc" })).bucket).toBe("key-writes");
      expect(await audit(userId)).toEqual(["gemini:save", "gemini:replace", "gemini:replace"]);
      // The next keystroke starts a new run: one audit row for it, none for the one after.
      expect((await save(userId, { gemini: K + "abcd" })).bucket).toBe("key-edits");
      expect((await save(userId, { gemini: K + "abcde" })).bucket).toBe("key-edits");
      expect(await audit(userId)).toEqual(["gemini:save", ...Array(3).fill("gemini:replace")]);
      // A key saved long ago and typed into again: a write first.
      await ageKey(userId, "gemini", 3600);
      expect((await save(userId, { gemini: K + "abcd" })).bucket).toBe("key-writes");
      expect(await counted(userId)).toMatchObject({ "key-writes": 3 });
    });

    it("keeps no key material in the typing state: fingerprints bound to user and provider only", async () => {
      const userId = `user_typing_columns_${backend.name}`;
      const K = sampleKeys(46).gemini;
      await save(userId, { gemini: K });
      await save(userId, { gemini: K + "z" });
      const rows = await database.rows<Record<string, unknown>>(sql`
        select k.* from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${userId}`);
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      // The previous value's fingerprint is the stored key's fingerprint before the edit.
      expect(row.key_previous_fingerprint).toMatch(/^test1:[A-Za-z0-9_-]{43}$/);
      expect(row.key_previous_fingerprint).toBe(row.key_prefix_fingerprint);
      const text = JSON.stringify({ ...row, key_ciphertext: undefined });
      for (const value of [K, K + "z", K.slice(4, -4)]) expect(text).not.toContain(value);
    });
  });
}
