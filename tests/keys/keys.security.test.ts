/**
 * User isolation (seed: "Tester A NEVER sees Tester B's keys"): two users saving and reading
 * at the same time each get only their own keys back, from every read path, and nobody can
 * delete another user's key.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.js";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { providers, type Provider } from "../../lib/providers/registry.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, type TestRuntime } from "../helpers/runtime.js";

type Keys = Record<Provider, string>;

const ROUNDS = 20;

/**
 * Keys whose last 4 characters (the hint) name the owner and the round: `a007`, `b013`...
 * so any hint, value or resolved key can be traced back to who saved it.
 */
function keysFor(owner: "a" | "b", round: number): Keys {
  const tag = `${owner}${round.toString(16).padStart(3, "0")}`;
  // Random filler in upper case only, so it can never contain a (lower-case) tag by chance.
  const letters = (n: number) => [...randomBytes(n)].map((b) => String.fromCharCode(65 + (b % 26))).join("");
  const hex = (bytes: number) => randomBytes(bytes).toString("hex").toUpperCase();
  return {
    gemini: `AQ.${letters(46)}${tag}`,
    exa: `${hex(4)}-${hex(2)}-4${hex(2).slice(1)}-8${hex(2).slice(1)}-${hex(4)}${tag}`,
    copilotkit: `ck_pub_${letters(22)}${tag}`,
  };
}

async function rowCounts(database: Database) {
  const [row] = await database.rows<Record<string, number | string>>(sql`
    select (select count(*) from api_keys) as keys, (select count(*) from onboarding_sessions) as sessions,
           (select count(*) from key_events) as events
  `);
  return { keys: Number(row?.keys), sessions: Number(row?.sessions), events: Number(row?.events) };
}

