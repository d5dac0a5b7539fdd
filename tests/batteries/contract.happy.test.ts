/**
 * The OpenAPI document against real responses. For every route of the app's own list, a set
 * of scenarios (a valid request, no token, a bad body, a body too large, the wrong media
 * type, no body from another site, the rate limit, the database down, no Clerk configuration…) is sent through the app;
 * each real answer must be a documented status of that operation, with a documented media
 * type, carrying every header the document promises for that status. And every documented
 * success status, and every generic problem status, is seen at least once.
 */
import { maxBodyBytesFor } from "../../lib/http/request.js";
import { openApiPath } from "../../lib/http/route.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiDocument } from "../../lib/openapi.js";
import { routes } from "../../lib/routes.js";
import type { AnyRoute } from "../../lib/http/route.js";
import { openDatabase, type Database } from "../../db/client.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import {
  closedPort,
  endpointRequest,
  endpoints,
  readResponse,
  describeExchange,
  type Endpoint,
  type Exchange,
} from "../helpers/battery.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

type AnyObject = Record<string, any>;

const doc = openApiDocument(routes) as AnyObject;

function resolveRef(node: AnyObject): AnyObject {
  if (typeof node?.$ref !== "string") return node;
  let out: any = doc;
  for (const part of node.$ref.slice(2).split("/")) out = out?.[part];
  return out;
}

function operation(route: AnyRoute): AnyObject {
  const op = doc.paths[openApiPath(route.path)]?.[route.method.toLowerCase()];
  if (!op) throw new Error(`${route.method} ${route.path} is not documented`);
  return op;
}

/** `request` with its method, URL and headers, but no body. */
function withoutBody(request: Request): Request {
  const headers = new Headers(request.headers);
  headers.delete("content-type");
  return new Request(request.url, { method: request.method, headers });
}

/** Checks one real answer against the document; returns why it disagrees (undefined when it agrees). */
function disagreement(route: AnyRoute, ex: Exchange): string | undefined {
  const documented = operation(route).responses[String(ex.status)];
  if (!documented) return `status ${ex.status} is not documented for ${route.method} ${route.path}`;
  const response = resolveRef(documented);
  const type = (ex.headers.get("content-type") ?? "").split(";")[0]!.trim();
  const mediaTypes = Object.keys(response.content ?? {});
  if (mediaTypes.length === 0 ? ex.text !== "" : !mediaTypes.includes(type)) {
    return `content-type ${JSON.stringify(type)} is not documented for ${ex.status} (documented: ${mediaTypes.join(", ") || "no body"})`;
  }
  for (const name of Object.keys(response.headers ?? {})) {
    if (!ex.headers.has(name)) return `documented header ${name} missing on ${ex.status}`;
  }
  return undefined;
}

const seen = new Map<string, Set<number>>();

async function expectDocumented(route: AnyRoute, label: string, response: Response): Promise<Exchange> {
  const ex = await readResponse(response);
  const why = disagreement(route, ex);
  expect(why, describeExchange(`${label}: ${route.method} ${route.path}`, ex)).toBeUndefined();
  const key = `${route.method} ${route.path}`;
  if (!seen.has(key)) seen.set(key, new Set());
  seen.get(key)!.add(ex.status);
  return ex;
}

