/**
 * CORS per ALLOWED_ORIGINS, for every route of the route table, through createApp (local
 * server / Lambda) and the api/ exports (Vercel):
 * - a preflight from a listed origin → 204 echoing the origin, credentials allowed, the
 *   route's methods, the headers a frontend sends, `Vary: Origin`;
 * - from anything else (near misses included) → no allow-origin, no credentials;
 * - actual requests (successes, problems and the event stream alike) from a listed origin
 *   carry allow-origin, credentials and expose x-request-id; from any other origin, none.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routes } from "../../lib/routes.js";
import type { AnyRoute as Route } from "../../lib/http/route.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import {
  describeExchange,
  endpointRequest,
  endpoints,
  readResponse,
  send,
  transports,
  type Endpoint,
  type Exchange,
} from "../helpers/battery.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const allEndpoints = await endpoints();
const ALLOWED = ["https://app.example.com", "http://localhost:5173"];
const DISALLOWED = [
  "https://evil.example",
  "https://app.example.com.evil.example",
  "https://evilapp.example.com",
  "http://app.example.com", // another scheme
  "https://APP.EXAMPLE.COM",
  "https://app.example.com/",
  "https://app.example.com:8443",
  "http://localhost:5174",
  "null",
  "*",
  "https://app.example.com, https://evil.example",
];
let cases = 0;

/** One representative endpoint per path (for OPTIONS), plus the path's methods. */
const routeEntries = [...new Set(routes.map((r) => r.path))].map((path) => {
  const own = allEndpoints.filter((e) => e.route.path === path);
  return { route: own[0]!.route, endpoint: own[0]!, methods: own.map((e) => e.method) };
});

