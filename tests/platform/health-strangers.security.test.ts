/**
 * GET /api/health for strangers and for the operator. The reproduction: anonymous
 * `/api/health` told the platform, driver, version and the names of missing variables, and
 * ran a query per request with no limit. Now a stranger gets `status` and `mode` only, and a
 * reused probe; the operator (`x-health-token: HEALTH_TOKEN`, or anyone in development, which
 * answers this machine only) gets the details and a fresh probe.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.js";
import { ConfigError, loadConfig } from "../../lib/platform/env.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, operatorHealth, request, TEST_HEALTH_TOKEN } from "../helpers/runtime.js";

let database: TestDatabase;
/** Database queries seen (each `rows` call of the health probe). */
let queries = 0;
let counted: Database;

beforeAll(async () => {
  database = await backends[0]!.open();
  counted = {
    ...database,
    rows: (query) => {
      queries++;
      return database.rows(query);
    },
  };
});
afterAll(async () => {
  await database.destroy();
});

const DETAILS = ["modeReason", "database", "driver", "misconfigured", "warnings", "version"];

describe("production: strangers get status and mode only", () => {
  it("healthy: {status, mode}, nothing about the platform, driver, version or variables", async () => {
    const prod = makeRuntime({ database: counted, mode: "production", env: { AWS_LAMBDA_FUNCTION_NAME: "byok-prod-fn" } });
    const tries: Record<string, string>[] = [
      {},
      { "x-health-token": "wrong-token-of-the-right-length" },
      { "x-health-token": "" },
      { "x-health-token": TEST_HEALTH_TOKEN.slice(0, -1) },
    ];
    for (const headers of tries) {
      const response = await prod.fetch(request("GET", "/api/health", { headers }));
      const text = await response.clone().text();
      expect(await expectStatus(response, 200), JSON.stringify(headers)).toEqual({ status: "ok", mode: "production" });
      for (const word of ["AWS_LAMBDA", "lambda", "pglite", "DEPLOY_ENV", "version", "driver"]) expect(text).not.toContain(word);
    }
  });

  it("misconfigured: 503 {status: misconfigured, mode}, without naming the variables", async () => {
    const prod = makeRuntime({ database: counted, mode: "production", env: { KEY_ENCRYPTION_KEYS: "", CLERK_JWT_KEY: "" } });
    const response = await prod.fetch(request("GET", "/api/health"));
    const text = await response.clone().text();
    expect(await expectStatus(response, 503)).toEqual({ status: "misconfigured", mode: "production" });
    expect(text).not.toContain("KEY_ENCRYPTION_KEYS");
    expect(text).not.toContain("CLERK");
    const operator = await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 503);
    expect(operator.misconfigured).toEqual(expect.arrayContaining(["KEY_ENCRYPTION_KEYS", "CLERK_JWT_KEY"]));
  });

  it("the operator's token gives the details", async () => {
    const prod = makeRuntime({ database: counted, mode: "production" });
    const body = await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
    expect(Object.keys(body).sort()).toEqual(["mode", "status", ...DETAILS].sort());
    expect(body).toMatchObject({ status: "ok", mode: "production", database: "ok", driver: "pglite" });
  });

  it("without HEALTH_TOKEN nobody gets the details (npm run check-config is the operator's way)", async () => {
    const prod = makeRuntime({ database: counted, mode: "production", env: { HEALTH_TOKEN: "" } });
    const tries: Record<string, string>[] = [{}, { ...operatorHealth }, { "x-health-token": "" }];
    for (const headers of tries) {
      expect(await expectStatus(await prod.fetch(request("GET", "/api/health", { headers })), 200)).toEqual({
        status: "ok",
        mode: "production",
      });
    }
  });

  it("cheap: strangers share one probe; the operator's probe is fresh", async () => {
    const prod = makeRuntime({ database: counted, mode: "production" });
    queries = 0;
    for (let i = 0; i < 25; i++) await expectStatus(await prod.fetch(request("GET", "/api/health")), 200);
    expect(queries).toBe(1);
    for (let i = 0; i < 3; i++) await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
    expect(queries).toBe(4);
  });

  it("HEALTH_TOKEN must be a real secret (16 characters or more)", () => {
    expect(() => loadConfig({ HEALTH_TOKEN: "short" })).toThrow(ConfigError);
    expect(loadConfig({ HEALTH_TOKEN: TEST_HEALTH_TOKEN }).healthToken).toBe(TEST_HEALTH_TOKEN);
  });
});

describe("development: the details for anyone (only this machine is answered)", () => {
  it("gives every field without a token", async () => {
    const dev = makeRuntime({ database: counted, mode: "development", env: { HEALTH_TOKEN: "" } });
    const body = await expectStatus(await dev.fetch(request("GET", "/api/health")), 200);
    expect(Object.keys(body).sort()).toEqual(["mode", "status", ...DETAILS].sort());
  });
});
