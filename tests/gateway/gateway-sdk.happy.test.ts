/**
 * The gateway drives the unchanged official SDKs (@google/generative-ai, exa-js) to the fake
 * upstreams for two users at once, over real HTTP: each upstream call carries its own user's
 * stored key and no other (never the key the SDK was given), usage and spend land on the right
 * user and match what the fakes billed each key, every call is audited; and an operator's
 * backend does the same with a service credential naming the user.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { issueCredential } from "../../lib/gateway/credentials.js";
import {
  auditRows,
  authHeaders,
  exaClient,
  geminiModel,
  ledger,
  SDK_PLACEHOLDER_KEY,
  serveApp,
  usageRows,
  type Served,
  newUser as newGatewayUser,
  settled,
} from "./gateway-kit.js";

for (const backend of backends) {
  describe.skipIf(!backend.available)(`gateway with the official SDKs ${backendLabel(backend)}`, () => {
    const { gemini, exa } = useFakeUpstreams({ resetEach: true });
    let database: TestDatabase;
    let rt: TestRuntime;
    let served: Served;

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({
        database,
        mode: "production",
        env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, RATE_LIMIT_GATEWAY_PER_MINUTE: "1000" },
      });
      served = await serveApp(rt);
    });
    afterAll(async () => {
      await served?.close();
      rt?.cleanup();
      await database?.destroy();
    });

    const newUser = (seed: number) => newGatewayUser(rt, "user_gw", seed);

    /** Every kind of call, through the SDKs, for one caller. */
    async function everyCall(headers: Record<string, string>) {
      const model = geminiModel(served.url, headers);
      const prompt = { contents: [{ role: "user", parts: [{ text: "Write about keys that never leave the vault" }] }] };
      const streamed = await model.generateContentStream({ ...prompt, generationConfig: { maxOutputTokens: 512 } });
      let text = "";
      for await (const chunk of streamed.stream) text += chunk.text();
      const whole = await model.generateContent(prompt);
      const counted = await model.countTokens("how many tokens is this");
      const client = exaClient(served.url, headers);
      const search = await client.search("bring your own key", { numResults: 3, contents: { highlights: { maxCharacters: 200 } } });
      const similar = await client.findSimilar("https://example.com/", { numResults: 2, contents: false });
      const contents = await client.getContents(["https://example.com/a", "https://example.com/b"]);
      const answer = await client.answer("what is bring your own key?");
      return { text, whole: whole.response.text(), totalTokens: counted.totalTokens, search, similar, contents, answer };
    }

    it("two users at once: each upstream call carries its own user's key and no other; usage, spend and audit land on the right user", async () => {
      const a = await newUser(23_001);
      const b = await newUser(23_002);
      const [ra, rb] = await Promise.all([everyCall(authHeaders(a.token)), everyCall(authHeaders(b.token))]);
      for (const r of [ra, rb]) {
        expect(r.text).toBe(gemini.expectedText);
        expect(r.whole).toBe(gemini.expectedText);
        expect(r.totalTokens).toBeGreaterThan(0);
        expect(r.search.results).toHaveLength(3);
        expect(r.similar.results).toHaveLength(2);
        expect(r.contents.results).toHaveLength(2);
        expect(r.answer.answer).toContain("bring your own key");
      }

      // Upstream: only the two stored keys, never the SDK's, each user's calls with their own key.
      const geminiKeys = gemini.requests.map((r) => r.apiKey);
      const exaKeys = exa.requests.map((r) => r.apiKey);
      expect(new Set(geminiKeys)).toEqual(new Set([a.keys.gemini, b.keys.gemini]));
      expect(new Set(exaKeys)).toEqual(new Set([a.keys.exa, b.keys.exa]));
      for (const key of [a.keys.gemini, b.keys.gemini]) expect(geminiKeys.filter((k) => k === key)).toHaveLength(3);
      for (const key of [a.keys.exa, b.keys.exa]) expect(exaKeys.filter((k) => k === key)).toHaveLength(4);
      for (const r of [...gemini.requests, ...exa.requests]) {
        expect(JSON.stringify(r.headers)).not.toContain(SDK_PLACEHOLDER_KEY);
        expect(r.headers.authorization).toBeUndefined();
      }
      expect(rt.logs.join("\n")).not.toContain(SDK_PLACEHOLDER_KEY);
      for (const key of [a.keys.gemini, b.keys.gemini, a.keys.exa, b.keys.exa]) expect(rt.logs.join("\n")).not.toContain(key);

      for (const user of [a, b]) {
        await settled(database, user.userId);
        const audit = await auditRows(database, user.userId);
        expect(audit.map((row) => `${row.caller} ${row.provider} ${row.operation} ${row.model ?? "-"} ${row.outcome}`).sort()).toEqual(
          [
            "session exa answer - ok",
            "session exa contents - ok",
            "session exa findSimilar - ok",
            "session exa search - ok",
            "session gemini countTokens gemini-3.5-flash ok",
            "session gemini generateContent gemini-3.5-flash ok",
            "session gemini streamGenerateContent gemini-3.5-flash ok",
          ].sort(),
        );
        // Usage: the metered calls (countTokens is free), none partial.
        const usage = await usageRows(database, user.userId);
        expect(usage.map((u) => `${u.provider} ${u.operation}`).sort()).toEqual(
          ["exa answer", "exa contents", "exa findSimilar", "exa search", "gemini generateContent", "gemini streamGenerateContent"].sort(),
        );
        expect(usage.every((u) => !u.partial)).toBe(true);
        // Spend: exactly what the fakes billed this user's keys; nothing left reserved.
        const billed = gemini.billedUsd(user.keys.gemini) + exa.billedUsd(user.keys.exa);
        const { spentUsd, reservedUsd } = await ledger(database, user.userId);
        expect(reservedUsd).toBe(0);
        expect(spentUsd).toBeCloseTo(billed, 7);
        expect(spentUsd).toBeGreaterThan(0);
      }
    });

    it("a service credential acts for the user it names: that user's key, that user's ledger, audited as the credential", async () => {
      const a = await newUser(23_003);
      const { credential, view } = await issueCredential(database, "test backend");
      const model = geminiModel(served.url, authHeaders(credential, a.userId));
      const result = await model.generateContent("hello from an operator's backend");
      expect(result.response.text()).toBe(gemini.expectedText);
      const search = await exaClient(served.url, authHeaders(credential, a.userId)).search("service", { numResults: 1 });
      expect(search.results).toHaveLength(1);
      expect(gemini.requests.map((r) => r.apiKey)).toEqual([a.keys.gemini]);
      expect(exa.requests.map((r) => r.apiKey)).toEqual([a.keys.exa]);
      await settled(database, a.userId);
      expect((await auditRows(database, a.userId)).map((row) => row.caller)).toEqual([`service:${view.id}`, `service:${view.id}`]);
      expect((await ledger(database, a.userId)).spentUsd).toBeCloseTo(gemini.billedUsd(a.keys.gemini) + exa.billedUsd(a.keys.exa), 7);
      expect(rt.logs.join("\n")).not.toContain(credential);
    });
  });
}

