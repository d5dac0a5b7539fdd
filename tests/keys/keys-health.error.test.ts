/**
 * Key health in the key list: `status` (`ok`, `rejected`, `unreadable`, `unknown`),
 * `lastUsedAt` and `lastError` (a problem code and a time, never upstream text), and
 * `needsReplacement`, after the fake upstreams reject a key and after they accept it again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { listKeysResponse } from "../../lib/keys/schemas.js";
import { keyRejectionReasons } from "../../lib/providers/rejections.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { waitFor } from "../helpers/wait.js";

const KEYRING = generateKeyringEntry("healthtest");
const { gemini, exa } = useFakeUpstreams({ resetEach: true });
let seed = 50_000;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`key health ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    const runtimes: TestRuntime[] = [];
    const usedKeys: string[] = [];

    function runtime(env: Record<string, string> = {}, mode: "production" | "development" = "production"): TestRuntime {
      const rt = makeRuntime({
        database,
        mode,
        env: {
          KEY_ENCRYPTION_KEYS: KEYRING,
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          RATE_LIMIT_GENERATE_PER_MINUTE: "0",
          RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
          ...env,
        },
      });
      runtimes.push(rt);
      return rt;
    }
    async function save(userId: string, keys: Record<string, unknown>, rt = prod) {
      for (const value of Object.values(keys)) if (typeof value === "string") usedKeys.push(value);
      return expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: keys })), 200);
    }
    async function user() {
      const userId = `user_health_${randomBytes(4).toString("hex")}`;
      const keys = sampleKeys(++seed);
      await save(userId, keys);
      return { userId, keys };
    }
    async function list(userId: string, rt = prod) {
      const response = await rt.fetch(request("GET", "/api/onboarding/api-keys", { token: rt.token(userId) }));
      const text = await response.clone().text();
      const body = listKeysResponse.parse(await expectStatus(response, 200));
      const view = (provider: string) => body.keys.find((k) => k.provider === provider)!;
      return { body, text, view };
    }
    const generate = (userId: string, rt = prod) =>
      rt.fetch(
        request("POST", "/api/blog/generate", {
          token: rt.token(userId),
          body: { topic: "Healthy keys" },
          headers: { accept: "application/json" },
        }),
      );

    beforeAll(async () => {
      database = await backend.open();
      prod = runtime();
    });
    afterAll(async () => {
      const logs = runtimes.flatMap((rt) => rt.logs).join("\n");
      for (const key of usedKeys) expect(logs).not.toContain(key);
      for (const rt of runtimes) rt.cleanup();
      await database.destroy();
    });

    it("a key never used is `unknown`, with no lastUsedAt or lastError; a key Google just accepted is `ok`", async () => {
      const { userId } = await user();
      const { body } = await list(userId);
      expect(body.keys.map((k) => [k.provider, k.status])).toEqual([
        ["gemini", "unknown"],
        ["exa", "unknown"],
        ["copilotkit", "unknown"],
      ]);
      for (const k of body.keys) expect(k.lastUsedAt ?? k.lastError).toBeUndefined();
      expect(body.needsReplacement).toEqual([]);

      const validated = await save(userId, { gemini: sampleKeys(++seed).gemini, validate: true });
      const gem = validated.keys.find((k: { provider: string }) => k.provider === "gemini");
      expect(gem).toMatchObject({ status: "ok", validated: true, lastUsedAt: expect.any(String) });
    });

    // `text`: what Google said (never shown); `reason`: our code for it, shown with what to do.
    const rejections = [
      { name: "400 API_KEY_INVALID", mode: { fail: "invalid-key" as const }, text: "API key not valid", reason: "key-invalid" },
      { name: "401", mode: { fail: 401 }, text: "invalid authentication credentials", reason: "key-rejected" },
      {
        name: "401 ACCESS_TOKEN_TYPE_UNSUPPORTED",
        mode: { fail: "key-type-unsupported" as const },
        text: "Expected OAuth 2 access token",
        reason: "key-type-unsupported",
      },
      {
        name: "403 API_KEY_SERVICE_BLOCKED",
        mode: { fail: "service-blocked" as const },
        text: "are blocked",
        reason: "key-service-blocked",
      },
      { name: "403 (quoting the key)", mode: { fail: 403 }, text: "has been suspended", reason: "key-suspended" },
    ] as const;
    for (const rejection of rejections) {
      it(`Gemini ${rejection.name}: the key shows \`rejected\` with lastError provider-rejected-key and needs replacing; accepted again, it is \`ok\``, async () => {
        const { userId, keys } = await user();
        gemini.setMode(rejection.mode, keys.gemini);
        expect((await expectStatus(await generate(userId), 422)).code).toBe("provider-rejected-key");
        let { body, text, view } = await list(userId);
        expect(view("gemini")).toMatchObject({
          status: "rejected",
          lastError: { code: "provider-rejected-key", reason: rejection.reason, action: keyRejectionReasons[rejection.reason] },
          lastUsedAt: expect.any(String),
        });
        expect(view("exa")).toMatchObject({ status: "ok", lastUsedAt: expect.any(String) });
        expect(view("exa").lastError).toBeUndefined();
        expect(view("copilotkit").status).toBe("unknown");
        expect(body.needsReplacement).toEqual(["gemini"]);
        // A code and a time, never what the provider said (which can hold the key).
        expect(text).not.toContain(rejection.text);
        expect(text).not.toContain(keys.gemini);
        const rejectedAt = view("gemini").lastError!.at;

        gemini.setMode({}, keys.gemini);
        await expectStatus(await generate(userId), 200);
        ({ body, view } = await list(userId));
        expect(view("gemini").status).toBe("ok");
        expect(Date.parse(view("gemini").lastUsedAt!)).toBeGreaterThanOrEqual(Date.parse(rejectedAt));
        // The last failure stays on record, older than the last use.
        expect(view("gemini").lastError).toEqual({
          code: "provider-rejected-key",
          at: rejectedAt,
          reason: rejection.reason,
          action: keyRejectionReasons[rejection.reason],
        });
        expect(body.needsReplacement).toEqual([]);
      });
    }

    it("a stored standard key (AIza…) carries the retiring notice until it is replaced; Google's refusal marks it rejected with what to do", async () => {
      const { userId, keys } = await user();
      const standard = `AIzaSy${randomBytes(17).toString("hex").slice(0, 33)}`;
      await save(userId, { gemini: standard });
      let { view, text } = await list(userId);
      expect(view("gemini").notices).toEqual([
        expect.objectContaining({ code: "gemini-standard-key-retiring", action: expect.stringContaining("aistudio.google.com/apikey") }),
      ]);
      expect(view("exa").notices).toBeUndefined();
      expect(text).not.toContain(standard);
      // The fake answers standard keys as Google does since its cutoff: 401 ACCESS_TOKEN_TYPE_UNSUPPORTED.
      const problem = await expectStatus(await generate(userId), 422);
      expect(problem).toMatchObject({
        code: "provider-rejected-key",
        reason: "standard-key-retired",
        action: "POST /api/onboarding/api-keys",
      });
      expect(String(problem.detail)).toContain("aistudio.google.com/apikey");
      ({ view } = await list(userId));
      expect(view("gemini")).toMatchObject({
        status: "rejected",
        lastError: { reason: "standard-key-retired", action: keyRejectionReasons["standard-key-retired"] },
      });
      // Replaced by an authorization key: no notice, fresh health.
      await save(userId, { gemini: keys.gemini });
      ({ view } = await list(userId));
      expect(view("gemini").notices).toBeUndefined();
      expect(view("gemini").status).toBe("unknown");
    });

    it("a retired GEMINI_MODEL answers 503 model-unavailable and leaves the user's key health alone", async () => {
      const { userId } = await user();
      const retired = runtime({ GEMINI_MODEL: "gemini-2.5-flash" });
      const problem = await expectStatus(await generate(userId, retired), 503);
      expect(problem).toMatchObject({ code: "model-unavailable" });
      expect(String(problem.detail)).toContain("GEMINI_MODEL");
      const { view } = await list(userId);
      expect(view("gemini").status).toBe("unknown");
      expect(view("gemini").lastError).toBeUndefined();
      // Said once per instance at error level, however many requests fail.
      await expectStatus(await generate(userId, retired), 503);
      expect(retired.logs.filter((line) => line.includes("GEMINI_MODEL is not served by Gemini"))).toHaveLength(1);
    });

    for (const status of [401, 403]) {
      it(`Exa ${status}: the Exa key shows \`rejected\` (the post is still written without research)`, async () => {
        const { userId, keys } = await user();
        exa.setMode({ fail: status }, keys.exa);
        await expectStatus(await generate(userId), 200);
        const { body, view } = await list(userId);
        expect(view("exa")).toMatchObject({
          status: "rejected",
          lastError: { code: "provider-rejected-key", reason: status === 401 ? "key-invalid" : "key-rejected" },
        });
        expect(view("gemini").status).toBe("ok");
        expect(body.needsReplacement).toEqual(["exa"]);
        exa.setMode({}, keys.exa);
        await expectStatus(await generate(userId), 200);
        expect((await list(userId)).view("exa").status).toBe("ok");
      });
    }

    it("a rate-limited key keeps its status and records lastError rate-limited; an outage records nothing", async () => {
      const { userId, keys } = await user();
      await expectStatus(await generate(userId), 200);
      const ok = (await list(userId)).view("gemini");
      expect(ok.status).toBe("ok");
      gemini.setMode({ fail: 429, retryAfterSeconds: 3 }, keys.gemini);
      await expectStatus(await generate(userId), 429);
      const limited = (await list(userId)).view("gemini");
      expect(limited).toMatchObject({ status: "ok", lastError: { code: "rate-limited" } });
      gemini.setMode({ fail: 500 }, keys.gemini);
      await expectStatus(await generate(userId), 502);
      expect((await list(userId)).view("gemini")).toEqual(limited);
    });

    it("replacing a rejected key starts it fresh: `unknown`, no lastError", async () => {
      const { userId, keys } = await user();
      gemini.setMode({ fail: "invalid-key" }, keys.gemini);
      await expectStatus(await generate(userId), 422);
      expect((await list(userId)).view("gemini").status).toBe("rejected");
      await save(userId, { gemini: sampleKeys(++seed).gemini });
      const { body, view } = await list(userId);
      expect(view("gemini").status).toBe("unknown");
      expect(view("gemini").lastError ?? view("gemini").lastUsedAt).toBeUndefined();
      expect(body.needsReplacement).toEqual([]);
    });

    it("a key replaced while a call with the old one was running keeps its fresh health", async () => {
      const { userId, keys } = await user();
      let release!: () => void;
      gemini.setMode({ fail: "invalid-key", holdUntil: new Promise<void>((resolve) => (release = resolve)) }, keys.gemini);
      const pending = generate(userId);
      await waitFor(
        () => gemini.requests.some((r) => r.apiKey === keys.gemini),
        () => "gemini never called",
      );
      await save(userId, { gemini: sampleKeys(++seed).gemini });
      release();
      expect((await pending).status).toBe(422);
      expect((await list(userId)).view("gemini").status).toBe("unknown");
    });

    it("keys that no longer decrypt show `unreadable` and need replacing", async () => {
      const { userId } = await user();
      const other = runtime({ KEY_ENCRYPTION_KEYS: generateKeyringEntry("otherring") });
      const { body } = await list(userId, other);
      expect(body.keys.map((k) => k.status)).toEqual(["unreadable", "unreadable", "unreadable"]);
      expect(body.keys.find((k) => k.provider === "copilotkit")!.value).toBeUndefined();
      expect(body.needsReplacement).toEqual(["gemini", "exa", "copilotkit"]);
      // The right key ring still reads them.
      expect((await list(userId)).body.needsReplacement).toEqual([]);
    });

    it("development generates with the .env keys, the saved ones: their health is recorded on them (one truth, lib/keys/resolver.ts)", async () => {
      const dev = runtime({ DEV_USER_ID: `user_health_dev_${randomBytes(3).toString("hex")}` }, "development");
      const devUser = dev.runtime.config.devUserId;
      const keys = sampleKeys(++seed);
      await expectStatus(await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: keys })), 200);
      usedKeys.push(...Object.values(keys));
      await expectStatus(
        await dev.fetch(
          request("POST", "/api/blog/generate", { body: { topic: "Healthy keys" }, headers: { accept: "application/json" } }),
        ),
        200,
      );
      const listed = await expectStatus(await dev.fetch(request("GET", "/api/onboarding/api-keys")), 200);
      expect(listed.userId).toBe(devUser);
      expect(listed.keys.map((k: { status: string; source: string }) => [k.status, k.source])).toEqual([
        ["ok", "env-file"],
        ["ok", "env-file"],
        ["unknown", "env-file"],
      ]);
      expect(listed.keys[0].lastUsedAt).toBeDefined();
    });
  });
}
