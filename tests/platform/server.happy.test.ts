/**
 * The local server as a user runs it (`npm start` = tsx scripts/start.ts): embedded
 * database, development mode, a curl-like round trip over real HTTP, graceful shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request as httpRequest } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sampleKeys } from "../helpers/runtime.js";
import { startListeningServer } from "../helpers/local-server.js";

describe("local server (npm start)", () => {
  const dir = mkdtempSync(join(tmpdir(), "byok-server-"));
  let server: Awaited<ReturnType<typeof startListeningServer>>;

  beforeAll(async () => {
    server = await startListeningServer({ PORT: "0", PGLITE_DIR: join(dir, "pglite"), ENV_FILE: join(dir, ".env") });
  });
  afterAll(() => {
    server?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("says what the first run is doing while it sets up the embedded database", () => {
    expect(server.output()).toContain(`setting up the embedded database in ${join(dir, "pglite")} (first run only`);
  });

  it("answers health in development mode on the embedded database", async () => {
    const response = await fetch(`${server.url}/api/health`);
    expect(response.headers.get("x-request-id")).toMatch(/^req_/);
    expect(await response.json()).toMatchObject({ status: "ok", mode: "development", driver: "pglite" });
  });

  it("saves and lists keys over HTTP, writing the .env file, and never logs them", async () => {
    const keys = sampleKeys(42);
    const saved = await fetch(`${server.url}/api/onboarding/api-keys`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(keys),
    });
    expect(saved.status, await saved.clone().text()).toBe(200);
    const listed = (await (await fetch(`${server.url}/api/onboarding/api-keys`)).json()) as { keys: { provider: string }[] };
    expect(listed.keys.map((k) => k.provider)).toEqual(["gemini", "exa", "copilotkit"]);
    const env = readFileSync(join(dir, ".env"), "utf8");
    expect(env).toContain(`GEMINI_API_KEY=${keys.gemini}`);
    expect(env).toMatch(/^KEY_ENCRYPTION_KEYS=/m);
    for (const value of Object.values(keys)) expect(server.output()).not.toContain(value);
  });

  it("answers unknown paths and methods with problems", async () => {
    const missing = await fetch(`${server.url}/api/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toContain("application/problem+json");
    const wrongMethod = await fetch(`${server.url}/api/health`, { method: "DELETE" });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toContain("GET");
  });

  /** A request with a Host header of our choosing (fetch sets Host from the URL; node:http does not). */
  function withHost(path: string, host: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${server.url}${path}`, { method: init.method ?? "GET", headers: { ...init.headers, host } });
      req.on("response", (res) => {
        let data = "";
        res.on("data", (chunk: Buffer) => (data += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: data }));
      });
      req.on("error", reject);
      req.end(init.body);
    });
  }

  it("refuses a request addressed to another host (DNS rebinding): 421, the .env file untouched", async () => {
    const before = readFileSync(join(dir, ".env"));
    const port = new URL(server.url).port;
    const refused = await withHost("/api/onboarding/api-keys", `attacker.example:${port}`, {
      method: "POST",
      headers: { origin: `http://attacker.example:${port}`, "content-type": "application/json" },
      body: JSON.stringify(sampleKeys(43)),
    });
    expect(refused.status, refused.text).toBe(421);
    expect(JSON.parse(refused.text)).toMatchObject({ code: "misdirected-request" });
    expect(readFileSync(join(dir, ".env")).equals(before)).toBe(true);
    for (const host of [`localhost:${port}`, `[::1]:${port}`]) {
      const local = await withHost("/api/health", host);
      expect(local.status, `${host}: ${local.text}`).toBe(200);
    }
  });

  it("stops cleanly on SIGTERM", async () => {
    const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
    server.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
  });

  it("does not announce the set-up again once the embedded database exists", async () => {
    const again = await startListeningServer({ PORT: "0", PGLITE_DIR: join(dir, "pglite"), ENV_FILE: join(dir, ".env") });
    try {
      expect(again.output()).not.toContain("setting up the embedded database");
    } finally {
      again.child.kill("SIGKILL");
    }
  });
});
