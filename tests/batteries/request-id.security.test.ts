/** Request ids are echoed for tracing, never when they look like a secret; dev mode refuses unreadable credentials. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

describe("request ids and dev-mode credentials", () => {
  let database: TestDatabase;
  let dev: TestRuntime;
  beforeAll(async () => {
    database = await backends[0]!.open();
    dev = makeRuntime({ database, mode: "development" });
  });
  afterAll(async () => {
    dev.cleanup();
    await database.destroy();
  });

  it("echoes a client's request id", async () => {
    const response = await dev.fetch(request("GET", "/api/health", { headers: { "x-request-id": "trace-1234abcd" } }));
    expect(response.headers.get("x-request-id")).toBe("trace-1234abcd");
  });

  it("replaces a request id shaped like a key instead of echoing or storing it", async () => {
    const key = sampleKeys(9).gemini;
    const response = await dev.fetch(request("GET", "/api/onboarding/api-keys", { headers: { "x-request-id": key } }));
    const body = await expectStatus(response, 200);
    expect(response.headers.get("x-request-id")).toMatch(/^req_/);
    expect(JSON.stringify(body) + dev.logs.join("\n")).not.toContain(key);
  });

  it("answers 401 in development when Clerk is configured and the Authorization header is unreadable", async () => {
    const problem = await expectStatus(
      await dev.fetch(request("GET", "/api/onboarding/api-keys", { headers: { authorization: "Bearer a b" } })),
      401,
    );
    expect(problem.code).toBe("unauthorized");
    // No header at all is still the developer.
    const own = await expectStatus(await dev.fetch(request("GET", "/api/onboarding/api-keys")), 200);
    expect(own.userId).toBe("local-dev");
  });
});
