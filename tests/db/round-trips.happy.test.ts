/**
 * Database round trips per endpoint (issue 13), counted through a TCP proxy in front of
 * PostgreSQL (testkit/pg-latency-proxy.ts): a count, never a time, so a regression fails CI.
 * Production mode, node-postgres, a warm instance (connection open, statements prepared) and
 * a cached session token, as on a busy serverless instance.
 *
 * Every route of the app must have a line in `expected`: a new endpoint fails this test until
 * its count is stated (and explained) here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { migrateDatabase, openDatabase, type Database } from "../../db/client.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { routes } from "../../lib/routes.js";
import { startPgLatencyProxy, type PgLatencyProxy } from "../../testkit/pg-latency-proxy.js";
import { userDeletedEvent } from "../../testkit/webhooks.js";
import { createPostgresDatabase, testDatabaseUrl } from "../helpers/db.js";
import { endpointRequest, endpoints, readResponse, describeExchange, type Endpoint } from "../helpers/battery.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

interface Expectation {
  /** Round trips of one warm request. */
  roundTrips: number;
  /** Why that many (the README's round-trip table says the same). */
  why: string;
  /** Statuses the measured request answers. */
  status?: number;
}

/** One line per endpoint. */
const expected: Record<string, Expectation> = {
  "GET /api/health": {
    roundTrips: 0,
    why: "a stranger's answer reuses the select 1 of the warm-up call just before (one probe per 5 s per instance; the operator's is always fresh)",
  },
  "GET /api/onboarding/api-keys": { roundTrips: 1, why: "one query: the user's keys by session subquery" },
  "POST /api/onboarding/api-keys": {
    roundTrips: 1,
    why: "one statement: the save (only keys whose fingerprint differs), the rate limit (only when something changed) and the list",
  },
  "DELETE /api/onboarding/api-keys": { roundTrips: 1, why: "one statement: rate limit, the delete and its audit row", status: 204 },
  "GET /api/onboarding/session": { roundTrips: 1, why: "one query" },
  "PUT /api/onboarding/session": { roundTrips: 1, why: "one statement: the upsert and the key count of the session it returns" },
  "POST /api/blog/generate": {
    roundTrips: 2,
    why: "one before the first upstream call (rate limit + keys + budget), one settlement after",
  },
  "GET /api/usage": { roundTrips: 1, why: "one statement: the budget row with the usage rows as JSON" },
  "GET /api/usage/budget": { roundTrips: 1, why: "one query" },
  "PUT /api/usage/budget": { roundTrips: 1, why: "one statement: the upsert and the status from the row it returns" },
  "DELETE /api/me": { roundTrips: 1, why: "one statement deletes everything", status: 204 },
  "GET /api/me/export": { roundTrips: 8, why: "a rare export: 6 table reads at once, then the key list and the budget" },
  "GET /api/onboarding/api-keys/onboarding": { roundTrips: 1, why: "ALwrity's prefill: the key list, one query" },
  "GET /api/onboarding/api-keys/validate": { roundTrips: 1, why: "the key list, one query" },
  "POST /api/onboarding/api-keys/validate": { roundTrips: 1, why: "the key list, one query" },
  "GET /api/onboarding/init": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /api/onboarding/status": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /api/onboarding/progress": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "POST /api/onboarding/complete": { roundTrips: 2, why: "the completion, then the state it answers (rare: once per user)" },
  "GET /api/onboarding/step/:step": { roundTrips: 2, why: "the session and (step 1) the key list, two queries at once" },
  "POST /api/onboarding/step/:step/complete": {
    roundTrips: 3,
    why: "the key save (one statement), the step's data, then the state it answers (once per step)",
  },
  "GET /api/onboarding/summary": { roundTrips: 2, why: "the session and the key list, two queries at once" },
  "GET /api/onboarding/website-analysis": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /api/onboarding/research-preferences": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "POST /api/frontend-env/update": { roundTrips: 0, why: "development only: production answers 404 before anything else", status: 404 },
  "POST /api/webhooks/clerk": { roundTrips: 1, why: "one statement: idempotency record and the deletion" },
  "GET /api/openapi.json": { roundTrips: 0, why: "no database" },
  // The gateway: its statement before the upstream call (credential, rate limit, key, reservation, audit row), its settlement after.
  "GET /api/gateway/gemini/v1beta/models": { roundTrips: 2, why: "one before the upstream call, one after (key health and the audit row)" },
  "POST /api/gateway/gemini/v1beta/models/:action": { roundTrips: 2, why: "one before the upstream call, one settlement after" },
  "POST /api/gateway/exa/search": { roundTrips: 2, why: "one before the upstream call, one settlement after" },
  "POST /api/gateway/exa/findSimilar": { roundTrips: 2, why: "one before the upstream call, one settlement after" },
  "POST /api/gateway/exa/contents": { roundTrips: 2, why: "one before the upstream call, one settlement after" },
  "POST /api/gateway/exa/answer": { roundTrips: 2, why: "one before the upstream call, one settlement after" },
  "GET /api/config": { roundTrips: 0, why: "no database" },
  "GET /health": { roundTrips: 0, why: "ALwrity's liveness: no database" },
  "GET /api/onboarding/style-detection/session-analyses": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /api/onboarding/style-detection/check-existing/:url": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /api/onboarding/style-detection/analysis/:id": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "POST /api/onboarding/style-detection/complete": {
    roundTrips: 4,
    why: "as a generation: rate limit + keys + reservation, the settlement; then the step read and the merged save",
  },
  "POST /onboarding/business-info": { roundTrips: 2, why: "the step read, then the merged save" },
  "POST /api/onboarding/step3/discover-competitors": {
    roundTrips: 4,
    why: "as a generation: rate limit + keys + reservation, the settlement; then the step read and the merged save",
  },
  "POST /api/onboarding/step3/analyze-sitemap": { roundTrips: 0, why: "nothing fetched, nothing stored" },
  "POST /api/onboarding/step4/generate-personas-async": {
    roundTrips: 4,
    why: "as a generation: rate limit + keys + reservation, the settlement; then the step read and the merged save",
  },
  "GET /api/onboarding/step4/persona-task/:id": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /api/onboarding/step4/persona-latest": { roundTrips: 1, why: "one query: the session with its steps' data" },
  "GET /gsc/status": { roundTrips: 0, why: "not integrated: no database" },
  "POST /gsc/clear-incomplete": { roundTrips: 0, why: "not integrated: no database" },
  "GET /wp/status": { roundTrips: 0, why: "not integrated: no database" },
};

