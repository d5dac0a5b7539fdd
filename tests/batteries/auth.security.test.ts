/**
 * Auth battery, driven by the app's route list (lib/routes.ts): every protected route × every
 * method its module exports.
 *
 * - The shared bad-token cases (tests/helpers/battery.ts `badTokenCases`) through createApp
 *   (local server / Lambda) and the api/ export (Vercel), under networkless verification
 *   (CLERK_JWT_KEY), JWKS verification (CLERK_SECRET_KEY + a local Clerk API) and development
 *   mode: every bad token → 401 problem `unauthorized` (application/problem+json) with
 *   WWW-Authenticate, the token never echoed or logged, nothing written.
 * - Another user's token sees only its own data, and a DELETE of a key only the other user
 *   has → 404.
 * - In production, the credentials the shared cases do not send (empty or schemeless
 *   Authorization headers, tokens in other headers, cookies and query names, an empty sub, a
 *   bare `__session` cookie) → 401 and nothing changes; a valid token in the `__session`
 *   cookie works like the Bearer header; no token or key reaches a log line or a body.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import type { App } from "../../lib/app.js";
import { examplePath } from "../../lib/http/route.js";
import { routes } from "../../lib/routes.js";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { settleGeneration } from "../../lib/generation/budget.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, testSigner, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { seededRandom, testSeed } from "../helpers/seed.js";
import { expiredToken, startJwksServer, type JwksServer } from "../../testkit/clerk.js";
import type { FakeGemini } from "../../testkit/fakes/gemini.js";
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
type CrossUserCheck = (ctx: {
  rt: TestRuntime;
  transport: Transport;
  endpoint: Endpoint;
  owner: string;
  ownerKeys: ReturnType<typeof sampleKeys>;
  gemini: FakeGemini;
}) => Promise<void>;

/** The other user's key numbers, drawn from a logged seed (FC_SEED replays them). */
const draw = seededRandom(testSeed("auth battery"));
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
    const mine = sampleKeys(7_000 + Math.floor(draw() * 1_000));
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
    const owners = await readResponse(
      await send(c.rt.runtime, c.transport, budgetGet!, endpointRequest(budgetGet!, { token: c.rt.token(c.owner) })),
    );
    expect(JSON.parse(owners.text)).toMatchObject({ userId: c.owner, monthlyUsd: OWNER_CAP, source: "user" });
  },
  "DELETE /api/me": async (c) => {
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("delete me", ex)).toBe(204);
    expect((await userApiKeys(c.rt.runtime, c.owner)).keys).toEqual(c.ownerKeys);
    const mineNow = await readResponse(
      await send(c.rt.runtime, c.transport, sessionGet!, endpointRequest(sessionGet!, { token: c.rt.token(c.owner) })),
    );
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
    const other = await readResponse(
      await send(
        c.rt.runtime,
        c.transport,
        c.endpoint,
        new Request("http://localhost/api/onboarding/step/2", { headers: { authorization: `Bearer ${c.rt.token(intruder())}` } }),
      ),
    );
    expect(JSON.parse(other.text)).toMatchObject({ step: 2, status: "pending", data: null });
    for (const key of Object.values(c.ownerKeys)) expect(ex.text + other.text).not.toContain("…" + key.slice(-4));
    expect(other.text).not.toContain(OWNER_SITE);
  },
  "POST /api/onboarding/step/:step/complete": async (c) => {
    const who = intruder();
    const mine = sampleKeys(8_000 + Math.floor(draw() * 1_000));
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
  // ALwrity's wizard steps 2 to 5: the intruder has no keys (the AI steps refuse with a sentence and
  // call no upstream), no analysis, persona or business information, and never sees the owner's.
  "POST /api/onboarding/style-detection/complete": async (c) => expectAiRefused(c, await call(c, intruder())),
  "POST /api/onboarding/step3/discover-competitors": async (c) => expectAiRefused(c, await call(c, intruder())),
  "POST /api/onboarding/step4/generate-personas-async": async (c) => {
    const before = c.gemini.requests.length;
    const ex = await call(c, intruder());
    expect(ex.status, describeExchange("persona", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ status: "failed", message: expect.stringMatching(/No Gemini API key/) });
    expect(c.gemini.requests.length).toBe(before);
  },
  "GET /api/onboarding/style-detection/session-analyses": async (c) => {
    const ex = await call(c, intruder());
    expect(JSON.parse(ex.text)).toEqual({ success: true, analyses: [] });
  },
  "GET /api/onboarding/style-detection/check-existing/:url": async (c) => {
    const ex = await call(c, intruder());
    expect(JSON.parse(ex.text)).toEqual({ exists: false });
  },
  "GET /api/onboarding/style-detection/analysis/:id": async (c) => {
    const ex = await call(c, intruder());
    expect(JSON.parse(ex.text)).toEqual({ success: false, analysis: null, error: "Analysis not found" });
  },
  "POST /onboarding/business-info": async (c) => {
    const who = intruder();
    const ex = await call(c, who);
    expect(ex.status, describeExchange("business", ex)).toBe(200);
    expect(JSON.parse(ex.text)).toMatchObject({ id: 1, business_description: "Business number 1" });
    const owners = await call(c, c.owner, { body: { json: { business_description: "The owner's" } } });
    expect(JSON.parse(owners.text)).toMatchObject({ business_description: "The owner's" });
    await expectOwnerSession(c);
  },
  "GET /api/onboarding/step4/persona-task/:id": async (c) => {
    expect(JSON.parse((await call(c, intruder())).text)).toMatchObject({ status: "failed", result: null });
  },
  "GET /api/onboarding/step4/persona-latest": async (c) => {
    expect(JSON.parse((await call(c, intruder())).text)).toEqual({ success: false, persona: null });
  },
  "POST /api/blog/generate": async (c) => {
    const before = c.gemini.requests.length;
    const ex = await call(c, intruder(), { headers: { accept: "application/json" } });
    expect(problemCode("generate", ex), describeExchange("generate", ex)).toBe("missing-provider-key");
    expect(c.gemini.requests.length).toBe(before);
  },
};
// The gateway: an intruder without keys gets 409 and no upstream call (never the owner's key);
// naming the owner (x-byok-user) with a session token is 404 and sends nothing either.
for (const label of [
  "GET /api/gateway/gemini/v1beta/models",
  "POST /api/gateway/gemini/v1beta/models/:action",
  "POST /api/gateway/exa/search",
  "POST /api/gateway/exa/findSimilar",
  "POST /api/gateway/exa/contents",
  "POST /api/gateway/exa/answer",
]) {
  crossUser[label] = async (c) => {
    const before = c.gemini.requests.length;
    const ex = await call(c, intruder());
    expect(problemCode("gateway", ex), describeExchange("gateway", ex)).toBe("missing-provider-key");
    const named = await call(c, intruder(), { headers: { "x-byok-user": c.owner } });
    expect(problemCode("gateway", named), describeExchange("gateway", named)).toBe("not-found");
    expect(c.gemini.requests.length).toBe(before);
  };
}
const sessionGet = protectedEndpoints.find((e) => e.label === "GET /api/onboarding/session");

