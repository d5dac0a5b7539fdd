/**
 * examples/gateway/node.ts works as documented: the unchanged SDKs it sets up reach the fake
 * upstreams through the gateway with the signed-in user's stored keys.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { runExample } from "../../examples/gateway/node.js";
import { serveApp, type Served } from "./gateway-kit.js";

describe("examples/gateway/node.ts", () => {
  const { gemini, exa } = useFakeUpstreams({ resetEach: true });
  let database: TestDatabase;
  let rt: TestRuntime;
  let served: Served;
  beforeAll(async () => {
    database = await backends[0]!.open();
    rt = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url } });
    served = await serveApp(rt);
  });
  afterAll(async () => {
    await served?.close();
    rt?.cleanup();
    await database?.destroy();
  });

  it("streams a Gemini answer and runs an Exa search on the user's own keys", async () => {
    const userId = `user_example_${randomBytes(4).toString("hex")}`;
    const keys = sampleKeys(23_300);
    await expectStatus(
      await rt.fetch(
        request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: { gemini: keys.gemini, exa: keys.exa } }),
      ),
      200,
    );
    let printed = "";
    const result = await runExample({ baseUrl: served.url, bearer: rt.token(userId) }, (text) => (printed += text));
    expect(result).toEqual({ text: gemini.expectedText, results: 3 });
    expect(printed).toContain("Source 1");
    expect(gemini.requests.map((r) => r.apiKey)).toEqual([keys.gemini]);
    expect(exa.requests.map((r) => r.apiKey)).toEqual([keys.exa]);
  });
});
