import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, existsSync } from "node:fs";
import { sql } from "drizzle-orm";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime, operatorHealth } from "../helpers/runtime.js";

for (const backend of backends) {
  describe.skipIf(!backend.available)(`key flows ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    let dev: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      prod = makeRuntime({ database, mode: "production" });
      dev = makeRuntime({ database, mode: "development" });
    });
    afterAll(async () => {
      prod.cleanup();
      dev.cleanup();
      await database.destroy();
    });

    it("health reports mode and driver", async () => {
      const body = await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
      expect(body).toMatchObject({ status: "ok", mode: "production", database: "ok" });
    });

    it("PUT session answers what was stored and whether the keys are complete (one statement), as GET does", async () => {
      const user = "user_session_put";
      const token = prod.token(user);
      const put = (body: unknown) => prod.fetch(request("PUT", "/api/onboarding/session", { token, body }));
      expect(await expectStatus(await put({ currentStep: 2, progress: 33.3 }), 200)).toEqual({
        userId: user,
        currentStep: 2,
        progress: 33.3,
        apiKeysComplete: false,
      });
      await expectStatus(await prod.fetch(request("POST", "/api/onboarding/api-keys", { token, body: sampleKeys(77) })), 200);
      const after = await expectStatus(await put({ currentStep: 5, progress: 1e-300 }), 200);
      expect(after).toEqual({ userId: user, currentStep: 5, progress: 0, apiKeysComplete: true });
      expect(await expectStatus(await prod.fetch(request("GET", "/api/onboarding/session", { token })), 200)).toEqual(after);
    });

    it("two users save at the same time and each sees only their own keys", async () => {
      const [a, b] = ["user_iso_a", "user_iso_b"];
      const [ka, kb] = [sampleKeys(1), sampleKeys(2)];
      const [ra, rb] = await Promise.all([
        prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(a), body: ka })),
        prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(b), body: kb })),
      ]);
      const sa = await expectStatus(ra, 200);
      await expectStatus(rb, 200);
      expect(sa).toMatchObject({ userId: a, mode: "production", saved: ["gemini", "exa", "copilotkit"], storage: ["database"] });
      expect(JSON.stringify(sa)).not.toContain(ka.gemini);
      expect(JSON.stringify(sa)).not.toContain(ka.exa);

      const la = await expectStatus(await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token(a) })), 200);
      expect(la.keys.map((k: any) => k.hint)).toEqual(["…" + ka.gemini.slice(-4), "…" + ka.exa.slice(-4), "…" + ka.copilotkit.slice(-4)]);
      expect(la.keys.find((k: any) => k.provider === "copilotkit").value).toBe(ka.copilotkit);
      expect(la.missing).toEqual([]);

      expect((await userApiKeys(prod.runtime, a)).keys).toEqual(ka);
      expect((await userApiKeys(prod.runtime, b)).keys).toEqual(kb);

      // B deletes "their" gemini key: A's stays.
      const del = await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=gemini", { token: prod.token("user_iso_c") }));
      await expectStatus(del, 404);
      expect((await userApiKeys(prod.runtime, a)).keys.gemini).toBe(ka.gemini);
      expect(existsSync(prod.envFile)).toBe(false);
    });

    it("stores no plaintext and audits without key material", async () => {
      const keys = sampleKeys(3);
      await expectStatus(
        await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token("user_plain"), body: keys })),
        200,
      );
      // Saving the stored key again is no change (no audit row); another key is a replace.
      const same = await expectStatus(
        await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token("user_plain"), body: { gemini: keys.gemini } })),
        200,
      );
      expect(same).toMatchObject({ saved: [], unchanged: ["gemini"] });
      const other = sampleKeys(33).gemini;
      await expectStatus(
        await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token("user_plain"), body: { gemini: other } })),
        200,
      );
      const dump =
        JSON.stringify(await database.rows(sql`select * from api_keys`)) +
        JSON.stringify(await database.rows(sql`select * from key_events`));
      for (const value of [...Object.values(keys), other]) expect(dump).not.toContain(value);
      const events = await database.rows<{ action: string; provider: string }>(
        sql`select action, provider from key_events where user_id = 'user_plain' order by id`,
      );
      expect(events.map((e) => `${e.provider}:${e.action}`)).toEqual(["gemini:save", "exa:save", "copilotkit:save", "gemini:replace"]);
    });

    it("development writes .env and the resolver reads it", async () => {
      const keys = sampleKeys(4);
      const body = await expectStatus(await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: keys })), 200);
      expect(body).toMatchObject({ userId: "local-dev", mode: "development", storage: ["database", "env"] });
      const text = readFileSync(dev.envFile, "utf8");
      expect(text).toContain(`GEMINI_API_KEY=${keys.gemini}`);
      const resolved = await userApiKeys(dev.runtime, "local-dev");
      expect(resolved).toMatchObject({ source: "env", keys });
      // Another (signed-in) user never runs on the developer's .env keys.
      expect(await userApiKeys(dev.runtime, "user_someone_else")).toMatchObject({ source: "database", keys: {} });
      expect(dev.logs.some((l) => l.includes("[DEV MODE] Using .env file"))).toBe(true);
      await expectStatus(await dev.fetch(request("DELETE", "/api/onboarding/api-keys?provider=exa")), 204);
      expect(readFileSync(dev.envFile, "utf8")).not.toContain("EXA_API_KEY");
    });

    it("session round trip", async () => {
      const token = prod.token("user_session");
      let body = await expectStatus(await prod.fetch(request("GET", "/api/onboarding/session", { token })), 200);
      expect(body).toEqual({ userId: "user_session", currentStep: 1, progress: 0, apiKeysComplete: false });
      body = await expectStatus(
        await prod.fetch(request("PUT", "/api/onboarding/session", { token, body: { currentStep: 3, progress: 50 } })),
        200,
      );
      expect(body).toEqual({ userId: "user_session", currentStep: 3, progress: 50, apiKeysComplete: false });
    });
  });
}