/** An AI step of ALwrity's wizard for a user without keys: 200 `{success: false}` with a sentence, no upstream call. */
async function expectAiRefused(c: Parameters<CrossUserCheck>[0], ex: Awaited<ReturnType<typeof readResponse>>): Promise<void> {
  expect(ex.status, describeExchange("ai step", ex)).toBe(200);
  expect(JSON.parse(ex.text)).toMatchObject({
    success: false,
    code: "missing-provider-key",
    error: expect.stringMatching(/No Gemini API key/),
  });
  expect(ex.text).not.toContain(OWNER_SITE);
}
const OWNER_SITE = "https://owner-only.example.com";

function expectNoKeysValidated(ex: Awaited<ReturnType<typeof readResponse>>, ownerKeys: ReturnType<typeof sampleKeys>): void {
  expect(ex.status, describeExchange("validate", ex)).toBe(200);
  expect(JSON.parse(ex.text)).toMatchObject({ all_valid: false, missing: ["gemini", "exa", "copilotkit"] });
  for (const key of Object.values(ownerKeys)) expect(ex.text).not.toContain("…" + key.slice(-4));
}

/** The owner's session is where the owner left it (step 4, 40 %, not completed). */
async function expectOwnerSession(c: Parameters<CrossUserCheck>[0]): Promise<void> {
  const mineNow = await readResponse(
    await send(c.rt.runtime, c.transport, sessionGet!, endpointRequest(sessionGet!, { token: c.rt.token(c.owner) })),
  );
  expect(JSON.parse(mineNow.text)).toMatchObject({ userId: c.owner, currentStep: 4, progress: 40, apiKeysComplete: true });
}
const budgetGet = protectedEndpoints.find((e) => e.label === "GET /api/usage/budget");
const OWNER_CAP = 42;

// ---- production credentials beyond the shared cases (the second block of each backend) ------

