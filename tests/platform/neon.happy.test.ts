/**
 * The key store and resolver through the Neon serverless driver (@neondatabase/serverless
 * 1.x), both transports, against the local PostgreSQL: the WebSocket driver through a local
 * ws-to-TCP proxy (testkit/neon-ws-proxy.ts), the HTTP driver through a local endpoint that
 * speaks Neon's /sql protocol (helpers/neon-http-endpoint.ts). Each driver gets a fresh
 * database, migrated through that same driver. Needs TEST_DATABASE_URL (skipped otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { sql } from "drizzle-orm";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { isDatabaseUnavailable, migrateDatabase, openDatabase, type Database, type DatabaseOptions } from "../../db/client.js";
import { createPostgresDatabase, testDatabaseUrl } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime, operatorHealth } from "../helpers/runtime.js";
import { startGeneration } from "../../lib/generation/start.js";
import { startNeonWsProxy, type NeonWsProxy } from "../../testkit/neon-ws-proxy.js";
import { startNeonHttpEndpoint, type NeonHttpEndpoint } from "../helpers/neon-http-endpoint.js";

type NeonDriver = "neon-ws" | "neon-http";

const skipNote = testDatabaseUrl
  ? ""
  : " (skipped: TEST_DATABASE_URL is not set; the Neon drivers need a real PostgreSQL behind the local proxy)";
/** host:port of the test PostgreSQL: the only address the local WebSocket proxy dials. */
const pgAddress = testDatabaseUrl ? `${new URL(testDatabaseUrl).hostname}:${new URL(testDatabaseUrl).port || "5432"}` : "";

const wsOptions = (proxy: NeonWsProxy): DatabaseOptions["neon"] => ({
  wsProxy: proxy.wsProxy,
  useSecureWebSocket: false,
  // The driver's default pipelines a cleartext password; the local PostgreSQL uses trust auth.
  pipelineConnect: false,
});

const keyViews = async (rt: TestRuntime, userId: string) =>
  expectStatus(await rt.fetch(request("GET", "/api/onboarding/api-keys", { token: rt.token(userId) })), 200);

/** Makes the audit insert of one user fail inside PostgreSQL: a fault injected below our code. */
async function refuseAuditFor(database: Database, userId: string): Promise<void> {
  await database.rows(
    sql.raw(`
    create or replace function byok_test_refuse_audit() returns trigger language plpgsql as $$
    begin
      if new.user_id = '${userId}' then raise exception 'audit refused for test'; end if;
      return new;
    end $$`),
  );
  await database.rows(
    sql.raw(`create trigger byok_test_refuse_audit before insert on key_events for each row execute function byok_test_refuse_audit()`),
  );
}