const list = (value: string | null) =>
  (value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

function preflight(endpoint: Endpoint, origin: string, method: string): Request {
  return new Request(`http://localhost${endpoint.route.path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization, content-type" },
  });
}

/**
 * Nothing that lets an unlisted origin read a response with the user's credentials. A public
 * route (no auth, same answer for everyone, such as the OpenAPI document) may still say
 * `Access-Control-Allow-Origin: *`, which browsers never combine with credentials.
 */
function expectNoCors(label: string, ex: Exchange, route: Route): void {
  const origin = ex.headers.get("access-control-allow-origin");
  if (!(origin === "*" && !route.auth)) expect(origin, `access-control-allow-origin: ${describeExchange(label, ex)}`).toBeNull();
  for (const header of ["access-control-allow-credentials", "access-control-allow-methods", "access-control-expose-headers"]) {
    expect(ex.headers.get(header), `${header}: ${describeExchange(label, ex)}`).toBeNull();
  }
}

describe("CORS", () => {
  let database: TestDatabase;
  const { gemini, exa } = useFakeUpstreams();
  let rt: TestRuntime;
  let closed: TestRuntime;
  let wildcard: TestRuntime;
  const user = "user_cors";

  beforeAll(async () => {
    database = await backends[0]!.open();
    const env = {
      GEMINI_BASE_URL: gemini.url,
      EXA_BASE_URL: exa.url,
      RATE_LIMIT_GENERATE_PER_MINUTE: "0",
      RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
      RATE_LIMIT_GATEWAY_PER_MINUTE: "0",
    };
    rt = makeRuntime({ database, mode: "production", env: { ...env, ALLOWED_ORIGINS: ` ${ALLOWED.join(" , ")} ` } });
    closed = makeRuntime({ database, mode: "production", env });
    wildcard = makeRuntime({ database, mode: "production", env: { ...env, ALLOWED_ORIGINS: "*" } });
    await saveUserKeys();
  });
  async function saveUserKeys(): Promise<void> {
    const save = allEndpoints.find((e) => e.label === "POST /api/onboarding/api-keys")!;
    await expectStatus(
      await send(rt.runtime, "function", save, endpointRequest(save, { token: rt.token(user), body: { json: sampleKeys(31) } })),
      200,
    );
  }
  afterAll(async () => {
    for (const r of [rt, closed, wildcard]) r?.cleanup();
    await database?.destroy();
    console.info(`CORS: ${cases} cases`);
  });

  it("the runtime parsed the allow-list", () => {
    expect(rt.runtime.config.allowedOrigins).toEqual(ALLOWED);
  });

  for (const { route, endpoint, methods } of routeEntries) {
    for (const transport of transports) {
      it(`preflight ${route.path} via ${transport} from a listed origin → 204 with origin, credentials, methods, headers, Vary`, async () => {
        for (const origin of ALLOWED) {
          for (const method of methods) {
            const ex = await readResponse(await send(rt.runtime, transport, endpoint, preflight(endpoint, origin, method)));
            const label = `OPTIONS ${route.path} from ${origin}`;
            expect(ex.status, describeExchange(label, ex)).toBe(204);
            expect(ex.text).toBe("");
            expect(ex.headers.get("access-control-allow-origin"), label).toBe(origin);
            expect(ex.headers.get("access-control-allow-credentials"), label).toBe("true");
            const allowMethods = list(ex.headers.get("access-control-allow-methods"));
            for (const m of methods) expect(allowMethods, label).toContain(m.toLowerCase());
            for (const m of ["GET", "POST", "PUT", "DELETE"].filter((m) => !methods.includes(m as never)))
              expect(allowMethods, label).not.toContain(m.toLowerCase());
            const allowHeaders = list(ex.headers.get("access-control-allow-headers"));
            expect(allowHeaders, label).toEqual(expect.arrayContaining(["authorization", "content-type"]));
            expect(list(ex.headers.get("vary")), label).toContain("origin");
            cases++;
          }
        }
      });

      it(`preflight ${route.path} via ${transport} from any other origin → no allow-origin, no credentials`, async () => {
        for (const origin of DISALLOWED) {
          const ex = await readResponse(await send(rt.runtime, transport, endpoint, preflight(endpoint, origin, methods[0]!)));
          expect(ex.status).toBeLessThan(500);
          expectNoCors(`OPTIONS ${route.path} from ${origin}`, ex, route);
          cases++;
        }
        for (const runtime of [closed.runtime, wildcard.runtime]) {
          const ex = await readResponse(await send(runtime, transport, endpoint, preflight(endpoint, ALLOWED[0]!, methods[0]!)));
          expectNoCors(`OPTIONS ${route.path} with ALLOWED_ORIGINS=${runtime.config.allowedOrigins.join(",") || "(unset)"}`, ex, route);
          cases++;
        }
      });
    }
  }

  for (const endpoint of allEndpoints) {
    for (const transport of transports) {
      it(`${endpoint.label} via ${transport}: listed origins get allow-origin, credentials and x-request-id exposed; others nothing`, async () => {
        await saveUserKeys(); // a DELETE case may have removed one
        const make = (origin: string | undefined, withToken = true) =>
          endpointRequest(endpoint, {
            origin,
            token: withToken ? rt.token(user) : undefined,
            seed: 31,
            headers: { accept: "application/json" },
          });
        let successes = 0;
        for (const origin of ALLOWED) {
          for (const withToken of [true, false]) {
            const ex = await readResponse(await send(rt.runtime, transport, endpoint, make(origin, withToken)));
            const label = `${endpoint.label} from ${origin}${withToken ? "" : " without a token"}`;
            expect(ex.status, describeExchange(label, ex)).toBeLessThan(500);
            if (ex.status < 300) successes++;
            expect(ex.headers.get("access-control-allow-origin"), describeExchange(label, ex)).toBe(origin);
            expect(ex.headers.get("access-control-allow-credentials"), label).toBe("true");
            expect(list(ex.headers.get("access-control-expose-headers")), label).toContain("x-request-id");
            expect(list(ex.headers.get("vary")), label).toContain("origin");
            cases++;
          }
        }
        for (const origin of [...DISALLOWED, undefined]) {
          const ex = await readResponse(await send(rt.runtime, transport, endpoint, make(origin)));
          expectNoCors(`${endpoint.label} from ${origin ?? "(no origin)"}`, ex, endpoint.route);
          expect(ex.headers.get("x-request-id")).toBeTruthy();
          cases++;
        }
        // A development-only route is a 404 in production (this runtime): its errors still carry CORS.
        if (!endpoint.route.developmentOnly) expect(successes, "a successful response was among those checked").toBeGreaterThan(0);
        const unlisted = await readResponse(await send(wildcard.runtime, transport, endpoint, make("https://app.example.com")));
        expectNoCors(`${endpoint.label} with ALLOWED_ORIGINS=*`, unlisted, endpoint.route);
        cases++;
      });
    }
  }

  it("the generation stream from a listed origin carries the CORS headers too", async () => {
    const generate = allEndpoints.find((e) => e.label === "POST /api/blog/generate")!;
    await saveUserKeys();
    for (const transport of transports) {
      const ex = await readResponse(
        await send(
          rt.runtime,
          transport,
          generate,
          endpointRequest(generate, { origin: ALLOWED[1], token: rt.token(user), headers: { accept: "text/event-stream" } }),
        ),
      );
      expect(ex.headers.get("content-type"), describeExchange("stream", ex)).toMatch(/^text\/event-stream/);
      expect(ex.headers.get("access-control-allow-origin")).toBe(ALLOWED[1]);
      expect(ex.headers.get("access-control-allow-credentials")).toBe("true");
      expect(ex.text).toContain("event: done");
      cases++;
    }
  });
});
