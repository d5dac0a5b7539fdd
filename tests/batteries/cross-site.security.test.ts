/**
 * Cross-site "simple" requests (lib/http/middleware/cross-site.ts): a page on any site can make
 * the browser send a POST with a text/plain, form or multipart body, or a body-less POST or
 * DELETE... without a preflight. The reproduction: `POST /api/onboarding/complete` with
 * `Origin: https://evil.example` and `text/plain` was 200 in development. This walks every
 * route that is not GET, in development (the operator's .env keys, no sign-in) and production:
 * every such request is refused before anything runs, and nothing changes (database, .env).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routes } from "../../lib/routes.js";
import type { AnyRoute } from "../../lib/http/route.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const { gemini, exa } = useFakeUpstreams();
const EVIL = "https://evil.example";
const ALLOWED = "https://app.example";
const keys = sampleKeys(9101);

const stateChanging = routes.filter((route) => route.method !== "GET");

/** The route's path with its example parameters filled in. */
function pathOf(route: AnyRoute): string {
  const example = (route.params?.example ?? {}) as Record<string, string>;
  let path = route.path;
  for (const [name, value] of Object.entries(example)) path = path.replace(`:${name}`, value);
  return route.path === "/api/onboarding/api-keys" && route.method === "DELETE" ? `${path}?provider=gemini` : path;
}

/** Every row of every table, and the .env file: what must not change. */
async function snapshot(database: TestDatabase, envFile: string): Promise<string> {
  const tables = await database.rows<{ table_name: string }>(
    sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  );
  const dump: Record<string, unknown> = { env: readFileSync(envFile, "utf8") };
  for (const { table_name } of tables) {
    dump[table_name] = await database.rows(sql`select * from ${sql.identifier(table_name)} order by 1`);
  }
  return JSON.stringify(dump);
}

/** Bodies a cross-site form or fetch can send without a preflight. */
const simpleBodies: [string, string][] = [
  ["text/plain", JSON.stringify({ gemini: keys.gemini, currentStep: 6, progress: 100, topic: "x", monthlyUsd: 0 })],
  ["text/plain;charset=UTF-8", "{}"],
  ["application/x-www-form-urlencoded", "gemini=AIza"],
  ["multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n'],
];

let database: TestDatabase;
beforeAll(async () => {
  database = await backends[0]!.open();
});
afterAll(async () => {
  await database.destroy();
});

for (const mode of ["development", "production"] as const) {
  describe(`every state-changing route, ${mode}`, () => {
    let app: TestRuntime;
    let auth: Record<string, string>;
    let before: string;

    beforeAll(async () => {
      app = makeRuntime({
        database,
        mode,
        env: {
          ALLOWED_ORIGINS: ALLOWED,
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          ...(mode === "development" ? { CLERK_JWT_KEY: "" } : {}),
        },
      });
      writeFileSync(app.envFile, `GEMINI_API_KEY=${keys.gemini}\n`);
      auth = mode === "production" ? { authorization: `Bearer ${app.token("user_cross_site")}` } : {};
      // Something to lose: a saved key and a session.
      await expectStatus(await app.fetch(request("POST", "/api/onboarding/api-keys", { body: { exa: keys.exa }, headers: auth })), 200);
      before = await snapshot(database, app.envFile);
    });

    it("walks every route that is not GET (the table is not empty)", () => {
      expect(stateChanging.map((r) => `${r.method} ${r.path}`)).toEqual(
        expect.arrayContaining(["POST /api/onboarding/complete", "DELETE /api/me", "POST /api/onboarding/api-keys"]),
      );
    });

    for (const route of stateChanging) {
      const label = `${route.method} ${route.path}`;

      it(`${label}: a body that is not JSON is 415, from any origin or none`, async () => {
        for (const [type, body] of simpleBodies) {
          for (const origin of [EVIL, undefined]) {
            const headers: Record<string, string> = { ...auth, "content-type": type, ...(origin ? { origin } : {}) };
            const response = await app.fetch(request(route.method, pathOf(route), { rawBody: body, headers }));
            const problem = await expectStatus(response, 415);
            expect(problem.code, `${type} from ${origin}`).toBe("unsupported-media-type");
            expect(response.headers.get("access-control-allow-origin")).toBeNull();
          }
        }
        expect(await snapshot(database, app.envFile)).toBe(before);
      });

      it(`${label}: no body from a foreign Origin (or Origin: null) is 403`, async () => {
        for (const origin of [EVIL, "null", "http://localhost.evil.example", "http://localhost:4000", "file://"]) {
          const response = await app.fetch(request(route.method, pathOf(route), { headers: { ...auth, origin } }));
          expect((await expectStatus(response, 403)).code, origin).toBe("cross-site-request");
        }
        expect(await snapshot(database, app.envFile)).toBe(before);
      });

      it(`${label}: ${route.body ? "a JSON body from any origin" : "no body from its own origin, an allowed one or none"} passes the guard`, async () => {
        // A JSON body cannot come cross-site without a preflight (answered for ALLOWED_ORIGINS only).
        const origins = route.body ? [EVIL, "http://localhost", ALLOWED, undefined] : ["http://localhost", ALLOWED, undefined];
        for (const origin of origins) {
          const headers = { ...auth, ...(origin ? { origin } : {}) };
          const response = await app.fetch(request(route.method, pathOf(route), route.body ? { body: {}, headers } : { headers }));
          expect([403, 415], `${origin}: ${response.status}`).not.toContain(response.status);
          await response.body?.cancel();
        }
        before = await snapshot(database, app.envFile); // some of these did act (DELETE /api/me): the new baseline
      });
    }

    it("the reproduction: POST /api/onboarding/complete, text/plain, Origin evil.example → 415, onboarding not completed", async () => {
      const stateBefore = await snapshot(database, app.envFile);
      const response = await app.fetch(
        request("POST", "/api/onboarding/complete", { rawBody: "{}", headers: { ...auth, origin: EVIL, "content-type": "text/plain" } }),
      );
      expect(response.status).toBe(415);
      expect(await snapshot(database, app.envFile)).toBe(stateBefore);
    });
  });
}
