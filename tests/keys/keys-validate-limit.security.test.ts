/**
 * `validate: true` makes a free upstream call with the key sent (lib/providers/gemini-check.ts).
 * A refused key is never saved, so the key-writes limit never counted it: anyone signed in could
 * test leaked keys through this service, one upstream call per request. Key checks count in
 * their own bucket (`key-checks`, RATE_LIMIT_KEY_CHECKS_PER_MINUTE, default 10 a minute per
 * user) before the upstream call, whatever it answers; past the limit: 429, no upstream call,
 * nothing saved.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeGemini } from "../helpers/upstreams.js";

const PATH = "/api/onboarding/api-keys";

for (const backend of backends) {
  describe.skipIf(!backend.available)(`validate: true is rate limited before the upstream call ${backendLabel(backend)}`, () => {
    const gemini = useFakeGemini({ resetEach: true });
    let database: TestDatabase;
    /** Default limits: key checks 10, key writes 30. */
    let rt: TestRuntime;
    /** Key checks 6 (every outcome once), a short upstream timeout. */
    let six: TestRuntime;
    /** Key writes 2, key checks default: the key-writes window is the tighter one. */
    let fewWrites: TestRuntime;
    /** Key checks off. */
    let off: TestRuntime;
    /** Answers the key check with a body that is not JSON. */
    let garbled: Server;
    let garbledRt: TestRuntime;
    let seed = 7000 + (backend.name === "pglite" ? 0 : 1000);
    const usedKeys: string[] = [];
    const runtimes = () => [rt, six, fewWrites, off, garbledRt];

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url } });
      six = makeRuntime({
        database,
        mode: "production",
        env: { GEMINI_BASE_URL: gemini.url, RATE_LIMIT_KEY_CHECKS_PER_MINUTE: "6", UPSTREAM_TIMEOUT_MS: "300" },
      });
      fewWrites = makeRuntime({
        database,
        mode: "production",
        env: { GEMINI_BASE_URL: gemini.url, RATE_LIMIT_KEY_WRITES_PER_MINUTE: "2" },
      });
      off = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, RATE_LIMIT_KEY_CHECKS_PER_MINUTE: "0" } });
      garbled = createServer((_req, res) => {
        res.writeHead(500, { "content-type": "text/html" });
        res.end("<html>upstream garbled");
      });
      await new Promise<void>((resolve) => garbled.listen(0, "127.0.0.1", resolve));
      garbledRt = makeRuntime({
        database,
        mode: "production",
        env: { GEMINI_BASE_URL: `http://127.0.0.1:${(garbled.address() as AddressInfo).port}` },
      });
    });
    afterAll(async () => {
      // No key sent in any of these requests reaches a log line.
      const logs = runtimes()
        .flatMap((r) => r?.logs ?? [])
        .join("\n");
      for (const key of usedKeys) expect(logs).not.toContain(key);
      for (const r of runtimes()) r?.cleanup();
      await new Promise((resolve) => garbled?.close(resolve));
      await database.destroy();
    });

    /** A fresh well-formed Gemini key. */
    function newKey(): string {
      const key = sampleKeys(++seed).gemini;
      usedKeys.push(key);
      return key;
    }
    /** A Gemini key the fake refuses (400 API_KEY_INVALID). */
    function rejectedKey(): string {
      const key = newKey();
      gemini.setMode({ fail: "invalid-key" }, key);
      return key;
    }
    const check = (runtime: TestRuntime, user: string, key: string) =>
      runtime.fetch(request("POST", PATH, { token: runtime.token(user), body: { gemini: key, validate: true } }));
    const upstreamCalls = () => gemini.requests.length;
    const callsWith = (key: string) => gemini.requests.filter((r) => r.apiKey === key).length;
    const bucketCount = async (user: string, bucket: string) => {
      const [row] = await database.rows<{ count: number }>(
        sql`select count from rate_limits where user_id = ${user} and bucket = ${bucket}`,
      );
      return row === undefined ? undefined : Number(row.count);
    };
    const storedProviders = async (user: string) =>
      (
        await database.rows<{ provider: string }>(
          sql`select k.provider from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${user} order by k.provider`,
        )
      ).map((r) => r.provider);
    /** Key saves and replacements written for `user` (audit rows). */
    const keyWrites = async (user: string) =>
      Number(
        (
          await database.rows<{ n: number }>(
            sql`select count(*)::int as n from key_events where user_id = ${user} and action in ('save', 'replace')`,
          )
        )[0]!.n,
      );
    /** The requests of one test must fall in one minute window: never start in a window's last `seconds`. */
    async function awayFromWindowEnd(seconds = 12): Promise<void> {
      const [clock] = await database.rows<{ s: number }>(sql`select extract(second from now())::float8 as s`);
      const s = Number(clock!.s);
      if (s > 60 - seconds) await new Promise((resolve) => setTimeout(resolve, (61 - s) * 1000));
    }
    /** Moves `user`'s `bucket` window two minutes back: the next request starts a new one. */
    const expireWindow = (user: string, bucket: string) =>
      database.rows(
        sql`update rate_limits set window_start = window_start - interval '2 minutes' where user_id = ${user} and bucket = ${bucket}`,
      );

    it("rejected keys: the 11th check in a minute is a 429 with no upstream call; key-writes is untouched; the window resets", async () => {
      await awayFromWindowEnd();
      const user = `user_probe_${backend.name}`;
      const refusals: Response[] = [];
      for (let i = 1; i <= 10; i++) {
        const key = rejectedKey();
        const response = await check(rt, user, key);
        const problem = await expectStatus(response, 422);
        expect(problem).toMatchObject({ code: "provider-rejected-key", provider: "gemini" });
        expect(callsWith(key)).toBe(1);
        refusals.push(response);
      }
      const before = upstreamCalls();
      for (let i = 11; i <= 13; i++) {
        const key = rejectedKey();
        const limited = await check(rt, user, key);
        expect(callsWith(key), `check ${i}: no upstream call`).toBe(0);
        const problem = await expectStatus(limited, 429);
        expect(problem.code).toBe("rate-limited");
        expect(problem.detail).toMatch(/key checks/);
        expect(JSON.stringify(problem)).not.toContain(key);
        const retryAfter = Number(limited.headers.get("retry-after"));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
        expect(limited.headers.get("ratelimit")).toMatch(/^limit=10, remaining=0, reset=\d+$/);
        expect(limited.headers.get("ratelimit-policy")).toBe("10;w=60");
      }
      expect(upstreamCalls()).toBe(before);
      // Each refusal showed what was left of the caller's key-check window.
      refusals.forEach((response, i) => {
        expect(response.headers.get("ratelimit")).toMatch(new RegExp(`^limit=10, remaining=${9 - i}, reset=\\d+$`));
        expect(response.headers.get("ratelimit-policy")).toBe("10;w=60");
      });

      // A key Google would accept gets no check either, and nothing is saved.
      const good = newKey();
      await expectStatus(await check(rt, user, good), 429);
      expect(callsWith(good)).toBe(0);
      expect(await storedProviders(user)).toEqual([]);
      expect(await keyWrites(user)).toBe(0);
      // Every request counted (refused ones too), and no refused probe counted as a key write.
      expect(await bucketCount(user, "key-checks")).toBe(14);
      expect(await bucketCount(user, "key-writes")).toBeUndefined();
      // Saving without validate is still possible: key writes are a budget of their own.
      const plain = await rt.fetch(request("POST", PATH, { token: rt.token(user), body: { exa: sampleKeys(++seed).exa } }));
      await expectStatus(plain, 200);
      expect(plain.headers.get("ratelimit")).toMatch(/^limit=30, remaining=29, reset=\d+$/);

      // A new minute: checks reach the provider again.
      await expireWindow(user, "key-checks");
      const again = rejectedKey();
      const response = await check(rt, user, again);
      await expectStatus(response, 422);
      expect(callsWith(again)).toBe(1);
      expect(response.headers.get("ratelimit")).toMatch(/^limit=10, remaining=9, reset=\d+$/);
    });

    it("another user's checks and window are their own", async () => {
      await awayFromWindowEnd();
      const prober = `user_probe_a_${backend.name}`;
      const other = `user_probe_b_${backend.name}`;
      for (let i = 0; i < 11; i++) await check(rt, prober, rejectedKey());
      expect(await bucketCount(prober, "key-checks")).toBe(11);

      const key = newKey();
      const response = await check(rt, other, key);
      const body = await expectStatus(response, 200);
      expect(body.keys).toEqual([expect.objectContaining({ provider: "gemini", validated: true })]);
      expect(callsWith(key)).toBe(1);
      // Their own window (key checks, 9 left: fewer than key writes' 29), nothing of the prober's.
      expect(response.headers.get("ratelimit")).toMatch(/^limit=10, remaining=9, reset=\d+$/);
      expect(JSON.stringify(body)).not.toContain(prober);
    });

    it("accepted checks count too: the 11th is a 429 and the stored key stays the 10th", async () => {
      await awayFromWindowEnd();
      const user = `user_probe_ok_${backend.name}`;
      for (let i = 1; i <= 10; i++) {
        const response = await check(rt, user, newKey());
        await expectStatus(response, 200);
        // Counted in both buckets: the headers show key checks, the tighter window (10 - i < 30 - i).
        expect(response.headers.get("ratelimit")).toMatch(new RegExp(`^limit=10, remaining=${10 - i}, reset=\\d+$`));
        expect(response.headers.get("ratelimit-policy")).toBe("10;w=60");
      }
      const eleventh = newKey();
      await expectStatus(await check(rt, user, eleventh), 429);
      expect(callsWith(eleventh)).toBe(0);
      expect(await keyWrites(user)).toBe(10); // the 11th wrote nothing: the stored key is the 10th
      expect(await bucketCount(user, "key-writes")).toBe(10);

      // Without validate: the key-writes headers, as before.
      const plain = await rt.fetch(request("POST", PATH, { token: rt.token(user), body: { gemini: newKey() } }));
      await expectStatus(plain, 200);
      expect(plain.headers.get("ratelimit")).toMatch(/^limit=30, remaining=19, reset=\d+$/);
      expect(plain.headers.get("ratelimit-policy")).toBe("30;w=60");
    });

    it("the headers show the key-writes window when it has fewer requests left", async () => {
      await awayFromWindowEnd();
      const user = `user_probe_writes_${backend.name}`;
      const first = await check(fewWrites, user, newKey());
      await expectStatus(first, 200);
      expect(first.headers.get("ratelimit")).toMatch(/^limit=2, remaining=1, reset=\d+$/);
      expect(first.headers.get("ratelimit-policy")).toBe("2;w=60");
      await expectStatus(await check(fewWrites, user, newKey()), 200);
      // The third: checked (key checks 3 of 10), refused by the key-writes limit, nothing saved.
      const third = newKey();
      const limited = await check(fewWrites, user, third);
      expect((await expectStatus(limited, 429)).detail).toMatch(/key changes/);
      expect(limited.headers.get("ratelimit")).toMatch(/^limit=2, remaining=0, reset=\d+$/);
      expect(await bucketCount(user, "key-checks")).toBe(3);
      expect(await keyWrites(user)).toBe(2);
    });

    it("every outcome counts: accepted, refused, upstream down, timed out, garbled answer, Google's own 429", async () => {
      await awayFromWindowEnd(15);
      const user = `user_probe_outcomes_${backend.name}`;
      const outcome = async (runtime: TestRuntime, key: string, status: number, code?: string) => {
        const response = await check(runtime, user, key);
        const body = await expectStatus(response, status);
        if (code) expect(body.code).toBe(code);
        expect(JSON.stringify(body)).not.toContain(key);
        return response;
      };
      await outcome(six, newKey(), 200);
      await outcome(six, rejectedKey(), 422, "provider-rejected-key");
      const down = newKey();
      gemini.setMode({ fail: 500 }, down);
      const downResponse = await outcome(six, down, 502, "upstream-unavailable");
      expect(downResponse.headers.get("ratelimit")).toMatch(/^limit=6, remaining=3, reset=\d+$/);
      const slow = newKey();
      gemini.setMode({ hang: true }, slow);
      await outcome(six, slow, 504, "upstream-timeout");
      const busy = newKey();
      gemini.setMode({ fail: 429, retryAfterSeconds: 7 }, busy);
      const busyResponse = await outcome(six, busy, 429, "rate-limited");
      // Google's 429 keeps only its Retry-After: RateLimit headers on a 429 mean this service's limit.
      expect(busyResponse.headers.get("ratelimit")).toBeNull();
      expect(await bucketCount(user, "key-checks")).toBe(5);
      // A garbled answer (another runtime, same database and user: the same window).
      const garbledKey = newKey();
      await outcome(garbledRt, garbledKey, 502, "upstream-unavailable");
      expect(await bucketCount(user, "key-checks")).toBe(6);

      const before = upstreamCalls();
      const limited = await check(six, user, newKey());
      expect((await expectStatus(limited, 429)).code).toBe("rate-limited");
      expect(limited.headers.get("ratelimit")).toMatch(/^limit=6, remaining=0, reset=\d+$/);
      expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(upstreamCalls()).toBe(before);
      await gemini.waitForIdle(5_000);
    });

    it("concurrent checks of one user: exactly the limit reaches the provider", async () => {
      await awayFromWindowEnd();
      const user = `user_probe_burst_${backend.name}`;
      const keys = Array.from({ length: 16 }, () => rejectedKey());
      const responses = await Promise.all(keys.map((key) => check(rt, user, key)));
      const statuses = responses.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 422)).toHaveLength(10);
      expect(statuses.filter((s) => s === 429)).toHaveLength(6);
      expect(keys.reduce((n, key) => n + callsWith(key), 0)).toBe(10);
      for (const r of responses) await r.text();
    });

    it("RATE_LIMIT_KEY_CHECKS_PER_MINUTE=0 turns the limit off", async () => {
      await awayFromWindowEnd();
      const user = `user_probe_off_${backend.name}`;
      for (let i = 0; i < 12; i++) await expectStatus(await check(off, user, rejectedKey()), 422);
      expect(await bucketCount(user, "key-checks")).toBeUndefined();
      const response = await check(off, user, newKey());
      await expectStatus(response, 200);
      // The key-writes headers, as without validate.
      expect(response.headers.get("ratelimit")).toMatch(/^limit=30, remaining=29, reset=\d+$/);
    });

    it("ALwrity's key paths make no upstream call: /api-keys/validate reads stored state, step completion saves unchecked", async () => {
      const user = `user_probe_alwrity_${backend.name}`;
      const token = rt.token(user);
      const key = newKey();
      const before = upstreamCalls();
      for (const method of ["GET", "POST"]) {
        await expectStatus(
          await rt.fetch(
            request(method, "/api/onboarding/api-keys/validate", { token, ...(method === "POST" ? { body: { gemini: key } } : {}) }),
          ),
          200,
        );
      }
      await expectStatus(await rt.fetch(request("POST", PATH, { token, body: { provider: "gemini", api_key: key } })), 200);
      await expectStatus(
        await rt.fetch(
          request("POST", "/api/onboarding/step/1/complete", { token, body: { data: { api_keys: { gemini: newKey() }, validate: true } } }),
        ),
        200,
      );
      await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys/validate", { token })), 200);
      expect(upstreamCalls()).toBe(before);
      expect(await bucketCount(user, "key-checks")).toBeUndefined();
    });
  });
}
