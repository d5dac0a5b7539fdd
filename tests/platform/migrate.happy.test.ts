/** `npm run db:migrate` migrates a deployed database (and is idempotent). */
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { closedPort } from "../helpers/battery.js";
import { createPostgresDatabase, testDatabaseUrl } from "../helpers/db.js";

const run = (env: Record<string, string>) =>
  execFileSync(process.execPath, ["--import", "tsx", "scripts/db-migrate.ts"], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    encoding: "utf8",
  });

describe("db:migrate", () => {
  // Two child processes, each starting PGlite (WASM) and running every migration: ~10 s on an idle
  // machine, past 30 s on a busy 2-core one. Its own timeout, so the suite does not depend on speed.
  it("migrates an embedded database directory twice without error", { timeout: 180_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), "byok-migrate-"));
    try {
      const env = { PGLITE_DIR: join(dir, "pglite"), ENV_FILE: join(dir, ".env") };
      expect(run(env)).toContain("is up to date");
      expect(run(env)).toContain("is up to date");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says why it failed (connection refused at host:port), with the password masked", async () => {
    const port = await closedPort();
    const result = spawnSync(process.execPath, ["--import", "tsx", "scripts/db-migrate.ts"], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        DATABASE_URL: `postgres://app:hunter2secret@127.0.0.1:${port}/app`,
        DEPLOY_ENV: "production",
      },
      encoding: "utf8",
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`db:migrate failed: connection refused at 127.0.0.1:${port}`);
    expect(result.stderr).toContain(`postgres://app:****@127.0.0.1:${port}/app`);
    expect(result.stderr).not.toContain("hunter2secret");
    expect(result.stderr).not.toContain("Failed query");
  });

  it.skipIf(!testDatabaseUrl)("migrates a PostgreSQL database in production mode (skipped without TEST_DATABASE_URL)", async () => {
    const { url, drop } = await createPostgresDatabase(testDatabaseUrl!);
    try {
      expect(run({ DATABASE_URL: url, DEPLOY_ENV: "production" })).toContain("pg database");
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query("select table_name from information_schema.tables where table_schema = 'public' order by 1");
      await client.end();
      expect(rows.map((r) => r.table_name)).toEqual([
        "api_keys",
        "budgets",
        "gateway_calls",
        "key_events",
        "onboarding_sessions",
        "onboarding_steps",
        "rate_limits",
        "service_credentials",
        "usage_events",
        "webhook_deliveries",
      ]);
    } finally {
      await drop();
    }
  });
});
