/**
 * Auth battery, driven by the route table: every protected route × every method its module
 * exports, through createApp (local server / Lambda) and the api/ export (Vercel), under
 * networkless verification (CLERK_JWT_KEY), JWKS verification (CLERK_SECRET_KEY + a local
 * Clerk API) and development mode. Every bad token → 401 problem `unauthorized` with
 * WWW-Authenticate, the token never echoed, nothing written. Another user's token sees only
 * its own data, and a DELETE of a key only the other user has → 404.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { settleGeneration } from "../../lib/generation/budget.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, sampleKeys, testSigner, type TestRuntime } from "../helpers/runtime.js";
import { startJwksServer, type JwksServer } from "../../testkit/clerk.js";
import { startFakeGemini, type FakeGemini } from "../../testkit/fakes/gemini.js";
import { startFakeExa, type FakeExa } from "../../testkit/fakes/exa.js";
import {
  badTokenCases,
  databaseFingerprint,
  describeExchange,
  endpointRequest,
  endpoints,
  fileFingerprint,
  problemCode,
  readResponse,
  send,
  transports,
  withTokenCase,
  type Endpoint,
  type Transport,
} from "../helpers/battery.js";

const protectedEndpoints = await endpoints((route) => route.auth);
const signer = testSigner();
const configs = ["production, CLERK_JWT_KEY", "production, JWKS", "development, CLERK_JWT_KEY"] as const;
type ConfigName = (typeof configs)[number];

/** Cases run, per backend (reported at the end). */
const counts: Record<string, number> = {};
const count = (key: string, n = 1) => {
  counts[key] = (counts[key] ?? 0) + n;
};

/**
 * What another user's token may do on each protected endpoint. A new protected endpoint
 * without an entry here fails the coverage test below.
 */
type CrossUserCheck = (ctx: { rt: TestRuntime; transport: Transport; endpoint: Endpoint; owner: string; ownerKeys: ReturnType<typeof sampleKeys>; gemini: FakeGemini }) => Promise<void>;

const intruder = () => `user_intruder_${randomBytes(5).toString("hex")}`;
const call = async (c: Parameters<CrossUserCheck>[0], user: string, parts: Parameters<typeof endpointRequest>[1] = {}) =>
  readResponse(await send(c.rt.runtime, c.transport, c.endpoint, endpointRequest(c.endpoint, { token: c.rt.token(user), ...parts })));