/** Round trips of a generation before its first upstream call. */
const GENERATION_BEFORE_UPSTREAM = 1;

const KEYRING = generateKeyringEntry("rt");

describe.skipIf(!testDatabaseUrl)("database round trips per endpoint (postgres through a counting proxy)", () => {
  let proxy: PgLatencyProxy;
  let drop: () => Promise<void>;
  let database: Database;
  let rt: TestRuntime;
  const { gemini, exa } = useFakeUpstreams();
  let seed = 7_000;

  beforeAll(async () => {
    const created = await createPostgresDatabase(testDatabaseUrl!);
    drop = created.drop;
    const direct = await openDatabase({ driver: "pg", url: created.url });
    await migrateDatabase(direct);
    await direct.close();
    proxy = await startPgLatencyProxy();
    database = await openDatabase({ driver: "pg", url: proxy.rewrite(created.url), namedStatements: true, maxConnections: 4 });
    rt = makeRuntime({
      database,
      mode: "production",
      env: {
        KEY_ENCRYPTION_KEYS: KEYRING,
        GEMINI_BASE_URL: gemini.url,
        EXA_BASE_URL: exa.url,
        BUDGET_DEFAULT_USD: "50",
      },
    });
  });
  afterAll(async () => {
    await database?.close();
    await proxy?.close();
    await drop?.();
  });

  /** A user with all three keys saved (and a session), through the real endpoint. */
  async function userWithKeys(): Promise<{ userId: string; token: string }> {
    const userId = `user_rt_${randomBytes(4).toString("hex")}`;
    const token = rt.token(userId);
    await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token, body: sampleKeys(++seed) })), 200);
    return { userId, token };
  }

  function requestFor(endpoint: Endpoint, user: { userId: string; token: string }): Request {
    if (endpoint.label === "POST /api/webhooks/clerk") return endpointRequest(endpoint, { body: { json: userDeletedEvent(user.userId) } });
    return endpointRequest(endpoint, { token: user.token, seed: ++seed });
  }

  /** Round trips of one request to `endpoint`, after one unmeasured warm-up request on another user. */
  async function measure(endpoint: Endpoint): Promise<number> {
    const warm = await userWithKeys();
    await readResponse(await rt.fetch(requestFor(endpoint, warm)));
    const user = await userWithKeys();
    // Let settlements of earlier generations finish before counting.
    await new Promise((resolve) => setTimeout(resolve, 50));
    proxy.reset();
    const exchange = await readResponse(await rt.fetch(requestFor(endpoint, user)));
    const status = expected[endpoint.label]?.status ?? 200;
    expect(exchange.status, describeExchange(endpoint.label, exchange)).toBe(status);
    // A generation settles as its stream ends: wait for that write too.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(proxy.counts().connections, "a warm instance opens no connection").toBe(0);
    return proxy.counts().roundTrips;
  }

  it("every route has an expected count", async () => {
    const missing = routes.map((r) => `${r.method} ${r.path}`).filter((label) => !(label in expected));
    expect(missing).toEqual([]);
  });

  for (const label of Object.keys(expected)) {
    it(`${label}: ${expected[label]!.roundTrips} (${expected[label]!.why})`, async () => {
      const endpoint = (await endpoints()).find((e) => e.label === label);
      if (!endpoint) return; // a route another branch adds
      expect(await measure(endpoint)).toBe(expected[label]!.roundTrips);
    });
  }

  it(`POST /api/blog/generate: ${GENERATION_BEFORE_UPSTREAM} round trip before the first upstream call`, async () => {
    const endpoint = (await endpoints()).find((e) => e.label === "POST /api/blog/generate")!;
    const warm = await userWithKeys();
    await readResponse(await rt.fetch(requestFor(endpoint, warm)));
    const user = await userWithKeys();
    await new Promise((resolve) => setTimeout(resolve, 50));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    exa.setMode({ holdUntil: held });
    gemini.setMode({ holdUntil: held });
    const before = exa.requests.length + gemini.requests.length;
    proxy.reset();
    // The stream is read as it comes: a generation runs only while its body is consumed.
    const response = rt.fetch(requestFor(endpoint, user)).then(readResponse);
    try {
      const deadline = Date.now() + 10_000;
      while (exa.requests.length + gemini.requests.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(exa.requests.length + gemini.requests.length, "an upstream call was made").toBeGreaterThan(before);
      expect(proxy.counts().roundTrips).toBe(GENERATION_BEFORE_UPSTREAM);
    } finally {
      release();
      exa.reset();
      gemini.reset();
    }
    const exchange = await response;
    expect(exchange.status, describeExchange(endpoint.label, exchange)).toBe(200);
  });

  it("the gateway: 1 round trip before its upstream call", async () => {
    const endpoint = (await endpoints()).find((e) => e.label === "POST /api/gateway/gemini/v1beta/models/:action")!;
    const warm = await userWithKeys();
    await readResponse(await rt.fetch(requestFor(endpoint, warm)));
    const user = await userWithKeys();
    await new Promise((resolve) => setTimeout(resolve, 50));
    let release!: () => void;
    gemini.setMode({ holdUntil: new Promise<void>((resolve) => (release = resolve)) });
    const before = gemini.requests.length;
    proxy.reset();
    const response = rt.fetch(requestFor(endpoint, user)).then(readResponse);
    try {
      const deadline = Date.now() + 10_000;
      while (gemini.requests.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(gemini.requests.length, "the upstream call was made").toBeGreaterThan(before);
      expect(proxy.counts().roundTrips).toBe(1);
    } finally {
      release();
      gemini.reset();
    }
    expect((await response).status).toBe(200);
  });
});
