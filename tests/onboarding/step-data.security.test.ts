/**
 * Hostile ALwrity step data through the app (POST /api/onboarding/step/{step}/complete), the
 * issue's reproductions: "\u0000", a lone "\ud800" or 5,000 levels of nesting in `data` gave a
 * 500 (a stack overflow in the log); `{"gemini_api_key": "AIza…"}` was stored and exported as
 * text. Each is now a 400 naming the field by pointer, and nothing is stored.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

let database: TestDatabase;
let prod: TestRuntime;
const userId = "user_step_data";
const keys = sampleKeys(5151);

beforeAll(async () => {
  database = await backends[0]!.open();
  prod = makeRuntime({ database, mode: "production" });
});
afterAll(async () => {
  await database.destroy();
});

/** Sends `text` (JSON as written, escapes and all) as step 2's body. */
const complete = (text: string, step = 2) =>
  prod.fetch(request("POST", `/api/onboarding/step/${step}/complete`, { token: prod.token(userId), rawBody: text }));

const storedSteps = async () => (await database.rows<{ n: number }>(sql`select count(*)::int as n from onboarding_steps`))[0]!.n;

describe("hostile step data is a 400 with a pointer, and nothing is stored", () => {
  const cases: [label: string, body: string, pointer: string, message: RegExp][] = [
    ["a NUL character", String.raw`{"data":{"site":"a\u0000b"}}`, "/data/site", /NUL/],
    ["a lone surrogate", String.raw`{"data":{"site":{"name":"\ud800"}}}`, "/data/site/name", /lone surrogate/],
    ["a lone surrogate in a name", String.raw`{"data":{"x\udc00":1}}`, "/data", /lone surrogate/],
    [
      "5,000 levels of nesting",
      `{"data":{"deep":${"[".repeat(5_000)}${"]".repeat(5_000)}}}`,
      "/data/deep/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0",
      /levels/,
    ],
    [
      "a Gemini key outside data.api_keys",
      JSON.stringify({ data: { gemini_api_key: keys.gemini } }),
      "/data/gemini_api_key",
      /shaped like an API key/,
    ],
    [
      "an Exa key deep inside",
      JSON.stringify({ data: { research: { providers: [{ exa: keys.exa }] } } }),
      "/data/research/providers/0/exa",
      /API key/,
    ],
    ["a key as a property name", JSON.stringify({ data: { [keys.copilotkit]: true } }), "/data", /API key/],
  ];

  for (const [label, body, pointer, message] of cases) {
    it(label, async () => {
      const before = await storedSteps();
      const response = await complete(body);
      const problem = await expectStatus(response, 400);
      expect(problem.code).toBe("invalid-request");
      expect(problem.errors).toContainEqual({ pointer, message: expect.stringMatching(message) });
      for (const key of Object.values(keys)) expect(JSON.stringify(problem)).not.toContain(key);
      expect(await storedSteps()).toBe(before);
      for (const line of prod.logs) for (const key of Object.values(keys)) expect(line).not.toContain(key);
    });
  }

  it("business information (kept as step 2's data) refuses a key shape too, by pointer", async () => {
    const before = await storedSteps();
    const body = JSON.stringify({ business_description: `we sell tea; our key is ${keys.gemini}` });
    const response = await prod.fetch(request("POST", "/onboarding/business-info", { token: prod.token(userId), rawBody: body }));
    const problem = await expectStatus(response, 400);
    expect(problem.errors).toContainEqual({ pointer: "/business_description", message: expect.stringMatching(/API key/) });
    expect(JSON.stringify(problem)).not.toContain(keys.gemini);
    expect(await storedSteps()).toBe(before);
  });

  it("keys in data.api_keys still go to the key service (encrypted), and ordinary data is stored", async () => {
    const response = await complete(JSON.stringify({ data: { api_keys: { gemini: keys.gemini }, website_url: "https://ok.example" } }), 1);
    const body = await expectStatus(response, 200);
    expect(body.saved).toEqual(["gemini"]);
    expect(body.data).toEqual({ website_url: "https://ok.example" });
    const rows = await database.rows<{ data: unknown }>(sql`select data from onboarding_steps`);
    expect(JSON.stringify(rows)).not.toContain(keys.gemini);
    expect(JSON.stringify(rows)).toContain("https://ok.example");
  });
});