async function ciphertextsOf(database: Database, userId: string) {
  return database.rows<{ provider: string; key_ciphertext: string; key_version: string }>(sql`
    select k.provider, k.key_ciphertext, k.key_version from api_keys k join onboarding_sessions s on s.id = k.session_id
    where s.user_id = ${userId} order by k.provider
  `);
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`user isolation ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      // The rate limit is tested elsewhere; here 20 saves per user must all go through.
      prod = makeRuntime({ database, mode: "production", env: { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0" } });
    });
    afterAll(async () => {
      prod.cleanup();
      await database.destroy();
    });

    const users = { a: "user_iso_alice", b: "user_iso_bob" } as const;
    const submitted: Record<"a" | "b", Keys[]> = { a: [], b: [] };
    const hintsOf = (owner: "a" | "b") => new Set(submitted[owner].flatMap((k) => Object.values(k).map((v) => "…" + v.slice(-4))));
    const valuesOf = (owner: "a" | "b") => new Set(submitted[owner].flatMap((k) => Object.values(k)));

    /** Every hint, value and resolved key in `data` must come from `owner`'s submissions. */
    function expectOnly(owner: "a" | "b", data: unknown, where: string) {
      const other = owner === "a" ? "b" : "a";
      // Request ids are random: four of their characters may match a key's last four by chance.
      const text = JSON.stringify(data, (key, value) => (key === "requestId" ? undefined : value));
      for (const value of valuesOf(other)) expect(text.includes(value), `${where}: ${other}'s key in ${owner}'s answer`).toBe(false);
      for (const value of valuesOf(other))
        expect(text.includes(value.slice(-4)), `${where}: ${other}'s hint in ${owner}'s answer`).toBe(false);
    }

    it(`${ROUNDS} concurrent saves by each of two users, with reads in between, never cross`, async () => {
      for (let round = 0; round < ROUNDS; round++) {
        submitted.a.push(keysFor("a", round));
        submitted.b.push(keysFor("b", round));
      }
      const token = { a: prod.token(users.a), b: prod.token(users.b) };
      const save = async (owner: "a" | "b", round: number) => {
        const body = await expectStatus(
          await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: token[owner], body: submitted[owner][round] })),
          200,
        );
        expect(body.userId).toBe(users[owner]);
        expectOnly(owner, body, `save ${owner}${round}`);
        for (const view of body.keys) expect(hintsOf(owner).has(view.hint), `save ${owner}${round}: hint ${view.hint}`).toBe(true);
        return body;
      };
      const list = async (owner: "a" | "b", round: number) => {
        const body = await expectStatus(await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: token[owner] })), 200);
        expect(body.userId).toBe(users[owner]);
        expectOnly(owner, body, `list ${owner}${round}`);
        for (const view of body.keys) {
          expect(hintsOf(owner).has(view.hint), `list ${owner}${round}: hint ${view.hint}`).toBe(true);
          if (view.provider === "copilotkit" && view.value !== undefined) expect(valuesOf(owner).has(view.value)).toBe(true);
        }
        return body;
      };
      const resolve = async (owner: "a" | "b", round: number) => {
        const resolved = await userApiKeys(prod.runtime, users[owner]);
        expect(resolved.source).toBe("database");
        expect(resolved.unreadable).toEqual([]);
        for (const value of Object.values(resolved.keys)) expect(valuesOf(owner).has(value), `resolve ${owner}${round}`).toBe(true);
        expectOnly(owner, resolved, `resolve ${owner}${round}`);
        return resolved;
      };

      // Everything at once: 2 × ROUNDS saves, interleaved with reads on every path.
      const work: Promise<unknown>[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (const owner of ["a", "b"] as const) {
          work.push(save(owner, round), list(owner, round), resolve(owner, round));
        }
      }
      await Promise.all(work);

      // Settled: exactly one session and three keys each, one audit row per save.
      const counts = await rowCounts(database);
      expect(counts).toEqual({ keys: 6, sessions: 2, events: 2 * ROUNDS * 3 });
      for (const owner of ["a", "b"] as const) {
        const resolved = await resolve(owner, ROUNDS);
        expect(Object.keys(resolved.keys).sort()).toEqual([...providers].sort());
        // The last write per provider wins, and it is one of the owner's own.
        const listed = await list(owner, ROUNDS);
        expect(listed.missing).toEqual([]);
        for (const provider of providers) {
          const hint = listed.keys.find((k: { provider: string }) => k.provider === provider).hint;
          expect(hint).toBe("…" + resolved.keys[provider]!.slice(-4));
        }
        const sessionBody = await expectStatus(
          await prod.fetch(request("GET", "/api/onboarding/session", { token: prod.token(users[owner]) })),
          200,
        );
        expect(sessionBody).toMatchObject({ userId: users[owner], apiKeysComplete: true });
      }
      const events = await database.rows<{ user_id: string; n: number | string }>(
        sql`select user_id, count(*) as n from key_events group by user_id order by user_id`,
      );
      expect(events.map((e) => [e.user_id, Number(e.n)])).toEqual([
        [users.a, ROUNDS * 3],
        [users.b, ROUNDS * 3],
      ]);
    });

    it("a user without keys gets none, not someone else's", async () => {
      const resolved = await userApiKeys(prod.runtime, "user_iso_nobody");
      expect(resolved).toEqual({ source: "database", keys: {}, unreadable: [], versions: {} });
      const body = await expectStatus(
        await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token("user_iso_nobody") })),
        200,
      );
      expect(body).toEqual({ userId: "user_iso_nobody", mode: "production", keys: [], missing: [...providers], needsReplacement: [] });
    });

    it("another user's DELETE answers 404 and deletes nothing", async () => {
      const before = await rowCounts(database);
      const aliceRows = await ciphertextsOf(database, users.a);
      expect(aliceRows).toHaveLength(3);
      // Users who have no such key, including ids that look like SQL or patterns, and one
      // differing from Alice's only in case.
      const intruders = ["user_iso_mallory", "user_iso_%", "%", "' or '1'='1", users.a.toUpperCase(), `${users.a} `, "user_iso_alic"];
      for (const intruder of intruders) {
        for (const provider of providers) {
          const response = await prod.fetch(
            request("DELETE", `/api/onboarding/api-keys?provider=${provider}`, { token: prod.token(intruder) }),
          );
          const body = await expectStatus(response, 404);
          expect(body).toMatchObject({ code: "key-not-found", status: 404 });
          expect(response.headers.get("content-type")).toBe("application/problem+json");
          expectOnly("b", body, `delete by ${intruder}`);
          expectOnly("a", body, `delete by ${intruder}`);
        }
      }
      expect(await rowCounts(database)).toEqual(before);
      expect(await ciphertextsOf(database, users.a)).toEqual(aliceRows);

      // Bob deleting his own key removes exactly that row; Alice's stay as they were.
      const bobBefore = await userApiKeys(prod.runtime, users.b);
      await expectStatus(
        await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=gemini", { token: prod.token(users.b) })),
        204,
      );
      expect(await rowCounts(database)).toEqual({ ...before, keys: before.keys - 1, events: before.events + 1 });
      expect(await ciphertextsOf(database, users.a)).toEqual(aliceRows);
      const bobAfter = await userApiKeys(prod.runtime, users.b);
      expect(bobAfter.keys).toEqual({ exa: bobBefore.keys.exa, copilotkit: bobBefore.keys.copilotkit });

      // And again: nothing left to delete, for Bob, so 404 and no audit row.
      const again = await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=gemini", { token: prod.token(users.b) }));
      await expectStatus(again, 404);
      expect(await rowCounts(database)).toEqual({ ...before, keys: before.keys - 1, events: before.events + 1 });
      expect(Object.keys((await userApiKeys(prod.runtime, users.a)).keys).sort()).toEqual([...providers].sort());
    });

    it("logs name users but never hold a key", async () => {
      expect(prod.logs.some((l) => l.includes(`[PROD MODE] Using database for user ${users.a}`))).toBe(true);
      for (const line of prod.logs) {
        for (const value of [...valuesOf("a"), ...valuesOf("b")]) expect(line).not.toContain(value);
        expect(line).not.toContain("[redacted]");
      }
    });
  });
}