interface Target {
  /** As the route list writes it (`:name` parameters). */
  path: string;
  /** A concrete path (parameters filled from the route's example). */
  url: string;
  method: Endpoint["method"];
}

/** Each protected endpoint of the route list (OPTIONS is CORS preflight, never authenticated). */
const targets: Target[] = protectedEndpoints.map((e) => ({ path: e.route.path, url: examplePath(e.route), method: e.method }));

/**
 * A request that succeeds with a valid session (so only authentication can make it fail),
 * and the status it then gets. `extraQuery` is appended to the query string.
 */
function validRequest(
  target: Target,
  headers: Record<string, string>,
  seed: number,
  extraQuery = "",
): { request: Request; expected: number | undefined } {
  const { path, url, method } = target;
  const query = (base: string) => (extraQuery ? `${base}${base ? "&" : "?"}${extraQuery}` : base);
  const jsonInit = (body: unknown, more: Record<string, string> = {}) => ({
    method,
    headers: { ...headers, ...more, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const at = (q: string) => `http://localhost${url}${query(q)}`;
  switch (`${method} ${path}`) {
    case "GET /api/onboarding/api-keys":
      return { request: new Request(at(""), { method, headers }), expected: 200 };
    case "POST /api/onboarding/api-keys":
      return { request: new Request(at(""), jsonInit(sampleKeys(seed))), expected: 200 };
    case "DELETE /api/onboarding/api-keys":
      return { request: new Request(at("?provider=gemini"), { method, headers }), expected: 204 };
    case "GET /api/onboarding/session":
      return { request: new Request(at(""), { method, headers }), expected: 200 };
    case "PUT /api/onboarding/session":
      return { request: new Request(at(""), jsonInit({ currentStep: 2, progress: 25 })), expected: 200 };
    case "GET /api/usage":
      return { request: new Request(at(""), { method, headers }), expected: 200 };
    case "POST /api/blog/generate":
      // The user has no Gemini key: a served request answers 409, with no upstream call.
      return { request: new Request(at(""), jsonInit({ topic: "Bring your own key" }, { accept: "application/json" })), expected: 409 };
    default:
      // A route added later: it must at least get past authentication.
      return {
        request: method === "GET" || method === "DELETE" ? new Request(at(""), { method, headers }) : new Request(at(""), jsonInit({})),
        expected: undefined,
      };
  }
}

async function rowCounts(database: Database) {
  const [row] = await database.rows<Record<string, number | string>>(sql`
    select (select count(*) from api_keys) as keys, (select count(*) from onboarding_sessions) as sessions,
           (select count(*) from key_events) as events, (select count(*) from usage_events) as usage
  `);
  return Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, Number(v)]));
}