describe("gateway in development: the .env keys, no sign-in", () => {
  const { gemini, exa } = useFakeUpstreams({ resetEach: true });
  let database: TestDatabase;
  let rt: TestRuntime;
  beforeAll(async () => {
    database = await backends[0]!.open();
    rt = makeRuntime({ database, mode: "development", env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url } });
  });
  afterAll(async () => {
    rt?.cleanup();
    await database?.destroy();
  });

  it("a call without a token runs on the .env key, says so (x-byok-key-source: env), and is metered for the development user", async () => {
    const keys = sampleKeys(23_400);
    writeFileSync(rt.envFile, `GEMINI_API_KEY=${keys.gemini}\n`);
    const response = await rt.fetch(
      request("POST", "/api/gateway/gemini/v1beta/models/gemini-3.5-flash:generateContent", {
        body: { contents: [{ role: "user", parts: [{ text: "hello" }] }] },
      }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-byok-key-source")).toBe("env");
    await response.text();
    expect(gemini.requests.map((r) => r.apiKey)).toEqual([keys.gemini]);
    const devUser = rt.runtime.config.devUserId;
    await settled(database, devUser);
    expect((await auditRows(database, devUser)).map((row) => `${row.caller} ${row.outcome}`)).toEqual(["dev-user ok"]);
    expect((await ledger(database, devUser)).spentUsd).toBeCloseTo(gemini.billedUsd(keys.gemini), 7);
    // No Exa key in .env: 409, nothing sent.
    const refused = await rt.fetch(request("POST", "/api/gateway/exa/search", { body: { query: "x" } }));
    expect(refused.status).toBe(409);
    expect(exa.requests).toHaveLength(0);
  });

  it("a signed-in user runs on their own saved key, never the .env one; without one, 409 and nothing sent", async () => {
    const developer = sampleKeys(23_410);
    writeFileSync(rt.envFile, `GEMINI_API_KEY=${developer.gemini}\nEXA_API_KEY=${developer.exa}\n`);
    const call = (token: string) =>
      rt.fetch(
        request("POST", "/api/gateway/gemini/v1beta/models/gemini-3.5-flash:generateContent", {
          token,
          body: { contents: [{ role: "user", parts: [{ text: "hello" }] }] },
        }),
      );
    const stranger = await newGatewayUser(rt, "user_gwdev", 23_411, []);
    const refused = await call(stranger.token);
    expect(refused.status).toBe(409);
    expect(gemini.requests).toHaveLength(0);
    const own = await newGatewayUser(rt, "user_gwdev", 23_412, ["gemini"]);
    const answered = await call(own.token);
    expect(answered.status).toBe(200);
    expect(answered.headers.get("x-byok-key-source")).toBe("database");
    await answered.text();
    expect(gemini.requests.map((r) => r.apiKey)).toEqual([own.keys.gemini]);
  });
});