const crossUser: Record<string, CrossUserCheck> = {
  "GET /api/onboarding/api-keys": async (c) => {
    const who = intruder();
    const ex = await call(c, who);
    const body = await expectStatus(new Response(ex.text, { status: ex.status }), 200);
    expect(body).toMatchObject({ userId: who, keys: [], missing: ["gemini", "exa", "copilotkit"] });
    for (const key of Object.values(c.ownerKeys)) expect(ex.text).not.toContain("…" + key.slice(-4));
  },
  "POST /api/onboarding/api-keys": async (c) => {
    const who = intruder();
    const mine = sampleKeys(7_000 + Math.floor(Math.random() * 1_000));
    const ex = await call(c, who, { body: { json: { gemini: mine.gemini } } });
    expect(ex.status, describeExchange("save", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ userId: who, saved: ["gemini"] });
    expect((await userApiKeys(c.rt.runtime, c.owner)).keys).toEqual(c.ownerKeys);
    expect((await userApiKeys(c.rt.runtime, who)).keys).toEqual({ gemini: mine.gemini });
  },
  "DELETE /api/onboarding/api-keys": async (c) => {
    for (const provider of ["gemini", "exa", "copilotkit"]) {
      const ex = await call(c, intruder(), { query: `provider=${provider}` });
      expect(problemCode("delete", ex), describeExchange("delete", ex)).toBe("key-not-found");
      expect(ex.status).toBe(404);
    }
    expect((await userApiKeys(c.rt.runtime, c.owner)).keys).toEqual(c.ownerKeys);
  },
  "GET /api/onboarding/session": async (c) => {
    const who = intruder();
    const ex = await call(c, who);
    expect(ex.status, describeExchange("session", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toEqual({ userId: who, currentStep: 1, progress: 0, apiKeysComplete: false });
  },
  "PUT /api/onboarding/session": async (c) => {
    const who = intruder();
    const ex = await call(c, who, { body: { json: { currentStep: 2, progress: 10 } } });
    expect(ex.status, describeExchange("session", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ userId: who, currentStep: 2, progress: 10 });
    const mineNow = await readResponse(
      await send(c.rt.runtime, c.transport, sessionGet!, endpointRequest(sessionGet!, { token: c.rt.token(c.owner) })),
    );
    expect(JSON.parse(mineNow.text)).toMatchObject({ userId: c.owner, currentStep: 4, progress: 40, apiKeysComplete: true });
  },
  "GET /api/usage": async (c) => {
    const who = intruder();
    const ex = await call(c, who, { query: "from=2020-01-01&to=2020-12-31" });
    expect(ex.status, describeExchange("usage", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ userId: who, totals: {}, daily: [] });
    const owner = await call(c, c.owner, { query: "from=2020-01-01&to=2020-12-31" });
    expect(Object.keys(JSON.parse(owner.text).totals)).toEqual(["gemini"]);
  },
  "GET /api/usage/budget": async (c) => {
    const who = intruder();
    const ex = await call(c, who);
    expect(ex.status, describeExchange("budget", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ userId: who, monthlyUsd: null, source: "default", spentUsd: 0, reservedUsd: 0 });
  },
  "PUT /api/usage/budget": async (c) => {
    const who = intruder();
    const ex = await call(c, who, { body: { json: { monthlyUsd: 7 } } });
    expect(ex.status, describeExchange("budget", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ userId: who, monthlyUsd: 7, source: "user" });
    const owners = await readResponse(await send(c.rt.runtime, c.transport, budgetGet!, endpointRequest(budgetGet!, { token: c.rt.token(c.owner) })));
    expect(JSON.parse(owners.text)).toMatchObject({ userId: c.owner, monthlyUsd: OWNER_CAP, source: "user" });
  },
  "DELETE /api/me": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("delete me", ex)).toBe(204);
    expect((await userApiKeys(c.rt.runtime, c.owner)).keys).toEqual(c.ownerKeys);
    const mineNow = await readResponse(await send(c.rt.runtime, c.transport, sessionGet!, endpointRequest(sessionGet!, { token: c.rt.token(c.owner) })));
    expect(JSON.parse(mineNow.text)).toMatchObject({ userId: c.owner, currentStep: 4, apiKeysComplete: true });
  },
  "GET /api/me/export": async (c) => {
    const who = intruder();
    const ex = await call(c, who);
    expect(ex.status, describeExchange("export", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ userId: who, session: null, keys: [], usage: [], rateLimits: [] });
    for (const key of Object.values(c.ownerKeys)) expect(ex.text).not.toContain("…" + key.slice(-4));
    expect(ex.text).not.toContain(c.owner);
  },
  // ALwrity's routes: the intruder sees an empty onboarding of its own, never the owner's keys, steps or progress.
  "GET /api/onboarding/api-keys/onboarding": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("prefill", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toEqual({ api_keys: {}, total_providers: 3, configured_providers: [] });
  },
  "GET /api/onboarding/api-keys/validate": async (c) => expectNoKeysValidated(await call(c, intruder()), c.ownerKeys),
  "POST /api/onboarding/api-keys/validate": async (c) => expectNoKeysValidated(await call(c, intruder()), c.ownerKeys),
  "GET /api/onboarding/step/:step": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("step", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ step: 1, status: "pending", data: { api_keys: {} } });
    const other = await readResponse(await send(c.rt.runtime, c.transport, c.endpoint, new Request("http://localhost/api/onboarding/step/2", { headers: { authorization: `Bearer ${c.rt.token(intruder())}` } })));
    expect(JSON.parse(other.text)).toMatchObject({ step: 2, status: "pending", data: null });
    for (const key of Object.values(c.ownerKeys)) expect(ex.text + other.text).not.toContain("…" + key.slice(-4));
    expect(other.text).not.toContain(OWNER_SITE);
  },
  "POST /api/onboarding/step/:step/complete": async (c) => {
    const who = intruder();
    const mine = sampleKeys(8_000 + Math.floor(Math.random() * 1_000));
    const ex = await call(c, who, { body: { json: { data: { api_keys: mine } } } });
    expect(ex.status, describeExchange("complete step", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ step: 1, current_step: 2, saved: ["gemini", "exa", "copilotkit"] });
    expect((await userApiKeys(c.rt.runtime, c.owner)).keys).toEqual(c.ownerKeys);
    expect((await userApiKeys(c.rt.runtime, who)).keys).toEqual(mine);
    await expectOwnerSession(c);
  },
  "GET /api/onboarding/init": async (c) => {
    const who = intruder();
    const ex = await call(c, who);
    expect(ex.status, describeExchange("init", ex)).toBe(200);
    const body = JSON.parse(ex.text);
    expect(body.user).toMatchObject({ id: who, clerk_user_id: who });
    expect(body.onboarding).toMatchObject({ current_step: 1, completion_percentage: 0, is_completed: false });
    expect(body.onboarding.steps.every((s: { status: string; data: unknown }) => s.status === "pending" && s.data === null)).toBe(true);
    expect(ex.text).not.toContain(c.owner);
    expect(ex.text).not.toContain(OWNER_SITE);
  },
  "GET /api/onboarding/status": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("status", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ current_step: 1, completion_percentage: 0, is_completed: false });
    expect(ex.text).not.toContain(OWNER_SITE);
  },
  "GET /api/onboarding/progress": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("progress", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toEqual({ progress: 0, current_step: 1, total_steps: 6, completion_percentage: 0, is_completed: false });
  },
  "POST /api/onboarding/complete": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("complete", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ is_completed: true, completion_percentage: 100 });
    await expectOwnerSession(c);
  },
  "GET /api/onboarding/summary": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("summary", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ api_keys: {}, website_analysis: null, research_preferences: null, website_url: null });
    for (const key of Object.values(c.ownerKeys)) expect(ex.text).not.toContain("…" + key.slice(-4));
  },
  "GET /api/onboarding/website-analysis": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("website", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toBeNull();
    const owners = await call(c, c.owner);
    expect(JSON.parse(owners.text)).toMatchObject({ website_url: OWNER_SITE });
  },
  "GET /api/onboarding/research-preferences": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("research", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toBeNull();
    const owners = await call(c, c.owner);
    expect(JSON.parse(owners.text)).toMatchObject({ research_depth: "deep" });
  },
  "POST /api/blog/generate": async (c) => {
    const before = c.gemini.requests.length;
    const ex = await call(c, intruder(), { headers: { accept: "application/json" } });
    expect(problemCode("generate", ex), describeExchange("generate", ex)).toBe("missing-provider-key");
    expect(c.gemini.requests.length).toBe(before);
  },
};
const sessionGet = protectedEndpoints.find((e) => e.label === "GET /api/onboarding/session");
const OWNER_SITE = "https://owner-only.example.com";

