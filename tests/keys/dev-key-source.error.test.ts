/**
 * One truth for keys in development (lib/keys/resolver.ts `developmentKeys`, lib/keys/service.ts
 * `listUserKeys`): what the key list shows is what a generation uses.
 *
 * The real local server (`scripts/start.ts`, as `npm start` runs it) loads the `.env` file
 * into its process environment at start. A key deleted through the API (database row and
 * `.env` line gone) used to keep paying: the resolver fell back to that copy. And a fresh
 * database with a `.env` holding keys showed "not saved" while generation used them.
 * Both save forms (by provider, and ALwrity's one key per call) are covered, and a restart
 * after the delete.
 */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sampleKeys } from "../helpers/runtime.js";
import { startListeningServer, type LocalServer } from "../helpers/local-server.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const dir = mkdtempSync(join(tmpdir(), "byok-dev-source-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { gemini, exa } = useFakeUpstreams();

function stopped(server: LocalServer): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null) return resolve();
    server.child.once("exit", () => resolve());
    server.child.kill("SIGTERM");
  });
}

/** A development server over `name`'s own .env file and embedded database (`env`: its real environment's extra variables). */
const start = (name: string, env: Record<string, string> = {}) =>
  startListeningServer({
    ...env,
    PORT: "0",
    ENV_FILE: join(dir, `${name}.env`),
    PGLITE_DIR: join(dir, `${name}-pglite`),
    GEMINI_BASE_URL: gemini.url,
    EXA_BASE_URL: exa.url,
  });

const call = (url: string, method: string, path: string, body?: unknown) =>
  fetch(url + path, {
    method,
    headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

interface ListedKey {
  provider: string;
  hint: string;
  source?: string;
}
const list = async (url: string) =>
  (await (await call(url, "GET", "/api/onboarding/api-keys")).json()) as { keys: ListedKey[]; missing: string[] };
const generate = (url: string) => call(url, "POST", "/api/blog/generate", { topic: "Heat pumps in old houses", research: false });

describe("development: a deleted key is never used again", () => {
  const forms = {
    "by provider": (key: string) => ({ gemini: key }),
    "one key per call (ALwrity)": (key: string) => ({ provider: "gemini", api_key: key }),
  };
  for (const [form, body] of Object.entries(forms)) {
    it(`saved ${form}, restart (the .env loaded at start), delete: the next generation is refused, and after another restart`, {
      timeout: 120_000,
    }, async () => {
      const name = form.startsWith("by") ? "bulk" : "one";
      const key = sampleKeys(form.startsWith("by") ? 8101 : 8102).gemini;
      let server = await start(name);
      try {
        expect((await call(server.url, "POST", "/api/onboarding/api-keys", body(key))).status).toBe(200);
      } finally {
        await stopped(server);
      }
      expect(readFileSync(join(dir, `${name}.env`), "utf8")).toContain(`GEMINI_API_KEY=${key}`);

      server = await start(name); // loads the .env file, key and all, into its environment
      try {
        expect((await list(server.url)).keys.find((k) => k.provider === "gemini")?.hint).toBe(`…${key.slice(-4)}`);
        expect((await call(server.url, "DELETE", "/api/onboarding/api-keys?provider=gemini")).status).toBe(204);
        expect((await list(server.url)).missing).toContain("gemini");
        gemini.reset();
        const refused = await generate(server.url);
        expect(refused.status).toBe(409);
        expect(((await refused.json()) as { code: string }).code).toBe("missing-provider-key");
        expect(gemini.requests.filter((r) => r.apiKey === key)).toEqual([]);
      } finally {
        await stopped(server);
      }

      server = await start(name);
      try {
        expect((await list(server.url)).missing).toContain("gemini");
        expect((await generate(server.url)).status).toBe(409);
        expect(gemini.requests.filter((r) => r.apiKey === key)).toEqual([]);
      } finally {
        await stopped(server);
      }
    });
  }
});

describe("development: a .env that already holds keys, on a fresh database", () => {
  it("lists them as present, from the .env file, and generation uses exactly those; deleting one removes its line", {
    timeout: 120_000,
  }, async () => {
    const keys = sampleKeys(8103);
    writeFileSync(join(dir, "fresh.env"), `# the developer's own file\nGEMINI_API_KEY=${keys.gemini}\nEXA_API_KEY=${keys.exa}\n`);
    const server = await start("fresh");
    try {
      const listed = await list(server.url);
      expect(listed.keys.map((k) => [k.provider, k.hint, k.source])).toEqual([
        ["gemini", `…${keys.gemini.slice(-4)}`, "env-file"],
        ["exa", `…${keys.exa.slice(-4)}`, "env-file"],
      ]);
      expect(listed.missing).toEqual(["copilotkit"]);
      gemini.reset();
      exa.reset();
      const done = await call(server.url, "POST", "/api/blog/generate", { topic: "Heat pumps in old houses" });
      expect(done.status).toBe(200);
      expect(gemini.requests.some((r) => r.apiKey === keys.gemini)).toBe(true);
      expect(exa.requests.some((r) => r.apiKey === keys.exa)).toBe(true);

      // A key only in the file is deleted from the file: 204, its line gone, never used again.
      expect((await call(server.url, "DELETE", "/api/onboarding/api-keys?provider=exa")).status).toBe(204);
      expect(readFileSync(join(dir, "fresh.env"), "utf8")).not.toContain("EXA_API_KEY=");
      expect(readFileSync(join(dir, "fresh.env"), "utf8")).toContain("# the developer's own file");
      expect((await list(server.url)).missing).toEqual(["exa", "copilotkit"]);
      exa.reset();
      expect((await call(server.url, "POST", "/api/blog/generate", { topic: "Heat pumps in old houses" })).status).toBe(200);
      expect(exa.requests).toEqual([]);
    } finally {
      await stopped(server);
    }
  });
});

describe("development: a key exported in the shell that started the server", () => {
  it("is listed as from the process environment, used, and cannot be deleted through the API (404 naming the variable)", {
    timeout: 120_000,
  }, async () => {
    const keys = sampleKeys(8104);
    writeFileSync(join(dir, "shell.env"), `GEMINI_API_KEY=${keys.gemini}\n`);
    const server = await start("shell", { EXA_API_KEY: keys.exa });
    try {
      const listed = await list(server.url);
      expect(listed.keys.map((k) => [k.provider, k.source])).toEqual([
        ["gemini", "env-file"],
        ["exa", "process-env"],
      ]);
      const refused = await call(server.url, "DELETE", "/api/onboarding/api-keys?provider=exa");
      expect(refused.status).toBe(404);
      expect(((await refused.json()) as { detail: string }).detail).toContain("EXA_API_KEY");
      exa.reset();
      expect((await call(server.url, "POST", "/api/blog/generate", { topic: "Heat pumps in old houses" })).status).toBe(200);
      expect(exa.requests.some((r) => r.apiKey === keys.exa)).toBe(true);
    } finally {
      await stopped(server);
    }
  });
});
