/** `validate: true` checks a Gemini key with a free upstream call before anything is saved. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { backends } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import type { TestDatabase } from "../helpers/db.js";
import { useFakeGemini } from "../helpers/upstreams.js";

describe("validate: true", () => {
  const gemini = useFakeGemini();
  let database: TestDatabase;
  let rt: TestRuntime;

  beforeAll(async () => {
    database = await backends[0]!.open();
    rt = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, UPSTREAM_TIMEOUT_MS: "500" } });
  });
  afterAll(async () => {
    rt.cleanup();
    await database.destroy();
  });

  const count = async () => (await database.rows<{ n: number }>(sql`select count(*)::int as n from api_keys`))[0]!.n;

  it("marks a key Google accepts as validated, with one list-models call carrying that key", async () => {
    const keys = sampleKeys(100);
    const body = await expectStatus(
      await rt.fetch(
        request("POST", "/api/onboarding/api-keys", { token: rt.token("user_v1"), body: { gemini: keys.gemini, validate: true } }),
      ),
      200,
    );
    expect(body.keys).toEqual([expect.objectContaining({ provider: "gemini", validated: true })]);
    const calls = gemini.requests.filter((r) => r.apiKey === keys.gemini);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(["GET /v1beta/models"]);
    expect(calls[0]!.query.pageSize).toBe("1");
  });

  it("answers 422 provider-rejected-key for a key Google refuses and saves nothing", async () => {
    const keys = sampleKeys(101);
    gemini.setMode({ fail: 401 }, keys.gemini);
    const before = await count();
    const problem = await expectStatus(
      await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token("user_v2"), body: { ...keys, validate: true } })),
      422,
    );
    expect(problem).toMatchObject({ code: "provider-rejected-key", provider: "gemini" });
    expect(JSON.stringify(problem)).not.toContain(keys.gemini);
    expect(await count()).toBe(before);
  });

  it("maps an unreachable Google to 502 and saves nothing; without validate no call is made", async () => {
    const keys = sampleKeys(102);
    gemini.setMode({ fail: 500 }, keys.gemini);
    const before = await count();
    const problem = await expectStatus(
      await rt.fetch(
        request("POST", "/api/onboarding/api-keys", { token: rt.token("user_v3"), body: { gemini: keys.gemini, validate: true } }),
      ),
      502,
    );
    expect(problem.code).toBe("upstream-unavailable");
    expect(await count()).toBe(before);

    const callsBefore = gemini.requests.length;
    const saved = await expectStatus(
      await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token("user_v3"), body: { gemini: keys.gemini } })),
      200,
    );
    expect(saved.keys[0].validated).toBeUndefined();
    expect(gemini.requests.length).toBe(callsBefore);
  });
});
