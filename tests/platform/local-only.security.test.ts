/**
 * DNS rebinding against the development server: a page on attacker.example, its name later
 * resolved to 127.0.0.1, sends requests with `Host: attacker.example` (and its own Origin).
 * Development mode answers only requests addressed to localhost / 127.0.0.1 / [::1] that came
 * through no proxy (or only through one serving this machine): anything else is a 421 before
 * any handler, the database or the .env file is touched. Production mode is unaffected.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const { gemini, exa } = useFakeUpstreams();
let database: TestDatabase;
/** Every property read of the database (a query, a transaction...) counts as a use. */
let databaseUses = 0;
let countedDatabase: Database;

beforeAll(async () => {
  database = await backends[0]!.open();
  countedDatabase = new Proxy(database, {
    get(target, property, receiver) {
      databaseUses += 1;
      return Reflect.get(target, property, receiver);
    },
  });
});
afterAll(async () => {
  await database.destroy();
});

function devRuntime(): TestRuntime {
  return makeRuntime({
    database: countedDatabase,
    mode: "development",
    // No Clerk: development runs every request as DEV_USER_ID with the .env keys.
    env: {
      CLERK_JWT_KEY: "",
      CLERK_AUTHORIZED_PARTIES: "",
      GEMINI_BASE_URL: gemini.url,
      EXA_BASE_URL: exa.url,
      RATE_LIMIT_GENERATE_PER_MINUTE: "0",
    },
  });
}

const envKeys = sampleKeys(7301);
const newKeys = sampleKeys(7302);
const rebinding = { host: "attacker.example:3000", origin: "http://attacker.example:3000" };

function saveRequest(headers: Record<string, string>): Request {
  return request("POST", "/api/onboarding/api-keys", { body: { gemini: newKeys.gemini, exa: newKeys.exa }, headers });
}
function generateRequest(headers: Record<string, string>): Request {
  return request("POST", "/api/blog/generate", { body: { topic: "DNS rebinding" }, headers: { accept: "application/json", ...headers } });
}

