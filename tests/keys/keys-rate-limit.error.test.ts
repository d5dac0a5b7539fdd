/** Per-user limits live in the database, so two serverless instances share one budget. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

for (const backend of backends) {
  describe.skipIf(!backend.available)(`rate limits across instances ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let one: TestRuntime;
    let two: TestRuntime;
    beforeAll(async () => {
      database = await backend.open();
      // Two independent runtimes (two function instances) over one database.
      // One key ring for both instances (a fixed pattern such as 32 × 0x07 is refused in production).
      const env = { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "3", KEY_ENCRYPTION_KEYS: generateKeyringEntry("shared") };
      one = makeRuntime({ database, mode: "production", env });
      two = makeRuntime({ database, mode: "production", env, signer: one.signer });
    });
    afterAll(async () => {
      one.cleanup();
      two.cleanup();
      await database.destroy();
    });

    it("counts writes from both instances against one per-user budget and answers 429 with Retry-After and RateLimit", async () => {
      const user = `user_rl_${backend.name}`;
      // The four writes must fall in one minute window: never start in a window's last seconds.
      const [clock] = await database.rows<{ s: number }>(sql`select extract(second from now())::float8 as s`);
      if (Number(clock!.s) > 50) await new Promise((resolve) => setTimeout(resolve, (61 - Number(clock!.s)) * 1000));
      const save = (rt: TestRuntime, seed: number) =>
        rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(user), body: { gemini: sampleKeys(seed).gemini } }));
      await expectStatus(await save(one, 1), 200);
      await expectStatus(await save(two, 2), 200);
      await expectStatus(await save(one, 3), 200);
      const limited = await save(two, 4);
      const problem = await expectStatus(limited, 429);
      expect(problem.code).toBe("rate-limited");
      const retryAfter = Number(limited.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers.get("ratelimit")).toMatch(/^limit=3, remaining=0, reset=\d+$/);
      expect(limited.headers.get("ratelimit-policy")).toBe("3;w=60");
      // The refused write changed nothing: the third key is still the stored one.
      const [row] = await database.rows<{ hint: string }>(
        sql`select key_hint as hint from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${user}`,
      );
      expect(row?.hint).toBe("…" + sampleKeys(3).gemini.slice(-4));
      // Another user has their own budget.
      const other = await two.fetch(
        request("POST", "/api/onboarding/api-keys", { token: two.token(`${user}_other`), body: { gemini: sampleKeys(5).gemini } }),
      );
      await expectStatus(other, 200);
    });

    it("a rate-limited delete deletes nothing (counted in the delete's own statement), and a 204 carries RateLimit", async () => {
      const user = `user_rl_delete_${backend.name}`;
      const [clock] = await database.rows<{ s: number }>(sql`select extract(second from now())::float8 as s`);
      if (Number(clock!.s) > 50) await new Promise((resolve) => setTimeout(resolve, (61 - Number(clock!.s)) * 1000));
      const token = one.token(user);
      await expectStatus(
        await one.fetch(
          request("POST", "/api/onboarding/api-keys", { token, body: { gemini: sampleKeys(8).gemini, exa: sampleKeys(8).exa } }),
        ),
        200,
      );
      const del = (rt: TestRuntime, provider: string) =>
        rt.fetch(request("DELETE", `/api/onboarding/api-keys?provider=${provider}`, { token: rt.token(user) }));
      const first = await del(two, "gemini");
      await expectStatus(first, 204);
      expect(first.headers.get("ratelimit")).toMatch(/^limit=3, remaining=1, reset=\d+$/);
      expect(first.headers.get("ratelimit-policy")).toBe("3;w=60");
      expect((await expectStatus(await del(one, "gemini"), 404)).code).toBe("key-not-found"); // counted too: 3 of 3
      const limited = await del(two, "exa");
      expect((await expectStatus(limited, 429)).code).toBe("rate-limited");
      expect(limited.headers.get("ratelimit")).toMatch(/^limit=3, remaining=0, reset=\d+$/);
      const left = await database.rows<{ provider: string }>(
        sql`select k.provider from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${user}`,
      );
      expect(left.map((r) => r.provider)).toEqual(["exa"]);
      const audit = await database.rows<{ action: string }>(
        sql`select action from key_events where user_id = ${user} and action = 'delete'`,
      );
      expect(audit).toHaveLength(1);
    });

    it("starts a fresh budget in the next window", async () => {
      const user = `user_rl_window_${backend.name}`;
      await database.rows(
        sql`insert into rate_limits (user_id, bucket, window_start, count) values (${user}, 'key-writes', now() - interval '2 minutes', 99)`,
      );
      const response = await one.fetch(
        request("POST", "/api/onboarding/api-keys", { token: one.token(user), body: { exa: sampleKeys(6).exa } }),
      );
      await expectStatus(response, 200);
      const [row] = await database.rows<{ count: number }>(sql`select count from rate_limits where user_id = ${user}`);
      expect(Number(row?.count)).toBe(1);
    });
  });
}
