/**
 * The shared auth cases against every protected endpoint: each protected route of the route
 * table × each method its file exports, in production. Every bad or missing token answers
 * 401 with `www-authenticate`, changes nothing and reveals nothing; the `__session` cookie
 * works like the Bearer header; no token or key ever reaches a log line or a body.
 */
import { examplePath } from "../../lib/http/route.js";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.js";
import { userApiKeys } from "../../lib/keys/resolver.js";
import type { App } from "../../lib/app.js";
import { routes } from "../../lib/routes.js";
import {
  algNoneToken,
  createTestSigner,
  expiredToken,
  futureIatToken,
  futureNbfToken,
  hs256WithPublicKeyToken,
  malformedTokens,
  noSubToken,
  tamperedToken,
  wrongAzpToken,
  wrongKeyToken,
} from "../../testkit/clerk.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

type Method = "GET" | "POST" | "PUT" | "DELETE";

interface Target {
  /** As the route list writes it (`:name` parameters). */
  path: string;
  /** A concrete path (parameters filled from the route's example). */
  url: string;
  method: Method;
}

/** Each protected route of the app's list (OPTIONS is CORS preflight, never authenticated). */
async function protectedTargets(): Promise<Target[]> {
  return routes.filter((r) => r.auth).map((r) => ({ path: r.path, url: examplePath(r), method: r.method }));
}

/**
 * A request that succeeds with a valid session (so only authentication can make it fail),
 * and the status it then gets. `extraQuery` is appended to the query string.
 */
function validRequest(target: Target, headers: Record<string, string>, seed: number, extraQuery = ""): { request: Request; expected: number | undefined } {
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

for (const backend of backends) {
  describe.skipIf(!backend.available)(`authentication on every protected endpoint ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    let app: App;
    let targets: Target[];
    const victim = "user_auth_victim";
    const victimKeys = sampleKeys(4242);
    /** Every token and key this file sends, to search logs and bodies for. */
    const secrets = new Set<string>(Object.values(victimKeys));
    const bodies: string[] = [];
    const remember = (token: string) => {
      secrets.add(token);
      // Parts of a token are as bad as the whole (and escape the logger's JWT redaction).
      for (const part of token.split(".")) if (part.length >= 16) secrets.add(part);
      return token;
    };

    beforeAll(async () => {
      database = await backend.open();
      prod = makeRuntime({
        database,
        mode: "production",
        env: { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0", RATE_LIMIT_GENERATE_PER_MINUTE: "0" },
      });
      app = prod.app;
      targets = await protectedTargets();
      const token = remember(prod.token(victim));
      await expectStatus(await prod.fetch(request("POST", "/api/onboarding/api-keys", { token, body: victimKeys })), 200);
    });
    afterAll(async () => {
      prod.cleanup();
      await database.destroy();
    });

    it("covers every protected route of the table", () => {
      const names = targets.map((t) => `${t.method} ${t.path}`);
      expect(names).toEqual(
        expect.arrayContaining([
          "GET /api/onboarding/api-keys",
          "POST /api/onboarding/api-keys",
          "DELETE /api/onboarding/api-keys",
          "GET /api/onboarding/session",
          "PUT /api/onboarding/session",
        ]),
      );
      for (const route of routes.filter((r) => r.auth)) expect(names.some((n) => n.endsWith(` ${route.path}`)), route.path).toBe(true);
    });

    /** The bad credentials, all naming the victim where a token names anyone. */
    function badCredentials(): [string, { headers?: Record<string, string>; query?: string }][] {
      const signer = prod.signer;
      const claims = { sub: victim };
      const bearer = (token: string) => ({ headers: { authorization: `Bearer ${remember(token)}` } });
      const valid = () => remember(signer.sign(claims));
      const cases: [string, { headers?: Record<string, string>; query?: string }][] = [
        ["no token", {}],
        ["empty Authorization", { headers: { authorization: "" } }],
        ['"Bearer" without a token', { headers: { authorization: "Bearer" } }],
        ["Basic scheme with a valid token", { headers: { authorization: `Basic ${valid()}` } }],
        ["Basic scheme next to a valid __session cookie", { headers: { authorization: "Basic dXNlcjpwYXNz", cookie: `__session=${valid()}` } }],
        ["an empty Authorization next to a valid __session cookie", { headers: { authorization: "", cookie: `__session=${valid()}` } }],
        ["pending session (sts: pending)", bearer(signer.sign({ ...claims, sts: "pending" }))],
        ["pending session in the __session cookie", { headers: { cookie: `__session=${remember(signer.sign({ ...claims, sts: "pending" }))}` } }],
        ["valid token without a scheme", { headers: { authorization: valid() } }],
        ["valid token in a non-standard header", { headers: { "x-session-token": valid(), "x-clerk-auth-token": valid() } }],
        ["valid token in another cookie", { headers: { cookie: `session=${valid()}; __client=${valid()}` } }],
        ["expired", bearer(expiredToken(signer, claims))],
        ["expired, in the __session cookie", { headers: { cookie: `__session=${remember(expiredToken(signer, claims))}` } }],
        ["not yet valid (nbf)", bearer(futureNbfToken(signer, claims))],
        ["issued in the future (iat)", bearer(futureIatToken(signer, claims))],
        ["signed with another key", bearer(wrongKeyToken(signer, claims))],
        ["signed by another instance (other kid and key)", bearer(createTestSigner().sign(claims))],
        ["payload edited after signing", bearer(tamperedToken(signer, claims))],
        ["alg: none", bearer(algNoneToken(signer, claims))],
        ["HS256 with the public key as secret", bearer(hs256WithPublicKeyToken(signer, claims))],
        ["wrong azp", bearer(wrongAzpToken(signer, claims))],
        ["no sub", bearer(noSubToken(signer))],
        ["empty sub", bearer(signer.sign({ sub: "" }))],
        ["typ not JWT", bearer(signer.sign(claims, { header: { typ: "at+jwt" } }))],
        ["a non-session token category (cat)", bearer(signer.sign(claims, { header: { cat: "cl_M2M0000000000" } }))],
        ["token only in the query string (__session)", { query: `__session=${encodeURIComponent(valid())}` }],
        ["token only in the query string (token)", { query: `token=${encodeURIComponent(valid())}` }],
        ["token only in the query string (access_token)", { query: `access_token=${encodeURIComponent(valid())}` }],
        ["token only in the query string (authorization)", { query: `authorization=${encodeURIComponent(`Bearer ${valid()}`)}` }],
      ];
      for (const [name, token] of Object.entries(malformedTokens(signer))) {
        if (token) remember(token);
        cases.push([`malformed: ${name}`, { headers: { authorization: `Bearer ${token}` } }]);
      }
      return cases;
    }

    it("every bad or missing credential answers 401 with www-authenticate, on every protected method, and changes nothing", async () => {
      const before = await rowCounts(database);
      const cases = badCredentials();
      expect(cases.length).toBeGreaterThanOrEqual(30);
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
        for (const headers of [{ cookie: `__session=${token}` }, { cookie: `theme=dark; __session=${encodeURIComponent(token)}; other=1` }]) {
          if (target.method === "DELETE" && headers.cookie.startsWith("theme")) {
            const resave = validRequest({ path: target.path, url: target.url, method: "POST" }, { authorization: `Bearer ${token}` }, seed++);
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
      const response = await app.fetch(new Request("http://localhost/api/onboarding/api-keys", { headers: { authorization: `bearer ${token}` } }));
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
}
