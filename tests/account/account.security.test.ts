/**
 * Leaving with nothing left behind: Clerk's `user.deleted` webhook (Standard Webhooks
 * signatures made here with node:crypto: valid, wrong secret, old and future timestamps,
 * tampered body, missing headers, replay), DELETE /api/me, and GET /api/me/export (scanned
 * for every key and ciphertext of the test). Deletion leaves other users untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { redact } from "../../lib/platform/log.js";
import { accountExport, webhookResponse } from "../../lib/account/schemas.js";
import { routes } from "../../lib/routes.js";
import { createApp } from "../../lib/app.js";
import { signWebhook, TEST_WEBHOOK_SECRET, userDeletedEvent } from "../../testkit/webhooks.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { databaseFingerprint } from "../helpers/battery.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const KEYRING = generateKeyringEntry("accounttest");
let seed = 60_000;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`account deletion and export ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const { gemini, exa } = useFakeUpstreams();
    let prod: TestRuntime;
    const runtimes: TestRuntime[] = [];
    /** Every plaintext key saved in this file. */
    const allKeys = new Set<string>();

    function runtime(env: Record<string, string | undefined> = {}, mode: "production" | "development" = "production"): TestRuntime {
      const rt = makeRuntime({
        database,
        mode,
        env: { KEY_ENCRYPTION_KEYS: KEYRING, GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, ...env },
      });
      runtimes.push(rt);
      return rt;
    }

    /** A user holding every kind of data: keys (with health), session, usage, budget, rate-limit windows, audit events. */
    async function userWithEverything(rt: TestRuntime = prod): Promise<{ userId: string; keys: ReturnType<typeof sampleKeys> }> {
      const userId = `user_acct_${randomBytes(4).toString("hex")}`;
      const keys = sampleKeys(++seed);
      for (const key of Object.values(keys)) allKeys.add(key);
      const token = rt.token(userId);
      await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token, body: keys })), 200);
      // ALwrity's step 2 with its data (onboarding_steps), before the session is set to 3 / 40 %.
      await expectStatus(
        await rt.fetch(
          request("POST", "/api/onboarding/step/2/complete", {
            token,
            body: { data: { website_url: `https://${userId}.example` }, validation_errors: [] },
          }),
        ),
        200,
      );
      await expectStatus(await rt.fetch(request("PUT", "/api/onboarding/session", { token, body: { currentStep: 3, progress: 40 } })), 200);
      await expectStatus(await rt.fetch(request("PUT", "/api/usage/budget", { token, body: { monthlyUsd: 12 } })), 200);
      await expectStatus(
        await rt.fetch(
          request("POST", "/api/blog/generate", {
            token,
            body: { topic: "Leaving cleanly", keywords: ["k"] },
            headers: { accept: "application/json" },
          }),
        ),
        200,
      );
      return { userId, keys };
    }

    /** Every row of every table that has a user_id column (and the user's keys through the session), per table. */
    async function holdings(userId: string): Promise<Record<string, unknown[]>> {
      const tables = await database.rows<{ table_name: string }>(sql`
        select table_name from information_schema.columns
        where column_name = 'user_id' and table_schema = 'public' order by table_name`);
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining(["budgets", "key_events", "onboarding_sessions", "rate_limits", "usage_events"]),
      );
      const out: Record<string, unknown[]> = {};
      for (const { table_name } of tables) {
        out[table_name] = await database.rows(sql`select * from ${sql.identifier(table_name)} where user_id = ${userId} order by 1`);
      }
      out.api_keys = await database.rows(
        sql`select k.* from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${userId} order by k.id`,
      );
      out.onboarding_steps = await database.rows(
        sql`select o.* from onboarding_steps o join onboarding_sessions s on s.id = o.session_id where s.user_id = ${userId} order by o.step`,
      );
      return out;
    }

    /** What must be left after deleting `userId`: one account-delete event with no key material, nothing else. */
    async function expectOnlyTombstone(userId: string): Promise<void> {
      const held = await holdings(userId);
      for (const [table, rows] of Object.entries(held)) {
        if (table === "key_events" || table === "budgets") continue;
        expect(rows, `${table} still holds rows of ${userId}`).toEqual([]);
      }
      // Only this month's spend outlives the account (the operator's caps must hold for a
      // re-created account): no cap choice, nothing else.
      for (const row of (held.budgets ?? []) as Record<string, unknown>[]) {
        expect(row).toMatchObject({ user_id: userId, user_set: false, monthly_usd: null });
        expect(Number(row.spent_usd) > 0 || JSON.stringify(row.reservations) !== "[]").toBe(true);
      }
      expect(held.key_events).toHaveLength(1);
      expect(held.key_events![0]).toMatchObject({ user_id: userId, action: "account-delete", provider: null, key_version: null });
    }

    const webhook = (body: string, headers: Record<string, string>, rt: TestRuntime = prod) =>
      rt.fetch(
        new Request("http://localhost/api/webhooks/clerk", {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body,
        }),
      );

    beforeAll(async () => {
      database = await backend.open();
      prod = runtime();
    });
    afterAll(async () => {
      const logs = runtimes.flatMap((rt) => rt.logs).join("\n");
      for (const key of allKeys) expect(logs).not.toContain(key);
      expect(logs).not.toContain(TEST_WEBHOOK_SECRET.slice(6));
      for (const rt of runtimes) rt.cleanup();
      await database?.destroy();
    });

    it("user.deleted, validly signed: everything about that user is deleted, one audit event remains, other users are untouched", async () => {
      const victim = await userWithEverything();
      const other = await userWithEverything();
      const before = await holdings(victim.userId);
      for (const table of ["onboarding_sessions", "api_keys", "onboarding_steps", "usage_events", "rate_limits", "budgets", "key_events"]) {
        expect(before[table]!.length, `${table} before`).toBeGreaterThan(0);
      }
      const othersBefore = JSON.stringify(await holdings(other.userId));

      const body = JSON.stringify(userDeletedEvent(victim.userId));
      const response = await webhook(body, { ...signWebhook(body) });
      expect(webhookResponse.parse(await expectStatus(response, 200))).toEqual({
        received: true,
        type: "user.deleted",
        outcome: "deleted",
      });
      await expectOnlyTombstone(victim.userId);
      expect(JSON.stringify(await holdings(other.userId))).toBe(othersBefore);
      expect(prod.logs.some((l) => l.includes("account data deleted") && l.includes("clerk-webhook"))).toBe(true);
    });

    it("a replayed delivery (same svix-id, freshly signed) does nothing twice", async () => {
      const { userId } = await userWithEverything();
      const body = JSON.stringify(userDeletedEvent(userId));
      const id = `msg_${randomBytes(8).toString("hex")}`;
      expect(await expectStatus(await webhook(body, { ...signWebhook(body, { id }) }), 200)).toMatchObject({ outcome: "deleted" });
      // The user comes back with data (as if re-created); a replay must not delete it again,
      // nor add a second audit event.
      await expectStatus(
        await prod.fetch(request("PUT", "/api/onboarding/session", { token: prod.token(userId), body: { currentStep: 2, progress: 5 } })),
        200,
      );
      const before = await databaseFingerprint(database);
      const replay = await webhook(body, { ...signWebhook(body, { id }) });
      expect(await expectStatus(replay, 200)).toEqual({ received: true, type: "user.deleted", outcome: "duplicate" });
      expect(await databaseFingerprint(database)).toBe(before);
      // Concurrent replays: one at most acts.
      const fresh = await userWithEverything();
      const freshBody = JSON.stringify(userDeletedEvent(fresh.userId));
      const freshId = `msg_${randomBytes(8).toString("hex")}`;
      const outcomes = await Promise.all(
        Array.from(
          { length: 5 },
          async () => (await expectStatus(await webhook(freshBody, { ...signWebhook(freshBody, { id: freshId }) }), 200)).outcome,
        ),
      );
      expect(outcomes.sort()).toEqual(["deleted", "duplicate", "duplicate", "duplicate", "duplicate"]);
      await expectOnlyTombstone(fresh.userId);
    });

    const badSignatures: { name: string; make: (body: string) => Record<string, string>; reason: RegExp }[] = [
      { name: "no signature headers", make: () => ({}), reason: /missing/ },
      {
        name: "svix-signature missing",
        make: (b) => ({ "svix-id": signWebhook(b)["svix-id"], "svix-timestamp": signWebhook(b)["svix-timestamp"] }),
        reason: /missing/,
      },
      {
        name: "the wrong secret",
        make: (b) => ({ ...signWebhook(b, { secret: `whsec_${randomBytes(24).toString("base64")}` }) }),
        reason: /no svix-signature matches/,
      },
      {
        name: "a timestamp 6 minutes old",
        make: (b) => ({ ...signWebhook(b, { timestamp: Math.floor(Date.now() / 1000) - 360 }) }),
        reason: /5 minutes/,
      },
      {
        name: "a timestamp 6 minutes ahead",
        make: (b) => ({ ...signWebhook(b, { timestamp: Math.floor(Date.now() / 1000) + 360 }) }),
        reason: /5 minutes/,
      },
      { name: "a timestamp that is no number", make: (b) => ({ ...signWebhook(b), "svix-timestamp": "yesterday" }), reason: /Unix time/ },
      {
        name: "a signature of another body",
        make: (b) => ({ ...signWebhook(b.replace("user_", "user_x")) }),
        reason: /no svix-signature matches/,
      },
      {
        name: "another id than the one signed",
        make: (b) => ({ ...signWebhook(b), "svix-id": "msg_other" }),
        reason: /no svix-signature matches/,
      },
      {
        name: "a v2 signature only",
        make: (b) => ({ ...signWebhook(b), "svix-signature": signWebhook(b)["svix-signature"].replace("v1,", "v2,") }),
        reason: /no svix-signature matches/,
      },
      {
        name: "a truncated signature",
        make: (b) => ({ ...signWebhook(b), "svix-signature": signWebhook(b)["svix-signature"].slice(0, 20) }),
        reason: /no svix-signature matches/,
      },
    ];
    for (const bad of badSignatures) {
      it(`a delivery with ${bad.name}: 400 invalid-webhook-signature, nothing changes (app and function)`, async () => {
        const { userId } = await userWithEverything();
        const body = JSON.stringify(userDeletedEvent(userId));
        const before = await databaseFingerprint(database);
        const headers = bad.make(body);
        const functionApp = createApp(
          routes.filter((r) => r.path === "/api/webhooks/clerk"),
          { runtime: prod.runtime },
        );
        for (const send of [
          () => webhook(body, headers),
          () =>
            functionApp.fetch(
              new Request("http://localhost/api/webhooks/clerk", {
                method: "POST",
                headers: { "content-type": "application/json", ...headers },
                body,
              }),
            ),
        ]) {
          const response = await send();
          const problem = await expectStatus(response, 400);
          expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          expect(problem).toMatchObject({ code: "invalid-webhook-signature", status: 400 });
          expect(problem.detail).toMatch(bad.reason);
          expect(JSON.stringify(problem)).not.toContain(TEST_WEBHOOK_SECRET.slice(6));
        }
        expect(await databaseFingerprint(database)).toBe(before);
      });
    }

    it("a signature list with a stale signature first (secret rotation) is accepted", async () => {
      const { userId } = await userWithEverything();
      const body = JSON.stringify(userDeletedEvent(userId));
      const good = signWebhook(body);
      const stale = signWebhook(body, {
        id: good["svix-id"],
        timestamp: Number(good["svix-timestamp"]),
        secret: `whsec_${randomBytes(24).toString("base64")}`,
      });
      const response = await webhook(body, { ...good, "svix-signature": `${stale["svix-signature"]} ${good["svix-signature"]}` });
      expect(await expectStatus(response, 200)).toMatchObject({ outcome: "deleted" });
      await expectOnlyTombstone(userId);
    });

    it("other event types are acknowledged and ignored; a signed user.deleted without data.id is a 400; nothing changes", async () => {
      const { userId } = await userWithEverything();
      const before = await databaseFingerprint(database);
      for (const type of ["user.created", "user.updated", "session.created", "session.revoked", "organization.deleted", "something.new"]) {
        const body = JSON.stringify({
          type,
          object: "event",
          data: { id: userId, object: "user" },
          timestamp: Date.now(),
          instance_id: "ins_test",
          novel: { field: 1 },
        });
        expect(await expectStatus(await webhook(body, { ...signWebhook(body) }), 200)).toEqual({
          received: true,
          type,
          outcome: "ignored",
        });
      }
      const noId = JSON.stringify({ type: "user.deleted", object: "event", data: { object: "user", deleted: true } });
      expect((await expectStatus(await webhook(noId, { ...signWebhook(noId) }), 400)).code).toBe("invalid-request");
      expect(await databaseFingerprint(database)).toBe(before);
    });

    it("without CLERK_WEBHOOK_SIGNING_SECRET the endpoint refuses every delivery (500) and reads no signing secret from the process environment", async () => {
      const unconfigured = runtime({ CLERK_WEBHOOK_SIGNING_SECRET: undefined });
      expect(
        unconfigured.runtime
          .configProblems()
          .map((p) => p.variables.join(","))
          .join("\n"),
      ).toContain("CLERK_WEBHOOK_SIGNING_SECRET");
      const { userId } = await userWithEverything();
      const body = JSON.stringify(userDeletedEvent(userId));
      const before = await databaseFingerprint(database);
      const previous = process.env.CLERK_WEBHOOK_SIGNING_SECRET;
      process.env.CLERK_WEBHOOK_SIGNING_SECRET = TEST_WEBHOOK_SECRET; // what the library would fall back to
      try {
        expect((await expectStatus(await webhook(body, { ...signWebhook(body) }, unconfigured), 500)).code).toBe("server-misconfigured");
      } finally {
        if (previous === undefined) delete process.env.CLERK_WEBHOOK_SIGNING_SECRET;
        else process.env.CLERK_WEBHOOK_SIGNING_SECRET = previous;
      }
      expect(await databaseFingerprint(database)).toBe(before);
    });

    it("DELETE /api/me deletes the caller's data (twice is fine), other users untouched", async () => {
      const me = await userWithEverything();
      const other = await userWithEverything();
      const othersBefore = JSON.stringify(await holdings(other.userId));
      for (let i = 0; i < 2; i++) {
        const response = await prod.fetch(request("DELETE", "/api/me", { token: prod.token(me.userId) }));
        expect(response.status).toBe(204);
        expect(await response.text()).toBe("");
        await expectOnlyTombstone(me.userId);
      }
      expect(JSON.stringify(await holdings(other.userId))).toBe(othersBefore);
      const listed = await expectStatus(
        await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token(me.userId) })),
        200,
      );
      expect(listed).toMatchObject({ keys: [], missing: ["gemini", "exa", "copilotkit"] });
    });

    it("development: DELETE /api/me also removes the keys from the .env files and keeps the rest of them", async () => {
      const dev = runtime({ DEV_USER_ID: `user_acct_dev_${randomBytes(3).toString("hex")}`, FRONTEND_ENV_FILE: undefined }, "development");
      const keys = sampleKeys(++seed);
      for (const key of Object.values(keys)) allKeys.add(key);
      writeFileSync(dev.envFile, "# mine\nOTHER=keep\n");
      await expectStatus(await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: keys })), 200);
      expect(readFileSync(dev.envFile, "utf8")).toContain(keys.gemini);
      expect((await dev.fetch(request("DELETE", "/api/me"))).status).toBe(204);
      const file = readFileSync(dev.envFile, "utf8");
      for (const key of Object.values(keys)) expect(file).not.toContain(key);
      expect(file).toContain("OTHER=keep");
      await expectOnlyTombstone(dev.runtime.config.devUserId);
    });

    it("GET /api/me/export holds everything about the caller and no key or ciphertext of anyone", async () => {
      const { userId, keys } = await userWithEverything();
      gemini.setMode({ fail: "invalid-key" }, keys.gemini);
      await prod.fetch(
        request("POST", "/api/blog/generate", {
          token: prod.token(userId),
          body: { topic: "Leaving cleanly" },
          headers: { accept: "application/json" },
        }),
      );
      // Keys as step data (not in data.api_keys, where the key service takes them) are refused, never stored as text.
      const stepKeys = sampleKeys(++seed);
      for (const key of Object.values(stepKeys)) allKeys.add(key);
      const smuggled = await prod.fetch(
        request("POST", "/api/onboarding/step/4/complete", {
          token: prod.token(userId),
          body: { data: { gemini_api_key: stepKeys.gemini, profile: { tokens: [stepKeys.exa] }, [stepKeys.copilotkit]: 1 } },
        }),
      );
      const refused = await expectStatus(smuggled, 400);
      expect(refused.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual([
        "/data",
        "/data/gemini_api_key",
        "/data/profile/tokens/0",
      ]);
      for (const key of Object.values(stepKeys)) expect(JSON.stringify(refused)).not.toContain(key);
      const other = await userWithEverything();
      const response = await prod.fetch(request("GET", "/api/me/export", { token: prod.token(userId) }));
      const text = await response.clone().text();
      const data = accountExport.parse(await expectStatus(response, 200));
      expect(response.headers.get("cache-control")).toBe("no-store");

      expect(data.userId).toBe(userId);
      expect(data.session).toMatchObject({ currentStep: 3, progress: 40 });
      expect(data.keys.map((k) => [k.provider, k.hint, k.status])).toEqual([
        ["gemini", `…${keys.gemini.slice(-4)}`, "rejected"],
        ["exa", `…${keys.exa.slice(-4)}`, "ok"],
        ["copilotkit", `…${keys.copilotkit.slice(-4)}`, "unknown"],
      ]);
      expect(data.keys.find((k) => k.provider === "gemini")!.lastError).toMatchObject({ code: "provider-rejected-key" });
      expect(data.budget).toMatchObject({ userId, monthlyUsd: 12, source: "user", reservedUsd: 0 });
      const [usage] = await database.rows<{ n: number; total: string | number }>(
        sql`select count(*)::int as n, coalesce(sum(cost_usd), 0) as total from usage_events where user_id = ${userId}`,
      );
      expect(data.usage).toHaveLength(usage!.n);
      expect(data.usage.reduce((sum, u) => sum + u.costUsd, 0)).toBeCloseTo(Number(usage!.total), 8);
      expect(data.budget.spentUsd).toBeCloseTo(Number(usage!.total), 8);
      expect(data.auditEvents.map((e) => `${e.provider}:${e.action}`).sort()).toEqual(["copilotkit:save", "exa:save", "gemini:save"]);
      expect(data.rateLimits.map((r) => r.bucket).sort()).toEqual(["generate", "key-writes"]);
      expect(data.onboardingSteps).toEqual([
        { step: 2, data: { website_url: `https://${userId}.example` }, completedAt: expect.any(String) },
      ]);
      // Nor a key's fingerprint.
      const fingerprints = (
        await database.rows<{ f: string }>(sql`select key_fingerprint as f from api_keys where key_fingerprint is not null`)
      ).map((r) => r.f);
      expect(fingerprints.length).toBeGreaterThan(3);
      for (const f of fingerprints) expect(text).not.toContain(f.split(":")[1]);

      // No secret: every plaintext key of the test, every stored ciphertext and its sealed part.
      const ciphertexts = (await database.rows<{ key_ciphertext: string }>(sql`select key_ciphertext from api_keys`)).map(
        (r) => r.key_ciphertext,
      );
      expect(ciphertexts.length).toBeGreaterThan(3);
      for (const key of allKeys) expect(text, "a plaintext key in the export").not.toContain(key);
      for (const c of ciphertexts) {
        expect(text).not.toContain(c);
        expect(text).not.toContain(c.split(":")[2]);
      }
      expect(text).not.toContain(other.userId);
      expect(text).not.toContain(KEYRING.split(":")[1]);

      // Every exported field, and every property name, at any depth: nothing shaped like a key or secret.
      const pending: unknown[] = [JSON.parse(text)];
      let strings = 0;
      while (pending.length > 0) {
        const value = pending.pop();
        if (typeof value === "string") {
          strings++;
          expect(redact(value), "a key-shaped exported value").toBe(value);
        } else if (value !== null && typeof value === "object") {
          for (const [name, member] of Object.entries(value)) {
            if (!Array.isArray(value)) expect(redact(name), "a key-shaped exported name").toBe(name);
            pending.push(member);
          }
        }
      }
      expect(strings).toBeGreaterThan(20);
    });
  });
}
