/**
 * Path traversal against the real `npm start` server (scripts/start.ts, lib/server/static.ts):
 * raw request targets with encoded slashes, dots and backslashes (`GET /..%2fpackage.json`),
 * sent over a socket exactly as written (fetch would normalise them). A server that looked
 * files up by the decoded path would return the repository's package.json or .env; this one
 * serves only the files it listed at startup, by their exact path.
 */
import { request as httpRequest } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startListeningServer, type LocalServer } from "../helpers/local-server.js";

const root = join(import.meta.dirname, "../..");
const packageJson = readFileSync(join(root, "package.json"), "utf8");
const tsconfig = readFileSync(join(root, "tsconfig.json"), "utf8");

/** GET `target` exactly as written (no URL normalisation), with Host localhost. */
function rawGet(base: string, target: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method: "GET", path: target, headers: { host: `localhost:${port}` } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const targets = [
  "/..%2fpackage.json",
  "/..%2Fpackage.json",
  "/%2e%2e%2fpackage.json",
  "/%2e%2e/package.json",
  "/.%2e/package.json",
  "/../package.json",
  "/assets/..%2f..%2fpackage.json",
  "/assets/../../package.json",
  "/assets%2f..%2f..%2fpackage.json",
  "/docs/..%2f..%2fpackage.json",
  "/..%5cpackage.json",
  "/..\\package.json",
  "/..%252fpackage.json",
  "/%2e%2e%2f%2e%2e%2fpackage.json",
  "/..%2f.env",
  "/..%2ftsconfig.json",
  "/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
  "//etc/passwd",
  "/%2fetc%2fpasswd",
  "/index.html%00.json",
  "/..%c0%afpackage.json",
  "/..%ef%bc%8fpackage.json",
];

describe("npm start serves no file outside public/, however the path is encoded", () => {
  const dir = mkdtempSync(join(tmpdir(), "byok-traversal-"));
  let server: LocalServer & { url: string };

  beforeAll(async () => {
    server = await startListeningServer({ PORT: "0", PGLITE_DIR: join(dir, "pglite"), ENV_FILE: join(dir, ".env") });
  }, 120_000);
  afterAll(() => {
    server?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("still serves its own files (so the refusals below are not a dead server)", async () => {
    const robots = await rawGet(server.url, "/robots.txt");
    expect(robots.status).toBe(200);
    expect(robots.body).toContain("User-agent");
  });

  for (const target of targets) {
    it(`GET ${target}: not a file of the repository or the machine`, async () => {
      const { status, body } = await rawGet(server.url, target);
      expect(status, `${target} → ${status}`).not.toBe(200);
      expect(body).not.toContain('"byok-functions"');
      expect(body).not.toContain(packageJson.slice(0, 60));
      expect(body).not.toContain(tsconfig.slice(0, 40));
      expect(body).not.toContain("GEMINI_API_KEY=");
      expect(body).not.toContain("root:x:0:0");
    });
  }
});