for (const driver of ["neon-ws", "neon-http"] as const satisfies readonly NeonDriver[]) {
  describe.skipIf(!testDatabaseUrl)(`key flows through ${driver}${skipNote}`, () => {
    let url: string;
    let drop: () => Promise<void>;
    let database: Database;
    let prod: TestRuntime;
    let proxy: NeonWsProxy | undefined;
    let endpoint: NeonHttpEndpoint | undefined;

    beforeAll(async () => {
      ({ url, drop } = await createPostgresDatabase(testDatabaseUrl!));
      let neon: DatabaseOptions["neon"];
      if (driver === "neon-ws") {
        proxy = await startNeonWsProxy({ allow: [pgAddress] });
        neon = wsOptions(proxy);
      } else {
        endpoint = await startNeonHttpEndpoint();
        neon = { fetchEndpoint: endpoint.fetchEndpoint };
      }
      database = await openDatabase({ driver, url, neon });
      await migrateDatabase(database); // through the Neon driver itself
      prod = makeRuntime({ database, mode: "production", env: { DATABASE_DRIVER: driver, DATABASE_URL: url } });
    });
    afterAll(async () => {
      prod?.cleanup();
      await database?.close().catch(() => {});
      await proxy?.close();
      await endpoint?.close();
      await drop?.();
    });

    it("migrated through the driver, and health reports it", async () => {
      if (proxy) expect(proxy.addresses.length).toBeGreaterThan(0);
      if (endpoint) expect(endpoint.requests.some((r) => r.queries.some((q) => /create table/i.test(q)))).toBe(true);
      const tables = await database.rows<{ name: string }>(
        sql`select table_name as name from information_schema.tables where table_schema = 'public' order by 1`,
      );
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(["api_keys", "key_events", "onboarding_sessions"]));
      const body = await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
      expect(body).toMatchObject({ status: "ok", mode: "production", database: "ok", driver });
    });

    it("two users save at the same time, each sees only their own keys, and nothing is stored or logged in plaintext", async () => {
      const [a, b] = ["user_neon_a", "user_neon_b"];
      const [ka, kb] = [sampleKeys(101), sampleKeys(102)];
      const [ra, rb] = await Promise.all([
        prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(a), body: ka })),
        prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(b), body: kb })),
      ]);
      const sa = await expectStatus(ra, 200);
      const sb = await expectStatus(rb, 200);
      expect(sa).toMatchObject({ userId: a, mode: "production", saved: ["gemini", "exa", "copilotkit"], storage: ["database"] });
      expect(sb).toMatchObject({ userId: b, saved: ["gemini", "exa", "copilotkit"] });
      expect(JSON.stringify(sa)).not.toContain(ka.gemini);
      expect(JSON.stringify(sa)).not.toContain(ka.exa);

      const la = await keyViews(prod, a);
      expect(la.keys.map((k: { hint: string }) => k.hint)).toEqual([
        "…" + ka.gemini.slice(-4),
        "…" + ka.exa.slice(-4),
        "…" + ka.copilotkit.slice(-4),
      ]);
      expect(la.keys.find((k: { provider: string }) => k.provider === "copilotkit").value).toBe(ka.copilotkit);
      expect(la.missing).toEqual([]);
      expect((await keyViews(prod, b)).keys.find((k: { provider: string }) => k.provider === "copilotkit").value).toBe(kb.copilotkit);

      for (const [user, expected] of [
        [a, ka],
        [b, kb],
      ] as const) {
        const { versions, ...resolved } = await userApiKeys(prod.runtime, user);
        expect(resolved).toEqual({ source: "database", keys: expected, unreadable: [] });
        expect(Object.keys(versions).sort()).toEqual(Object.keys(expected).sort());
      }

      // Another user deleting "their" gemini key finds nothing, and A's key stays.
      const del = await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=gemini", { token: prod.token("user_neon_c") }));
      expect((await expectStatus(del, 404)).code).toBe("key-not-found");
      expect((await userApiKeys(prod.runtime, a)).keys.gemini).toBe(ka.gemini);
      // The owner can.
      await expectStatus(await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=exa", { token: prod.token(b) })), 204);
      expect((await userApiKeys(prod.runtime, b)).keys).toEqual({ gemini: kb.gemini, copilotkit: kb.copilotkit });

      const stored = await database.rows<{ key_ciphertext: string }>(sql`select * from api_keys`);
      expect(stored.length).toBe(5);
      for (const row of stored) expect(row.key_ciphertext).toMatch(/^test1:/);
      const dump = JSON.stringify(stored) + JSON.stringify(await database.rows(sql`select * from key_events`));
      const logs = prod.logs.join("\n");
      for (const value of [...Object.values(ka), ...Object.values(kb)]) {
        expect(dump).not.toContain(value);
        expect(logs).not.toContain(value);
      }
      expect(existsSync(prod.envFile)).toBe(false);
      if (proxy) expect(proxy.addresses.every((address) => address === pgAddress)).toBe(true);
    });

    it("saving is one atomic statement: a failure inside it leaves no session, key or audit row", async () => {
      const userId = "user_neon_atomic";
      await refuseAuditFor(database, userId);
      const before = endpoint?.requests.length ?? 0;
      const response = await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(userId), body: sampleKeys(103) }));
      const problem = await expectStatus(response, 500);
      expect(problem.code).toBe("internal-error");
      const left = await database.rows<{ n: number }>(sql`
        select (select count(*) from onboarding_sessions where user_id = ${userId})
             + (select count(*) from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${userId})
             + (select count(*) from key_events where user_id = ${userId}) as n`);
      expect(Number(left[0]!.n)).toBe(0);
      if (endpoint) {
        // Over HTTP the save is a single request holding a single statement (no batch, no
        // interactive transaction, which the HTTP driver does not have).
        const saves = endpoint.requests.slice(before).filter((r) => r.queries.some((q) => q.includes("insert into api_keys")));
        expect(saves).toEqual([{ batch: false, queries: [expect.stringContaining("insert into onboarding_sessions")] }]);
      }
      // Another user's save goes through the same statement untouched by the trigger.
      await expectStatus(
        await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token("user_neon_ok"), body: sampleKeys(104) })),
        200,
      );
    });

    it("a generation's first statement (rate limit, keys, budget) runs through the driver; a refused one reserves nothing", async () => {
      const userId = "user_neon_gen";
      await expectStatus(
        await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(userId), body: sampleKeys(105) })),
        200,
      );
      const deps = { ...prod.runtime, requestId: "req_neon_gen" };
      const before = endpoint?.requests.length ?? 0;
      const started = await startGeneration(deps, { userId, researchRequested: true, estimate: (research) => (research ? 0.06 : 0.05) });
      if (driver === "neon-http") expect(endpoint!.requests.length - before, "one HTTP request").toBe(1);
      expect(started.ok).toBe(true);
      if (!started.ok) return;
      expect(started.keys.keys).toEqual({ gemini: sampleKeys(105).gemini, exa: sampleKeys(105).exa });
      expect(started.reservation.amountUsd).toBe(0.06);
      expect(started.rateLimit).toMatchObject({ remaining: expect.any(Number) });
      const [row] = await database.rows<{ n: number }>(
        sql`select jsonb_array_length(reservations)::int as n from budgets where user_id = ${userId}`,
      );
      expect(Number(row?.n)).toBe(1);
      // Without a Gemini key: nothing reserved.
      const missing = await startGeneration(deps, { userId: "user_neon_gen_nokey", researchRequested: true, estimate: () => 0.05 });
      expect(missing).toMatchObject({ ok: false, reason: "missing-gemini" });
      expect(await database.rows(sql`select 1 from budgets where user_id = 'user_neon_gen_nokey'`)).toEqual([]);
    });

    if (driver === "neon-http") {
      it("the production key path is one HTTP request", async () => {
        const before = endpoint!.requests.length;
        expect((await userApiKeys(prod.runtime, "user_neon_a")).keys.gemini).toBe(sampleKeys(101).gemini);
        expect(endpoint!.requests.slice(before)).toEqual([{ batch: false, queries: [expect.stringContaining("from api_keys k")] }]);
      });

      it("the endpoint runs a batch (sql.transaction) in one transaction", async () => {
        const { neon } = await import("@neondatabase/serverless");
        const client = neon(url);
        const insert = (tag: string) => client`insert into key_events (user_id, provider, action) values (${tag}, 'gemini', 'save')`;
        await expect(client.transaction([insert("user_neon_batch"), client`select 1 / 0`])).rejects.toMatchObject({ code: "22012" });
        await client.transaction([insert("user_neon_batch"), insert("user_neon_batch")], { isolationLevel: "Serializable" });
        const rows = await client`select count(*)::int as n from key_events where user_id = 'user_neon_batch'`;
        expect(rows).toEqual([{ n: 2 }]);
        expect(endpoint!.requests.filter((r) => r.batch).map((r) => r.isolationLevel)).toEqual([undefined, "Serializable"]);
      });
    }

    it("a wrong query is not mistaken for an unavailable database", async () => {
      // The parameter echoes a driver message: Drizzle repeats parameters in its error message.
      const error = await database.rows(sql`select * from no_such_table where note = ${"fetch failed: Connection terminated"}`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeDefined();
      expect(isDatabaseUnavailable(error)).toBe(false);
    });

    if (driver === "neon-ws") {
      it("a proxy that refuses the WebSocket answers 503 database-unavailable; other pools are unaffected", async () => {
        const dead = await startNeonWsProxy({ allow: [pgAddress] });
        await dead.close();
        // Opened first, connected only after the dead one is opened: it must still dial its own proxy.
        const live = await openDatabase({ driver, url, neon: wsOptions(proxy!) });
        const other = await openDatabase({ driver, url, neon: wsOptions(dead) });
        const rt = makeRuntime({ database: other, mode: "production" });
        try {
          for (const call of [
            () => rt.fetch(request("GET", "/api/onboarding/api-keys", { token: rt.token("user_neon_a") })),
            () => rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token("user_neon_a"), body: sampleKeys(105) })),
          ]) {
            const response = await call();
            const problem = await expectStatus(response, 503);
            expect(problem.code).toBe("database-unavailable");
            expect(response.headers.get("retry-after")).toBe("5");
          }
          // WebSocket settings are per pool (not the driver's global neonConfig): the dead proxy
          // of one database does not redirect another's new connections.
          expect(await live.rows(sql`select 1 as one`)).toEqual([{ one: 1 }]);
        } finally {
          rt.cleanup();
          await other.close().catch(() => {});
          await live.close().catch(() => {});
        }
      });
    } else {
      it("Neon's endpoint answering 5xx (compute unreachable) is 503 database-unavailable", async () => {
        endpoint!.simulateFailure({ status: 500, message: "Control plane request failed" });
        try {
          const response = await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token("user_neon_a") }));
          expect((await expectStatus(response, 503)).code).toBe("database-unavailable");
        } finally {
          endpoint!.simulateFailure(undefined);
        }
        await keyViews(prod, "user_neon_a");
      });
    }

    // Last: stops this driver's proxy or endpoint for good.
    it(`with the ${driver === "neon-ws" ? "WebSocket proxy" : "HTTP endpoint"} down, endpoints answer 503 database-unavailable`, async () => {
      await (proxy ?? endpoint)!.close();
      // Several calls: the first may meet a pooled connection being dropped, the next ones dial anew.
      for (let i = 0; i < 3; i++) {
        const response = await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token("user_neon_a") }));
        const problem = await expectStatus(response, 503);
        expect(problem).toMatchObject({ code: "database-unavailable", status: 503 });
      }
      const saved = await prod.fetch(
        request("POST", "/api/onboarding/api-keys", { token: prod.token("user_neon_a"), body: sampleKeys(106) }),
      );
      expect((await expectStatus(saved, 503)).code).toBe("database-unavailable");
      await expect(userApiKeys(prod.runtime, "user_neon_a")).rejects.toSatisfy(isDatabaseUnavailable);
      expect(prod.logs.some((line) => line.includes("database unavailable"))).toBe(true);
    });
  });
}