describe("development server: only this machine", () => {
  let dev: TestRuntime;
  let envBefore: Buffer;

  beforeAll(() => {
    dev = devRuntime();
    writeFileSync(dev.envFile, `# the developer's keys\nGEMINI_API_KEY=${envKeys.gemini}\nEXA_API_KEY=${envKeys.exa}\n`);
    envBefore = readFileSync(dev.envFile);
  });

  it("a foreign Host with a foreign Origin cannot save keys, list them or run a generation: 421, nothing runs", async () => {
    gemini.reset();
    exa.reset();
    databaseUses = 0;
    for (const req of [
      saveRequest(rebinding),
      generateRequest(rebinding),
      request("GET", "/api/onboarding/api-keys", { headers: rebinding }),
    ]) {
      const response = await dev.fetch(req);
      const problem = await expectStatus(response, 421);
      expect(response.headers.get("content-type")).toContain("application/problem+json");
      expect(problem).toMatchObject({ code: "misdirected-request", status: 421, requestId: response.headers.get("x-request-id") });
      expect(JSON.stringify(problem)).not.toContain("attacker");
      // No CORS headers: the page could not read the answer anyway.
      expect(response.headers.get("access-control-allow-origin")).toBeNull();
    }
    expect(gemini.requests).toHaveLength(0);
    expect(exa.requests).toHaveLength(0);
    expect(databaseUses).toBe(0);
    expect(readFileSync(dev.envFile).equals(envBefore)).toBe(true);
    for (const line of dev.logs) for (const key of [...Object.values(envKeys), ...Object.values(newKeys)]) expect(line).not.toContain(key);
  });

  it("the same requests from this machine work (so the refusal above is the host check)", async () => {
    gemini.reset();
    exa.reset();
    const generated = await expectStatus(
      await dev.fetch(generateRequest({ host: "localhost:3000", origin: "http://localhost:3000" })),
      200,
    );
    expect(generated.keySource).toBe("env");
    expect(gemini.requests.map((r) => r.apiKey)).toEqual([envKeys.gemini]);
    await expectStatus(await dev.fetch(saveRequest({ host: "127.0.0.1:3000" })), 200);
    expect(readFileSync(dev.envFile, "utf8")).toContain(`GEMINI_API_KEY=${newKeys.gemini}`);
  });

  it("answers localhost, 127.0.0.1 and [::1] on any port, and requests built in-process (no Host header: the URL's host)", async () => {
    for (const host of ["localhost", "localhost:3000", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:65535", "[::1]", "[::1]:3000"]) {
      const response = await dev.fetch(request("GET", "/api/health", { headers: { host } }));
      expect(response.status, host).toBe(200);
    }
    const inProcess = new Request("http://127.0.0.1:3000/api/health");
    expect(inProcess.headers.get("host")).toBeNull();
    expect((await dev.fetch(inProcess)).status).toBe(200);
    expect((await dev.fetch(new Request("http://evil.example/api/health"))).status).toBe(421);
  });

  it("refuses other names, look-alikes and addresses", async () => {
    for (const host of [
      "attacker.example",
      "localhost.attacker.example",
      "127.0.0.1.nip.io",
      "localhost:3000.attacker.example",
      "localhost:abc",
      "[::1].attacker.example",
      "0.0.0.0:3000",
      "127.0.0.2:3000",
      "192.168.1.20:3000",
      "",
    ]) {
      const response = await dev.fetch(request("GET", "/api/health", { headers: { host } }));
      expect(response.status, `Host: ${host}`).toBe(421);
    }
  });

  it("refuses requests a proxy forwarded from elsewhere; a proxy serving this machine (vercel dev) is fine", async () => {
    const refused: Record<string, string>[] = [
      { "x-forwarded-for": "203.0.113.7" },
      { "x-forwarded-for": "127.0.0.1, 203.0.113.7" },
      { "x-forwarded-for": "" },
      { forwarded: "for=203.0.113.7;proto=https" },
      { forwarded: 'for="[2001:db8::1]:4711"' },
      { forwarded: "proto=https;host=localhost" }, // a proxy that does not say who the client is
      { forwarded: "for=127.0.0.1", "x-forwarded-for": "198.51.100.2" },
      // A proxy on this machine (nginx's default proxy_pass rewrites Host to 127.0.0.1:3000):
      { "x-real-ip": "203.0.113.9" },
      { via: "1.1 proxy.example" },
      { "x-forwarded-host": "api.example.com" },
      { "x-forwarded-proto": "https" },
      { "cf-connecting-ip": "203.0.113.9" },
    ];
    for (const headers of refused) {
      const response = await dev.fetch(request("GET", "/api/health", { headers: { host: "localhost:3000", ...headers } }));
      expect(response.status, JSON.stringify(headers)).toBe(421);
    }
    const allowed: Record<string, string>[] = [
      { "x-forwarded-for": "127.0.0.1" },
      { "x-forwarded-for": "::1, ::ffff:127.0.0.1" },
      { forwarded: 'for=127.0.0.1;proto=http, for="[::1]:51000"' },
    ];
    for (const headers of allowed) {
      const response = await dev.fetch(request("GET", "/api/health", { headers: { host: "localhost:3000", ...headers } }));
      expect(response.status, JSON.stringify(headers)).toBe(200);
    }
  });

  it("the reproduction: nginx on this machine (Host 127.0.0.1:3000, X-Real-IP of a stranger) cannot save keys: 421, .env unchanged", async () => {
    const before = readFileSync(dev.envFile);
    databaseUses = 0;
    const response = await dev.fetch(saveRequest({ host: "127.0.0.1:3000", "x-real-ip": "203.0.113.9" }));
    expect((await expectStatus(response, 421)).code).toBe("misdirected-request");
    expect(databaseUses).toBe(0);
    expect(readFileSync(dev.envFile).equals(before)).toBe(true);
  });

  it("logs the refusal without the key material", () => {
    expect(dev.logs.some((line) => line.includes("request refused: the development server answers only this machine"))).toBe(true);
    for (const key of Object.values(newKeys)) expect(dev.logs.join("\n")).not.toContain(key);
  });
});

describe("production is not limited to this machine", () => {
  it("serves any Host, and requests through proxies", async () => {
    const prod = makeRuntime({ database: countedDatabase, mode: "production" });
    for (const headers of [rebinding, { host: "api.example.com", "x-forwarded-for": "203.0.113.7", forwarded: "for=203.0.113.7" }]) {
      await expectStatus(await prod.fetch(request("GET", "/api/health", { headers })), 200);
      const listed = await prod.fetch(request("GET", "/api/onboarding/api-keys", { headers, token: prod.token("user_prod_any_host") }));
      await expectStatus(listed, 200);
    }
  });
});
