/**
 * What `npm start` says when it cannot start as asked: which database problem (refused,
 * missing database, failed authentication, wrong scheme) with the password masked, a port in
 * use in one line (the first run's announcement is in server.happy.test.ts). A database that is down does
 * not stop the server: it answers 503 and migrates by itself when the database comes back.
 */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closedPort, startTcpProxy } from "../helpers/battery.js";
import { createPostgresDatabase, testDatabaseUrl } from "../helpers/db.js";
import { sampleKeys } from "../helpers/runtime.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { startLocalServer, type LocalServer } from "../helpers/local-server.js";
import { waitFor } from "../helpers/wait.js";

const password = "s3cretPassw0rd";
const dir = mkdtempSync(join(tmpdir(), "byok-startup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the local server as `npm start` does, with the test's own .env file. */
const start = (env: Record<string, string>) => startLocalServer({ ENV_FILE: join(dir, ".env"), ...env });

function stopped(server: LocalServer): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null) return resolve();
    server.child.once("exit", () => resolve());
    server.child.kill("SIGKILL");
  });
}

const saveKeys = (url: string) =>
  fetch(`${url}/api/onboarding/api-keys`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ gemini: sampleKeys(9).gemini }),
  });

/** What the server said: the `msg` of each JSON log line, and plain lines as they are. */
function said(output: string): string {
  return output
    .split("\n")
    .map((line) => {
      try {
        return (JSON.parse(line) as { msg: string }).msg;
      } catch {
        return line;
      }
    })
    .join("\n");
}

function expectNoRawFailure(output: string) {
  expect(output).not.toContain(password);
  expect(output).not.toContain("Failed query");
  expect(output).not.toMatch(/\n\s+at /); // no stack trace
}