describe("documented statuses and headers match real responses", () => {
  let database: TestDatabase;
  const { gemini, exa } = useFakeUpstreams();
  let prod: TestRuntime;
  /** For development-only routes (production answers them 404). */
  let dev: TestRuntime;
  let limited: TestRuntime;
  let noClerk: TestRuntime;
  let down: TestRuntime;
  let downDatabase: Database;
  let all: Endpoint[];
  const user = "user_contract";

  beforeAll(async () => {
    database = await backends[0]!.open();
    const upstreams = { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url };
    prod = makeRuntime({
      database,
      mode: "production",
      env: {
        ...upstreams,
        RATE_LIMIT_KEY_WRITES_PER_MINUTE: "1000",
        RATE_LIMIT_GENERATE_PER_MINUTE: "1000",
        RATE_LIMIT_GATEWAY_PER_MINUTE: "1000",
      },
    });
    limited = makeRuntime({
      database,
      mode: "production",
      env: { ...upstreams, RATE_LIMIT_KEY_WRITES_PER_MINUTE: "1", RATE_LIMIT_GENERATE_PER_MINUTE: "1", RATE_LIMIT_GATEWAY_PER_MINUTE: "1" },
    });
    dev = makeRuntime({ database, mode: "development", env: upstreams });
    noClerk = makeRuntime({ database, mode: "production", env: { CLERK_JWT_KEY: undefined, CLERK_SECRET_KEY: undefined } });
    downDatabase = await openDatabase({ driver: "pg", url: `postgres://postgres@127.0.0.1:${await closedPort()}/byok` });
    down = makeRuntime({ database: downDatabase, mode: "production" });
    all = await endpoints();
    await expectStatus(
      await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(user), body: sampleKeys(4100) })),
      200,
    );
  });
  afterAll(async () => {
    for (const rt of [prod, dev, limited, noClerk, down]) rt?.cleanup();
    await downDatabase?.close();
    await database?.destroy();
  });

  /** Keys back in place (a DELETE scenario removes one). */
  async function restoreKeys(rt: TestRuntime, userId: string): Promise<void> {
    await expectStatus(
      await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body: sampleKeys(4100) })),
      200,
    );
  }

  it("a valid request: 2xx with every promised header (RateLimit on rate-limited routes)", async () => {
    for (const endpoint of all) {
      await restoreKeys(prod, user);
      const req = endpointRequest(endpoint, { token: prod.token(user), seed: 4100 });
      const rt = endpoint.route.developmentOnly ? dev : prod;
      if (endpoint.route.developmentOnly) {
        const hidden = await expectDocumented(
          endpoint.route,
          "production",
          await prod.fetch(endpointRequest(endpoint, { token: prod.token(user), seed: 4100 })),
        );
        expect(hidden.status, describeExchange(endpoint.label, hidden)).toBe(404);
      }
      const ex = await expectDocumented(endpoint.route, "valid", await rt.fetch(req));
      expect(ex.status, describeExchange(endpoint.label, ex)).toBeLessThan(300);
      if (endpoint.route.rateLimit) expect(ex.headers.get("ratelimit"), endpoint.label).toMatch(/^limit=1000, remaining=\d+, reset=\d+$/);
    }
  });

  it("problems a caller can cause: no token, bad body or query, too large, wrong media type, missing key, unknown key", async () => {
    for (const endpoint of all) {
      const { route } = endpoint;
      const rt = route.developmentOnly ? dev : prod;
      if (route.auth) await expectDocumented(route, "no token", await prod.fetch(endpointRequest(endpoint, {})));
      if (route.body) {
        const token = prod.token(user);
        await expectDocumented(
          route,
          "bad body",
          await rt.fetch(endpointRequest(endpoint, { token, body: { json: { unexpected: true } } })),
        );
        await expectDocumented(
          route,
          "too large",
          await rt.fetch(
            endpointRequest(endpoint, { token, body: { raw: JSON.stringify({ pad: "x".repeat(maxBodyBytesFor(route.path) + 4_000) }) } }),
          ),
        );
      }
      if (route.method !== "GET") {
        // Every state-changing route (lib/http/middleware/cross-site.ts): a body that is not JSON, no body from another site.
        const token = prod.token(user);
        await expectDocumented(
          route,
          "wrong media type",
          await rt.fetch(endpointRequest(endpoint, { token, body: { raw: "{}" }, headers: { "content-type": "text/plain" } })),
        );
        await expectDocumented(
          route,
          "cross-site, no body",
          await rt.fetch(withoutBody(endpointRequest(endpoint, { token, origin: "https://evil.example" }))),
        );
      }
      if (route.query)
        await expectDocumented(
          route,
          "bad query",
          await prod.fetch(endpointRequest(endpoint, { token: prod.token(user), query: "nope=1" })),
        );
    }
    const generate = all.find((e) => e.route.operationId === "generateBlogPost")!;
    const missing = await expectDocumented(
      generate.route,
      "no keys",
      await prod.fetch(endpointRequest(generate, { token: prod.token("user_contract_nokeys") })),
    );
    expect(missing.status).toBe(409);
    const del = all.find((e) => e.route.operationId === "deleteApiKey")!;
    const none = await expectDocumented(
      del.route,
      "no such key",
      await prod.fetch(endpointRequest(del, { token: prod.token("user_contract_nokeys") })),
    );
    expect(none.status).toBe(404);
  });

  it("the rate limit: 429 with Retry-After and RateLimit headers", async () => {
    // Routes counted against a limit, and those that save keys through the key service (step completion).
    for (const endpoint of all.filter((e) => e.route.rateLimit || e.route.problems.includes("rate-limited"))) {
      const userId = `user_contract_limit_${endpoint.route.operationId}`;
      const token = limited.token(userId);
      let last: Exchange | undefined;
      for (let i = 0; i < 3; i++) {
        // Keys in place so a DELETE can succeed (this save counts too: limits are per user, in the database).
        await restoreKeys(limited, userId);
        // Keys other than the restored ones: a save equal to the stored key changes nothing and is not counted.
        last = await expectDocumented(
          endpoint.route,
          `attempt ${i + 1}`,
          await limited.fetch(endpointRequest(endpoint, { token, seed: 4102 + 2 * i })),
        );
      }
      expect(last!.status, describeExchange(endpoint.label, last!)).toBe(429);
    }
  });

  const withoutDatabase = new Set([
    "getOpenApiDocument",
    "getConfig",
    "alwrityHealth",
    "alwrityAnalyzeSitemap",
    "alwrityGscStatus",
    "alwrityGscClearIncomplete",
    "alwrityWordPressStatus",
  ]);
  it("the operator's and the platform's failures: no Clerk configuration (500), database down (503)", async () => {
    for (const endpoint of all) {
      const { route } = endpoint;
      if (route.auth) {
        const ex = await expectDocumented(route, "no clerk", await noClerk.fetch(endpointRequest(endpoint, { token: prod.token(user) })));
        expect(ex.status).toBe(500);
      }
      const ex = await expectDocumented(
        route,
        "database down",
        await down.fetch(endpointRequest(endpoint, { token: down.token(user), seed: 4100 })),
      );
      // The OpenAPI document, the web app's configuration and ALwrity's stand-ins (liveness, sitemap, integrations) never need
      // the database; a development-only route is a 404 in production.
      if (route.developmentOnly) expect(ex.status, describeExchange(endpoint.label, ex)).toBe(404);
      else if (!withoutDatabase.has(route.operationId)) expect(ex.status, describeExchange(endpoint.label, ex)).toBe(503);
    }
  });

  it("every documented success status and every generic problem status was seen", () => {
    const generic = new Set([400, 401, 403, 413, 415, 429, 500, 503]);
    for (const route of routes) {
      const statuses = seen.get(`${route.method} ${route.path}`) ?? new Set<number>();
      const documented = Object.keys(operation(route).responses).map(Number);
      for (const status of documented) {
        if (status < 300 || (generic.has(status) && status !== 500) || (status === 500 && route.auth)) {
          expect(
            statuses.has(status),
            `${route.method} ${route.path}: documented ${status} never seen (seen: ${[...statuses].join(", ")})`,
          ).toBe(true);
        }
      }
    }
  });
});
