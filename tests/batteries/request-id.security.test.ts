/**
 * Request ids are echoed for tracing, never when they look like a secret; the id the server made
 * is stored beside the client's in audit and usage rows (a client chooses its own, so it cannot
 * be trusted to be unique); dev mode refuses unreadable credentials.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

const upstreams = useFakeUpstreams();

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

  it("stores the server's own request id beside the client's in audit and usage rows, in both cases", async () => {
    const { gemini, exa } = upstreams;
    const prod = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url } });
    const userId = "user_server_request_id";
    const token = prod.token(userId);
    const chosen = "trace-chosen-by-client-01";
    // Two requests with the same client id (anyone may send any id), one with none.
    const sends: Record<string, string>[] = [{ "x-request-id": chosen }, { "x-request-id": chosen }, {}];
    for (const [i, headers] of sends.entries()) {
      await expectStatus(
        await prod.fetch(request("POST", "/api/onboarding/api-keys", { token, body: sampleKeys(7001 + i), headers })),
        200,
      );
    }
    const generated = await prod.fetch(
      request("POST", "/api/blog/generate", {
        token,
        body: { topic: "ids" },
        headers: { accept: "application/json", "x-request-id": chosen },
      }),
    );
    await expectStatus(generated, 200);
    const audit = await database.rows<{ request_id: string; server_request_id: string | null }>(
      sql`select request_id, server_request_id from key_events where user_id = ${userId} order by id`,
    );
    const usage = await database.rows<{ request_id: string; server_request_id: string | null }>(
      sql`select request_id, server_request_id from usage_events where user_id = ${userId} order by id`,
    );
    expect(usage.length).toBeGreaterThan(0);
    for (const row of [...audit, ...usage]) expect(row.server_request_id).toMatch(/^req_[0-9a-f]{24}$/);
    const byClient = audit.filter((row) => row.request_id === chosen);
    expect(byClient.length).toBeGreaterThanOrEqual(2);
    // The client's id repeats; the server's ids tell the two requests apart.
    expect(new Set(byClient.map((row) => row.server_request_id)).size).toBe(2);
    // Without a client id, the server's is both.
    for (const row of audit.filter((row) => row.request_id !== chosen)) expect(row.server_request_id).toBe(row.request_id);
    for (const row of usage) expect(row.request_id).toBe(chosen);
    // The export shows both.
    const exported = await expectStatus(await prod.fetch(request("GET", "/api/me/export", { token })), 200);
    expect(exported.auditEvents[0]).toMatchObject({ requestId: chosen, serverRequestId: expect.stringMatching(/^req_/) });
    expect(exported.usage[0]).toMatchObject({ requestId: chosen, serverRequestId: expect.stringMatching(/^req_/) });
    // DELETE /api/me's tombstone too.
    await prod.fetch(request("DELETE", "/api/me", { token, headers: { "x-request-id": chosen } }));
    const [tombstone] = await database.rows<{ request_id: string; server_request_id: string | null }>(
      sql`select request_id, server_request_id from key_events where user_id = ${userId} and action = 'account-delete'`,
    );
    expect(tombstone).toMatchObject({ request_id: chosen, server_request_id: expect.stringMatching(/^req_/) });
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