describe("auth battery: coverage", () => {
  it("finds every protected endpoint of the route table (the key and session routes among them), and every one has a cross-user check", () => {
    const labels = protectedEndpoints.map((e) => e.label);
    expect(protectedEndpoints.length).toBeGreaterThanOrEqual(7);
    expect(labels).toEqual(
      expect.arrayContaining([
        "GET /api/onboarding/api-keys",
        "POST /api/onboarding/api-keys",
        "DELETE /api/onboarding/api-keys",
        "GET /api/onboarding/session",
        "PUT /api/onboarding/session",
      ]),
    );
    for (const route of routes.filter((r) => r.auth))
      expect(
        labels.some((label) => label.endsWith(` ${route.path}`)),
        route.path,
      ).toBe(true);
    expect(labels.filter((label) => !crossUser[label])).toEqual([]);
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

    beforeAll(async () => {
      database = await backend.open();
    });
    afterAll(async () => {
      await database?.destroy();
    });

    describe("every config and transport", () => {
      let jwks: JwksServer;
      const { gemini, exa } = useFakeUpstreams();
      const rts = {} as Record<ConfigName, TestRuntime>;
      const owner = `user_owner_${randomBytes(5).toString("hex")}`;
      const ownerKeys = sampleKeys(4242);

      beforeAll(async () => {
        const secretKey = `sk_test_${randomBytes(12).toString("hex")}`;
        jwks = await startJwksServer(signer.jwks, { secretKey });
        const common = {
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          RATE_LIMIT_GENERATE_PER_MINUTE: "0",
          RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
        };
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
          await send(
            prod.runtime,
            "function",
            byLabel("POST /api/onboarding/api-keys"),
            endpointRequest(byLabel("POST /api/onboarding/api-keys"), { token, body: { json: ownerKeys } }),
          ),
          200,
        );
        // ALwrity's steps 2 and 3 with data only the owner has (before the session is set to step 4, 40 %).
        const complete = byLabel("POST /api/onboarding/step/:step/complete");
        for (const [step, data] of [
          [2, { website_url: OWNER_SITE }],
          [3, { research_depth: "deep" }],
        ] as const) {
          const request = new Request(`http://localhost/api/onboarding/step/${step}/complete`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify({ data, validation_errors: [] }),
          });
          await expectStatus(await send(prod.runtime, "app", complete, request), 200);
        }
        await expectStatus(
          await send(
            prod.runtime,
            "function",
            byLabel("PUT /api/onboarding/session"),
            endpointRequest(byLabel("PUT /api/onboarding/session"), { token, body: { json: { currentStep: 4, progress: 40 } } }),
          ),
          200,
        );
        await expectStatus(
          await send(
            prod.runtime,
            "function",
            byLabel("PUT /api/usage/budget"),
            endpointRequest(byLabel("PUT /api/usage/budget"), { token, body: { json: { monthlyUsd: OWNER_CAP } } }),
          ),
          200,
        );
        // The usage row as a generation's settlement writes it (the budget row exists: the PUT above made it).
        await settleGeneration(database, {
          userId: owner,
          reservationId: "none",
          chargeUsd: 0,
          usage: [
            {
              userId: owner,
              provider: "gemini",
              operation: "generate",
              model: "gemini-3.5-flash",
              inputTokens: 10,
              outputTokens: 20,
              costUsd: 0.001,
              requestId: "req_owner_usage",
            },
          ],
          health: [],
        });
        await database.rows(sql`update usage_events set created_at = '2020-06-01T00:00:00Z' where user_id = ${owner}`);
      });
      afterAll(async () => {
        for (const rt of Object.values(rts)) rt.cleanup();
        await jwks?.close();
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
                if (ex.headers.get("content-type") !== "application/problem+json")
                  failures.push(`content-type ${ex.headers.get("content-type")}: ${where}`);
                const echoed = [ex.text, ...[...ex.headers].map(([, v]) => v)].join("\n");
                for (const token of tokenCase.tokens) {
                  if (echoed.includes(token) || echoed.includes(token.split(".")[2] || "\u0000"))
                    failures.push(`token echoed: ${tokenCase.name}`);
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

    describe("production: more credentials, the __session cookie, logs and bodies", () => {
      let prod: TestRuntime;
      let app: App;
      const victim = "user_auth_victim";
      const victimKeys = sampleKeys(4242);
      /** Every token and key this block sends, to search logs and bodies for. */
      const secrets = new Set<string>(Object.values(victimKeys));
      const bodies: string[] = [];
      const remember = (token: string) => {
        secrets.add(token);
        // Parts of a token are as bad as the whole (and escape the logger's JWT redaction).
        for (const part of token.split(".")) if (part.length >= 16) secrets.add(part);
        return token;
      };

      beforeAll(async () => {
        prod = makeRuntime({
          database,
          mode: "production",
          env: { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0", RATE_LIMIT_GENERATE_PER_MINUTE: "0" },
        });
        app = prod.app;
        const token = remember(prod.token(victim));
        await expectStatus(await prod.fetch(request("POST", "/api/onboarding/api-keys", { token, body: victimKeys })), 200);
      });
      afterAll(() => {
        prod?.cleanup();
      });

      /**
       * Bad credentials beyond `badTokenCases` (which the block above sends on every endpoint in
       * every config): header shapes, other headers, cookies and query names, an empty sub, and a
       * bad token as the only cookie. Tokens name the victim, who has keys saved.
       */
      function moreBadCredentials(): [string, { headers?: Record<string, string>; query?: string }][] {
        const signer = prod.signer;
        const claims = { sub: victim };
        const bearer = (token: string) => ({ headers: { authorization: `Bearer ${remember(token)}` } });
        const valid = () => remember(signer.sign(claims));
        return [
          ["empty Authorization", { headers: { authorization: "" } }],
          ["Basic scheme with a valid token", { headers: { authorization: `Basic ${valid()}` } }],
          ["an empty Authorization next to a valid __session cookie", { headers: { authorization: "", cookie: `__session=${valid()}` } }],
          ["valid token without a scheme", { headers: { authorization: valid() } }],
          ["valid token in a non-standard header", { headers: { "x-session-token": valid(), "x-clerk-auth-token": valid() } }],
          ["valid token in another cookie", { headers: { cookie: `session=${valid()}; __client=${valid()}` } }],
          [
            "pending session in the __session cookie (the only cookie)",
            { headers: { cookie: `__session=${remember(signer.sign({ ...claims, sts: "pending" }))}` } },
          ],
          [
            "expired, in the __session cookie (the only cookie)",
            { headers: { cookie: `__session=${remember(expiredToken(signer, claims))}` } },
          ],
          ["empty sub", bearer(signer.sign({ sub: "" }))],
          ["token only in the query string (access_token)", { query: `access_token=${encodeURIComponent(valid())}` }],
        ];
      }

      it("every such credential answers 401 with www-authenticate, on every protected method, and changes nothing", async () => {
        const before = await rowCounts(database);
        const cases = moreBadCredentials();
        let seed = 5000;
        for (const target of targets) {
          for (const [name, credential] of cases) {
            const { request: req } = validRequest(target, credential.headers ?? {}, seed++, credential.query);
            const response = await app.fetch(req);
            const text = await response.text();
            bodies.push(text);
            const where = `${target.method} ${target.path} with ${name}`;
            expect(response.status, `${where}: ${text}`).toBe(401);
            expect(response.headers.get("content-type"), where).toBe("application/problem+json");
            expect(response.headers.get("www-authenticate"), where).toMatch(/^Bearer\b/);
            const body = JSON.parse(text);
            expect(body, where).toMatchObject({ status: 401, code: "unauthorized" });
            expect(response.headers.get("x-request-id"), where).toBe(body.requestId);
          }
        }
        expect(await rowCounts(database)).toEqual(before);
        expect((await userApiKeys(prod.runtime, victim)).keys).toEqual(victimKeys);
      });

      it("a valid token in the __session cookie works like the Bearer header, on every protected method", async () => {
        let seed = 6000;
        for (const [index, target] of targets.entries()) {
          const user = `user_auth_cookie_${index}`;
          const token = remember(prod.signer.sign({ sub: user }));
          if (target.method === "DELETE") {
            // Something to delete first (through the Bearer header).
            const save = validRequest({ path: target.path, url: target.url, method: "POST" }, { authorization: `Bearer ${token}` }, seed++);
            if (save.expected !== undefined) expect((await app.fetch(save.request)).status).toBe(save.expected);
          }
          for (const headers of [
            { cookie: `__session=${token}` },
            { cookie: `theme=dark; __session=${encodeURIComponent(token)}; other=1` },
          ]) {
            if (target.method === "DELETE" && headers.cookie.startsWith("theme")) {
              const resave = validRequest(
                { path: target.path, url: target.url, method: "POST" },
                { authorization: `Bearer ${token}` },
                seed++,
              );
              await app.fetch(resave.request);
            }
            const { request: req, expected } = validRequest(target, headers, seed++);
            const response = await app.fetch(req);
            const text = await response.text();
            bodies.push(text);
            const where = `${target.method} ${target.path} with ${headers.cookie}`;
            if (expected !== undefined) expect(response.status, `${where}: ${text}`).toBe(expected);
            expect(response.status, `${where}: ${text}`).not.toBe(401);
            expect(response.status, `${where}: ${text}`).toBeLessThan(500);
            if (text && response.headers.get("content-type")?.startsWith("application/json") && target.path !== "/api/usage") {
              const body = JSON.parse(text);
              // (Some answers are a bare `null`: ALwrity's step data where there is none.)
              if (body !== null && typeof body === "object" && "userId" in body) expect(body.userId, where).toBe(user);
            }
          }
        }
        // The lower-case scheme is accepted too.
        const token = remember(prod.signer.sign({ sub: victim }));
        const response = await app.fetch(
          new Request("http://localhost/api/onboarding/api-keys", { headers: { authorization: `bearer ${token}` } }),
        );
        const body = await expectStatus(response, 200);
        bodies.push(JSON.stringify(body));
        expect(body.userId).toBe(victim);
      });

      it("no token or key appears in any log line or response body", () => {
        expect(prod.logs.length).toBeGreaterThan(0);
        expect(prod.logs.some((l) => l.includes("session token rejected"))).toBe(true);
        const keys = new Set(Object.values(victimKeys));
        for (const secret of secrets) {
          for (const line of prod.logs) expect(line.includes(secret), `a token or key in the log: ${line.slice(0, 200)}`).toBe(false);
          // A user's own copilotkit key is returned to them by design; nothing else is.
          for (const body of bodies) {
            if (keys.has(secret) && secret === victimKeys.copilotkit) continue;
            expect(body.includes(secret), `a token or key in a body: ${body.slice(0, 200)}`).toBe(false);
          }
        }
        for (const line of prod.logs) expect(line).not.toContain("[redacted]");
      });
    });
  });
}