function expectNoKeysValidated(ex: Awaited<ReturnType<typeof readResponse>>, ownerKeys: ReturnType<typeof sampleKeys>): void {
  expect(ex.status, describeExchange("validate", ex)).toBe(200);
  expect(JSON.parse(ex.text)).toMatchObject({ all_valid: false, missing: ["gemini", "exa", "copilotkit"] });
  for (const key of Object.values(ownerKeys)) expect(ex.text).not.toContain("…" + key.slice(-4));
}

/** The owner's session is where the owner left it (step 4, 40 %, not completed). */
async function expectOwnerSession(c: Parameters<CrossUserCheck>[0]): Promise<void> {
  const mineNow = await readResponse(await send(c.rt.runtime, c.transport, sessionGet!, endpointRequest(sessionGet!, { token: c.rt.token(c.owner) })));
  expect(JSON.parse(mineNow.text)).toMatchObject({ userId: c.owner, currentStep: 4, progress: 40, apiKeysComplete: true });
}
const budgetGet = protectedEndpoints.find((e) => e.label === "GET /api/usage/budget");
const OWNER_CAP = 42;

describe("auth battery: coverage", () => {
  it("finds protected endpoints in the route table, and every one has a cross-user check", () => {
    expect(protectedEndpoints.length).toBeGreaterThanOrEqual(7);
    expect(protectedEndpoints.map((e) => e.label).filter((label) => !crossUser[label])).toEqual([]);
  });

  it("has at least 40 bad-token cases, each sending something", () => {
    const cases = badTokenCases(signer);
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`auth battery ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let jwks: JwksServer;
    let gemini: FakeGemini;
    let exa: FakeExa;
    const rts = {} as Record<ConfigName, TestRuntime>;
    const owner = `user_owner_${randomBytes(5).toString("hex")}`;
    const ownerKeys = sampleKeys(4242);

    beforeAll(async () => {
      database = await backend.open();
      [gemini, exa] = await Promise.all([startFakeGemini(), startFakeExa()]);
      const secretKey = `sk_test_${randomBytes(12).toString("hex")}`;
      jwks = await startJwksServer(signer.jwks, { secretKey });
      const common = { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, RATE_LIMIT_GENERATE_PER_MINUTE: "0", RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0" };
      rts["production, CLERK_JWT_KEY"] = makeRuntime({ database, mode: "production", env: common });
      rts["production, JWKS"] = makeRuntime({
        database,
        mode: "production",
        env: { ...common, CLERK_JWT_KEY: "", CLERK_SECRET_KEY: secretKey, CLERK_API_URL: jwks.url },
      });
      rts["development, CLERK_JWT_KEY"] = makeRuntime({ database, mode: "development", env: common });
      writeFileSync(rts["development, CLERK_JWT_KEY"].envFile, "# dev file\nOTHER=1\n");

      // The owner's data: keys, a session step, usage.
      const prod = rts["production, CLERK_JWT_KEY"];
      const token = prod.token(owner);
      await expectStatus(
        await send(prod.runtime, "function", byLabel("POST /api/onboarding/api-keys"), endpointRequest(byLabel("POST /api/onboarding/api-keys"), { token, body: { json: ownerKeys } })),
        200,
      );
      // ALwrity's steps 2 and 3 with data only the owner has (before the session is set to step 4, 40 %).
      const complete = byLabel("POST /api/onboarding/step/:step/complete");
      for (const [step, data] of [[2, { website_url: OWNER_SITE }], [3, { research_depth: "deep" }]] as const) {
        const request = new Request(`http://localhost/api/onboarding/step/${step}/complete`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ data, validation_errors: [] }),
        });
        await expectStatus(await send(prod.runtime, "app", complete, request), 200);
      }
      await expectStatus(
        await send(prod.runtime, "function", byLabel("PUT /api/onboarding/session"), endpointRequest(byLabel("PUT /api/onboarding/session"), { token, body: { json: { currentStep: 4, progress: 40 } } })),
        200,
      );
      await expectStatus(
        await send(prod.runtime, "function", byLabel("PUT /api/usage/budget"), endpointRequest(byLabel("PUT /api/usage/budget"), { token, body: { json: { monthlyUsd: OWNER_CAP } } })),
        200,
      );
      // The usage row as a generation's settlement writes it (the budget row exists: the PUT above made it).
      await settleGeneration(database, {
        userId: owner,
        reservationId: "none",
        chargeUsd: 0,
        usage: [{ userId: owner, provider: "gemini", operation: "generate", model: "gemini-2.5-flash", inputTokens: 10, outputTokens: 20, costUsd: 0.001, requestId: "req_owner_usage" }],
        health: [],
      });
      await database.rows((await import("drizzle-orm")).sql`update usage_events set created_at = '2020-06-01T00:00:00Z' where user_id = ${owner}`);
    });
    afterAll(async () => {
      for (const rt of Object.values(rts)) rt.cleanup();
      await Promise.all([jwks?.close(), gemini?.close(), exa?.close()]);
      await database?.destroy();
      const total = Object.entries(counts).filter(([k]) => k.startsWith(backend.name));
      console.info(`auth battery ${backend.name}: ${total.map(([k, n]) => `${k.slice(backend.name.length + 1)}=${n}`).join(", ")}`);
    });

    const byLabel = (label: string) => {
      const endpoint = protectedEndpoints.find((e) => e.label === label);
      if (!endpoint) throw new Error(`no endpoint ${label}`);
      return endpoint;
    };

    for (const endpoint of protectedEndpoints) {
      for (const config of configs) {
        for (const transport of transports) {
          it(`${endpoint.label} via ${transport}, ${config}: every bad token → 401, nothing written`, async () => {
            const rt = rts[config];
            const development = config.startsWith("development");
            const dbBefore = await databaseFingerprint(database);
            const envBefore = fileFingerprint(rt.envFile);
            const failures: string[] = [];
            for (const tokenCase of badTokenCases(signer)) {
              if (development && tokenCase.absent) continue; // development runs these as DEV_USER_ID (checked below)
              const request = await withTokenCase(endpointRequest(endpoint, { headers: { accept: "application/json" } }), tokenCase);
              const ex = await readResponse(await send(rt.runtime, transport, endpoint, request));
              count(`${backend.name}:401`);
              const where = `${tokenCase.name}: ${describeExchange(endpoint.label, ex)}`;
              if (ex.status !== 401) {
                failures.push(where);
                continue;
              }
              try {
                if (problemCode(endpoint.label, ex) !== "unauthorized") failures.push(`wrong code: ${where}`);
              } catch (error) {
                failures.push(String(error));
              }
              if (!/^Bearer realm="[^"]+"/.test(ex.headers.get("www-authenticate") ?? "")) failures.push(`no www-authenticate: ${where}`);
              const echoed = [ex.text, ...[...ex.headers].map(([, v]) => v)].join("\n");
              for (const token of tokenCase.tokens) {
                if (echoed.includes(token) || echoed.includes(token.split(".")[2] || "\u0000")) failures.push(`token echoed: ${tokenCase.name}`);
              }
            }
            expect(failures).toEqual([]);
            expect(await databaseFingerprint(database)).toBe(dbBefore);
            expect(fileFingerprint(rt.envFile)).toBe(envBefore);
            const logs = rt.logs.join("\n");
            for (const tokenCase of badTokenCases(signer)) for (const token of tokenCase.tokens) expect(logs).not.toContain(token);
          });
        }
      }

      for (const transport of transports) {
        it(`${endpoint.label} via ${transport}: another user's token sees and changes only its own data`, async () => {
          const check = crossUser[endpoint.label];
          expect(check, `no cross-user check for ${endpoint.label}`).toBeDefined();
          await check!({ rt: rts["production, CLERK_JWT_KEY"], transport, endpoint, owner, ownerKeys, gemini });
          count(`${backend.name}:cross-user`);
        });
      }
    }

    for (const transport of transports) {
      it(`development via ${transport}: a request without a token runs as DEV_USER_ID, an unreadable Authorization header is refused`, async () => {
        const rt = rts["development, CLERK_JWT_KEY"];
        const endpoint = byLabel("GET /api/onboarding/api-keys");
        for (const tokenCase of badTokenCases(signer, owner).filter((c) => c.absent)) {
          const request = await withTokenCase(endpointRequest(endpoint), tokenCase);
          const ex = await readResponse(await send(rt.runtime, transport, endpoint, request));
          count(`${backend.name}:dev-absent`);
          if (request.headers.has("authorization")) {
            // A credential that was sent but is no Bearer token is refused, not ignored.
            expect(ex.status, `${tokenCase.name}: ${describeExchange(endpoint.label, ex)}`).toBe(401);
            continue;
          }
          expect(ex.status, `${tokenCase.name}: ${describeExchange(endpoint.label, ex)}`).toBe(200);
          expect(JSON.parse(ex.text).userId, tokenCase.name).toBe("local-dev");
        }
      });
    }

    it("the JWKS runtime really verified through the local Clerk API", () => {
      expect(jwks.requests()).toBeGreaterThan(0);
      expect(jwks.log().every((r) => r.path === "/v1/jwks")).toBe(true);
    });
  });
}