describe("npm start with the database down", () => {
  it("says the connection was refused at host:port (password masked), starts anyway, answers 503, and migrates when the database comes back", {
    timeout: 120_000,
  }, async () => {
    const port = await closedPort();
    const postgres = testDatabaseUrl ? await createPostgresDatabase(testDatabaseUrl) : undefined;
    const database = postgres ? new URL(postgres.url).pathname.slice(1) : "byok";
    const server = await start({ PORT: "0", DATABASE_URL: `postgres://postgres:${password}@127.0.0.1:${port}/${database}` });
    let proxy: Awaited<ReturnType<typeof startTcpProxy>> | undefined;
    try {
      expect(server.url, server.stderr()).toBeDefined();
      const url = server.url!;
      expect(said(server.stderr())).toContain(`connection refused at 127.0.0.1:${port}`);
      expect(said(server.stderr())).toContain(`postgres://postgres:****@127.0.0.1:${port}/${database}`);
      expect(server.stderr()).toMatch(/starting anyway/);
      expectNoRawFailure(server.stdout() + server.stderr());

      const health = await fetch(`${url}/api/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: "degraded", database: "unavailable", driver: "pg" });
      for (const response of [await saveKeys(url), await fetch(`${url}/api/onboarding/api-keys`), await fetch(`${url}/api/usage`)]) {
        const body = await response.text();
        expect(response.status, body).toBe(503);
        expect(JSON.parse(body)).toMatchObject({ code: "database-unavailable" });
      }
      if (!postgres) return; // the comeback needs a real PostgreSQL behind the port

      // The database comes back on the same port: the server migrates by itself, no request needed.
      const target = new URL(testDatabaseUrl!);
      proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) }, port);
      await waitFor(() => /database reachable again and migrated/.test(server.stdout()), "background migration", {
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      expect((await fetch(`${url}/api/health`)).status).toBe(200);
      const saved = await saveKeys(url);
      expect(saved.status, await saved.clone().text()).toBe(200);
    } finally {
      await stopped(server);
      await proxy?.close();
      await postgres?.drop();
    }
  });

  it.skipIf(!testDatabaseUrl)("says which database does not exist (skipped without TEST_DATABASE_URL)", { timeout: 120_000 }, async () => {
    const url = new URL(testDatabaseUrl!);
    url.pathname = "/byok_no_such_database";
    url.password = password;
    const server = await start({ PORT: "0", DATABASE_URL: url.toString() });
    try {
      expect(server.url, server.stderr()).toBeDefined();
      expect(said(server.stderr())).toContain(`database "byok_no_such_database" does not exist on ${url.hostname}:${url.port || 5432}`);
      expectNoRawFailure(server.stdout() + server.stderr());
      expect((await fetch(`${server.url}/api/health`)).status).toBe(503);
    } finally {
      await stopped(server);
    }
  });

  it.skipIf(!testDatabaseUrl)(
    "says which user failed to authenticate (skipped without TEST_DATABASE_URL)",
    { timeout: 120_000 },
    async () => {
      const url = new URL(testDatabaseUrl!);
      url.username = "byok_no_such_role";
      url.password = password;
      const server = await start({ PORT: "0", DATABASE_URL: url.toString() });
      try {
        expect(server.url, server.stderr()).toBeDefined();
        expect(said(server.stderr())).toContain(`authentication failed for user "byok_no_such_role"`);
        expectNoRawFailure(server.stdout() + server.stderr());
      } finally {
        await stopped(server);
      }
    },
  );

  it("refuses a DATABASE_URL that is not PostgreSQL in one line, without the password", { timeout: 120_000 }, async () => {
    const server = await start({ PORT: "0", DATABASE_URL: `mysql://root:${password}@127.0.0.1:3306/app` });
    expect(server.exitCode).toBe(1);
    expect(server.stderr()).toContain('unsupported scheme "mysql://"');
    expect(server.stderr().trim().split("\n")).toHaveLength(1);
    expectNoRawFailure(server.stdout() + server.stderr());
  });
});

describe("npm start in production with a model that has no price", () => {
  it("refuses to start, naming GEMINI_MODEL and the price variables; with the operator's prices it gets past the check", {
    timeout: 120_000,
  }, async () => {
    const signerless = {
      PORT: "0",
      DEPLOY_ENV: "production",
      PGLITE_DIR: "memory://",
      KEY_ENCRYPTION_KEYS: generateKeyringEntry("start"),
      CLERK_SECRET_KEY: "sk_test_startup",
    };
    const server = await start({ ...signerless, GEMINI_MODEL: "gemini-4-flash" });
    expect(server.exitCode).toBe(1);
    const output = said(server.stdout() + server.stderr());
    expect(output).toMatch(
      /error GEMINI_MODEL \/ GEMINI_PRICE_INPUT_PER_MILLION \/ GEMINI_PRICE_OUTPUT_PER_MILLION: names a model without a price/,
    );
    expect(output).toContain("not starting in production");

    const priced = await start({
      ...signerless,
      GEMINI_MODEL: "gemini-4-flash",
      GEMINI_PRICE_INPUT_PER_MILLION: "2",
      GEMINI_PRICE_OUTPUT_PER_MILLION: "12",
    });
    try {
      expect(said(priced.stdout() + priced.stderr())).not.toContain("names a model without a price");
      expect(priced.exitCode).toBeNull();
    } finally {
      await stopped(priced);
    }
  });
});

describe("npm start on a port in use", () => {
  it("says which port is taken and how to pick another, in one line", { timeout: 120_000 }, async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const { port } = holder.address() as { port: number };
    try {
      // A database at a closed port: the server gets to listening without an embedded set-up.
      const server = await start({ PORT: String(port), DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/byok` });
      expect(server.exitCode).toBe(1);
      // Besides the structured log lines (warnings), exactly one line: no stack trace.
      const lines = server
        .stderr()
        .trim()
        .split("\n")
        .filter((line) => !line.startsWith('{"time"'));
      expect(lines, server.stderr()).toHaveLength(1);
      expect(lines[0]).toContain(`port ${port} is already in use`);
      expect(lines[0]).toMatch(/PORT=\d+ npm start/);
      expect(server.stderr()).not.toContain("EADDRINUSE");
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
