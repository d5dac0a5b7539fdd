/**
 * Health tells the truth (issue 9, item 8) and a broken key ring stays the operator's business
 * (item 6). The configuration is checked in three places, all through lib/platform/config-check.ts:
 * - every runtime on its first request (logged once; `/api/health` answers 503
 *   `misconfigured` naming the variables, never their values, and no operator warnings);
 * - `npm start`, before it listens (production with an error does not start);
 * - `npm run check-config`, before deploying (one line per problem, exit 1; or "configuration OK").
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import type { RawEnv } from "../../lib/platform/env.js";
import { healthResponse } from "../../lib/system/schemas.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, testSigner, operatorHealth } from "../helpers/runtime.js";
import { startLocalServer } from "../helpers/local-server.js";

const zeroKey = (id = "k0") => `${id}:${Buffer.alloc(32).toString("base64")}`;
const brokenPem = "-----BEGIN PUBLIC KEY-----\\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAbrokenbrokenbroken\\n-----END PUBLIC KEY-----";
// Malformed key rings that hold real-looking key material (a key pasted without its id, a key
// split at a ":", a short key): none of it may reach a client or a log line.
const material = () => generateKeyringEntry("m").slice(2);
const malformedRings = () => {
  const key = material();
  return [key, `${key.slice(0, 20)}:${key.slice(20)}`, `k1:${key.slice(0, 30)}`, `k1:${key},k1:${material()}`, `k1:${key},,`];
};

/** Key material and other values of `env` a response or log line must never contain. */
function valuesOf(env: RawEnv): string[] {
  const out: string[] = [];
  for (const value of Object.values(env)) {
    if (!value || value.length < 12) continue;
    for (const part of value.split(/[:,\n]|\\n/)) if (part.length >= 12 && !/^-+(BEGIN|END) PUBLIC KEY-+$/.test(part)) out.push(part);
  }
  return out;
}

describe("GET /api/health tells the truth", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await backends[0]!.open();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  // [label, mode, env overrides, status, misconfigured variables]
  const cases: [string, "production" | "development", RawEnv, 200 | 503, string[]][] = [
    ["production, well configured", "production", {}, 200, []],
    [
      "production without Clerk",
      "production",
      { CLERK_JWT_KEY: undefined, CLERK_SECRET_KEY: undefined },
      503,
      ["CLERK_JWT_KEY", "CLERK_SECRET_KEY"],
    ],
    ["production, CLERK_JWT_KEY that does not parse", "production", { CLERK_JWT_KEY: brokenPem }, 503, ["CLERK_JWT_KEY"]],
    ["production without KEY_ENCRYPTION_KEYS", "production", { KEY_ENCRYPTION_KEYS: undefined }, 503, ["KEY_ENCRYPTION_KEYS"]],
    ...malformedRings().map((spec, i): [string, "production", RawEnv, 503, string[]] => [
      `production, malformed KEY_ENCRYPTION_KEYS #${i + 1}`,
      "production",
      { KEY_ENCRYPTION_KEYS: spec },
      503,
      ["KEY_ENCRYPTION_KEYS"],
    ]),
    ["production, all-zero KEY_ENCRYPTION_KEYS", "production", { KEY_ENCRYPTION_KEYS: zeroKey() }, 503, ["KEY_ENCRYPTION_KEYS"]],
    [
      "production, everything wrong",
      "production",
      { CLERK_JWT_KEY: brokenPem, KEY_ENCRYPTION_KEYS: zeroKey() },
      503,
      ["CLERK_JWT_KEY", "KEY_ENCRYPTION_KEYS"],
    ],
    ["development, CLERK_JWT_KEY that does not parse", "development", { CLERK_JWT_KEY: brokenPem }, 503, ["CLERK_JWT_KEY"]],
    [
      "development, malformed KEY_ENCRYPTION_KEYS",
      "development",
      { KEY_ENCRYPTION_KEYS: malformedRings()[0] },
      503,
      ["KEY_ENCRYPTION_KEYS"],
    ],
    ["development, all-zero KEY_ENCRYPTION_KEYS (a warning only)", "development", { KEY_ENCRYPTION_KEYS: zeroKey() }, 200, []],
    ["production, empty CLERK_AUTHORIZED_PARTIES (a warning only)", "production", { CLERK_AUTHORIZED_PARTIES: undefined }, 200, []],
  ];

  for (const [label, mode, env, status, misconfigured] of cases) {
    it(`${label}: ${status}${misconfigured.length ? ` misconfigured [${misconfigured.join(", ")}]` : ""}`, async () => {
      const rt = makeRuntime({ database, mode, env });
      try {
        const response = await rt.fetch(request("GET", "/api/health", { headers: operatorHealth }));
        const text = await response.clone().text();
        const body = await expectStatus(response, status);
        expect(healthResponse.strict().parse(body)).toEqual(body);
        expect(body).toMatchObject({
          status: status === 200 ? "ok" : "misconfigured",
          mode,
          modeReason: rt.runtime.config.modeReason,
          database: "ok",
          misconfigured,
        });
        // No operator warnings for anonymous callers, no values at all.
        expect(body.warnings).toEqual([]);
        expect(text).not.toMatch(/AUTHORIZED_PARTIES|PGlite|entry \d|random bytes/);
        const { config } = rt.runtime;
        for (const value of valuesOf({ ...env, CLERK_JWT_KEY: config.clerk.jwtKey, KEY_ENCRYPTION_KEYS: config.keyEncryptionKeys })) {
          expect(text).not.toContain(value);
        }
        // Each error is logged by name, once per runtime, however many requests follow.
        await rt.fetch(request("GET", "/api/health", { headers: operatorHealth }));
        await rt.fetch(request("GET", "/api/nowhere"));
        for (const variable of misconfigured) {
          const lines = rt.logs.filter((l) => l.includes(`"level":"error"`) && l.includes("configuration error") && l.includes(variable));
          expect(lines, variable).toHaveLength(1);
        }
        const logs = rt.logs.join("\n");
        for (const value of valuesOf(env)) expect(logs).not.toContain(value);
      } finally {
        rt.cleanup();
      }
    });
  }

  it("the first request of an instance, whatever it asks for, reports the problems (once)", async () => {
    const rt = makeRuntime({ database, mode: "production", env: { KEY_ENCRYPTION_KEYS: undefined } });
    try {
      expect(rt.logs.join("\n")).not.toContain("configuration error");
      await rt.fetch(request("GET", "/api/nowhere"));
      expect(rt.logs.filter((l) => l.includes("configuration error KEY_ENCRYPTION_KEYS"))).toHaveLength(1);
      await rt.fetch(request("GET", "/api/openapi.json"));
      await rt.fetch(request("GET", "/api/health", { headers: operatorHealth }));
      expect(rt.logs.filter((l) => l.includes("configuration error KEY_ENCRYPTION_KEYS"))).toHaveLength(1);
    } finally {
      rt.cleanup();
    }
  });

  it("keeps the operator's warnings in the log: CLERK_AUTHORIZED_PARTIES empty, all-zero key in development", async () => {
    const prod = makeRuntime({ database, mode: "production", env: { CLERK_AUTHORIZED_PARTIES: undefined } });
    const dev = makeRuntime({ database, mode: "development", env: { KEY_ENCRYPTION_KEYS: zeroKey() } });
    try {
      await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
      await expectStatus(await dev.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
      expect(prod.logs.filter((l) => l.includes("configuration warning CLERK_AUTHORIZED_PARTIES"))).toHaveLength(1);
      expect(
        dev.logs.filter((l) => l.includes("configuration warning KEY_ENCRYPTION_KEYS") && l.includes("not 32 random bytes")),
      ).toHaveLength(1);
    } finally {
      prod.cleanup();
      dev.cleanup();
    }
  });

  it("shows the public DEBUG notice and the database state beside a misconfiguration", async () => {
    const rt = makeRuntime({ database, mode: "production", env: { DEBUG: "true", KEY_ENCRYPTION_KEYS: undefined } });
    try {
      const body = await expectStatus(await rt.fetch(request("GET", "/api/health", { headers: operatorHealth })), 503);
      expect(body).toMatchObject({ status: "misconfigured", database: "ok", misconfigured: ["KEY_ENCRYPTION_KEYS"] });
      expect(body.warnings).toEqual([expect.stringContaining("DEBUG=true is ignored in production")]);
    } finally {
      rt.cleanup();
    }
  });
});

describe("a broken key ring: the client gets a generic server-misconfigured, the log gets the detail", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await backends[0]!.open();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  const broken: [string, "production" | "development", string, RegExp][] = [
    ...malformedRings().map((spec, i): [string, "production", string, RegExp] => [
      `malformed #${i + 1} in production`,
      "production",
      spec,
      /KEY_ENCRYPTION_KEYS is invalid/,
    ]),
    ["malformed in development", "development", malformedRings()[1]!, /KEY_ENCRYPTION_KEYS is invalid/],
    ["all-zero in production", "production", zeroKey(), /KEY_ENCRYPTION_KEYS refused: an entry is not 32 random bytes/],
    ["a weak second entry in production", "production", `${generateKeyringEntry("k2")},${zeroKey("k1")}`, /KEY_ENCRYPTION_KEYS refused/],
  ];
  for (const [label, mode, spec, logged] of broken) {
    it(`${label}: saving keys answers 500 server-misconfigured without the detail; nothing is stored`, async () => {
      const rt = makeRuntime({ database, mode, env: { KEY_ENCRYPTION_KEYS: spec, DEV_USER_ID: "user_broken_ring" } });
      try {
        const token = mode === "production" ? rt.token("user_broken_ring") : undefined;
        for (let attempt = 0; attempt < 2; attempt++) {
          const response = await rt.fetch(request("POST", "/api/onboarding/api-keys", { token, body: sampleKeys(7001) }));
          const text = await response.clone().text();
          const body = await expectStatus(response, 500);
          expect(body.code).toBe("server-misconfigured");
          expect(body.detail).toBe("key encryption is not configured correctly on this deployment; no key can be stored or read");
          expect(text).not.toMatch(/entry \d|random bytes|id:|prefix|KEY_ENCRYPTION_KEYS is/);
          for (const value of valuesOf({ spec })) expect(text).not.toContain(value);
        }
        expect(rt.logs.some((l) => logged.test(l))).toBe(true);
        const logs = rt.logs.join("\n");
        for (const value of valuesOf({ spec })) expect(logs).not.toContain(value);
        const [row] = await database.rows<{ n: number }>(
          sql`select count(*)::int as n from onboarding_sessions where user_id = 'user_broken_ring'`,
        );
        expect(Number(row?.n)).toBe(0);
      } finally {
        rt.cleanup();
      }
    });
  }

  it("development takes an all-zero key (with a warning): the quick start is not blocked", async () => {
    const rt = makeRuntime({ database, mode: "development", env: { KEY_ENCRYPTION_KEYS: zeroKey(), DEV_USER_ID: "user_zero_dev" } });
    try {
      await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { body: sampleKeys(7002) })), 200);
      expect(rt.logs.some((l) => l.includes("configuration warning KEY_ENCRYPTION_KEYS"))).toBe(true);
    } finally {
      rt.cleanup();
    }
  });
});

// ---- the command line: npm run check-config, npm start ---------------------------------------------

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const root = join(import.meta.dirname, "../..");

/** Runs `npm run check-config` (its tsx entry) with exactly `env`, from the repository root. */
function checkConfig(env: Record<string, string>, args: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "scripts/check-config.ts", ...args],
      { cwd: root, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env }, encoding: "utf8" },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("npm run check-config", () => {
  const dir = mkdtempSync(join(tmpdir(), "byok-check-config-"));
  const envFile = join(dir, ".env");
  const signer = testSigner();
  const good = {
    CLERK_JWT_KEY: signer.publicPem.trim().replace(/\n/g, "\\n"),
    CLERK_AUTHORIZED_PARTIES: "https://app.example",
    KEY_ENCRYPTION_KEYS: generateKeyringEntry("k1"),
    DATABASE_URL: "postgres://app@db.example:5432/app",
    CLERK_WEBHOOK_SIGNING_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    // pk_live_ + base64("clerk.app.example$"): the web app's sign-in (GET /api/config).
    CLERK_PUBLISHABLE_KEY: "pk_live_Y2xlcmsuYXBwLmV4YW1wbGUk",
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Lines of a run that report one problem each. */
  const problemLines = (run: Run) => run.stderr.split("\n").filter((l) => /^check-config: (error|warning) /.test(l));
  const expectNoValues = (run: Run, env: RawEnv) => {
    for (const value of valuesOf(env)) {
      expect(run.stdout).not.toContain(value);
      expect(run.stderr).not.toContain(value);
    }
  };

  it("production with nothing configured: exit 1, one line per problem, naming the variables", async () => {
    writeFileSync(envFile, "");
    const run = await checkConfig({ ENV_FILE: envFile, VERCEL: "1" });
    expect(run.code, run.stderr).toBe(1);
    const lines = problemLines(run);
    expect(lines.filter((l) => l.startsWith("check-config: error"))).toEqual([
      expect.stringMatching(/^check-config: error CLERK_JWT_KEY \/ CLERK_SECRET_KEY: /),
      expect.stringMatching(/^check-config: error KEY_ENCRYPTION_KEYS: /),
    ]);
    expect(lines.some((l) => l.startsWith("check-config: warning DATABASE_URL"))).toBe(true);
    expect(run.stderr).toMatch(/mode production: VERCEL is set/);
    expect(run.stdout).not.toMatch(/configuration OK/);
  });

  it("production never reads .env: a key ring there does not count", async () => {
    writeFileSync(envFile, `KEY_ENCRYPTION_KEYS=${good.KEY_ENCRYPTION_KEYS}\nCLERK_JWT_KEY="${good.CLERK_JWT_KEY}"\n`);
    const run = await checkConfig({ ENV_FILE: envFile, DEPLOY_ENV: "production", CLERK_AUTHORIZED_PARTIES: "https://app.example" });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/error KEY_ENCRYPTION_KEYS: is not set/);
    expectNoValues(run, good);
  });

  it("a good production configuration: exit 0, configuration OK (mode production: …)", async () => {
    writeFileSync(envFile, "");
    const run = await checkConfig({ ENV_FILE: envFile, AWS_LAMBDA_FUNCTION_NAME: "byok", ...good });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe("configuration OK (mode production: AWS_LAMBDA_FUNCTION_NAME is set (AWS Lambda))");
    expect(problemLines(run)).toEqual([]);
    expectNoValues(run, good);
  });

  it("--production checks a deployment's configuration from a machine without the platform's variables", async () => {
    writeFileSync(envFile, "");
    const ok = await checkConfig({ ENV_FILE: envFile, ...good }, ["--production"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^configuration OK \(mode production: checked as production \(--production\)\)/);
    const missing = await checkConfig({ ENV_FILE: envFile, ...good, KEY_ENCRYPTION_KEYS: zeroKey() }, ["--production"]);
    expect(missing.code).toBe(1);
    expect(problemLines(missing)).toEqual([
      expect.stringMatching(/^check-config: error KEY_ENCRYPTION_KEYS: entry 1 is not 32 random bytes/),
    ]);
    expect(missing.stderr).not.toContain(Buffer.alloc(32).toString("base64").slice(0, 12));
    const usage = await checkConfig({ ENV_FILE: envFile }, ["--prod"]);
    expect(usage.code).toBe(2);
  });

  it("development reads .env like npm start: a malformed key ring there is an error, a weak one a warning", async () => {
    const spec = malformedRings()[0]!;
    writeFileSync(envFile, `KEY_ENCRYPTION_KEYS=${spec}\n`);
    const bad = await checkConfig({ ENV_FILE: envFile });
    expect(bad.code, bad.stderr).toBe(1);
    expect(problemLines(bad)).toContainEqual(expect.stringMatching(/^check-config: error KEY_ENCRYPTION_KEYS: does not parse: /));
    expectNoValues(bad, { spec });

    writeFileSync(envFile, `KEY_ENCRYPTION_KEYS=${zeroKey()}\n`);
    const weak = await checkConfig({ ENV_FILE: envFile });
    expect(weak.code, weak.stderr).toBe(0);
    expect(problemLines(weak)).toContainEqual(
      expect.stringMatching(/^check-config: warning KEY_ENCRYPTION_KEYS: entry 1 is not 32 random bytes .*production would refuse it/),
    );
    expect(weak.stdout).toMatch(/^configuration OK \(mode development: .*\); add --production/);
  });

  it("values that must never be used, and a .env that would switch to production: exit 1, named, not echoed", async () => {
    writeFileSync(envFile, "");
    const scheme = await checkConfig({ ENV_FILE: envFile, GEMINI_BASE_URL: "file:///etc/passwd" });
    expect(scheme.code).toBe(1);
    expect(scheme.stderr.trim()).toBe("check-config: error GEMINI_BASE_URL: must be an http: or https: URL");
    const plain = await checkConfig({ ENV_FILE: envFile, ...good, VERCEL: "1", EXA_BASE_URL: "http://exa-proxy.internal:8080" });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^check-config: error EXA_BASE_URL: must be an https: URL in production/m);
    expect(plain.stderr).not.toContain("exa-proxy.internal");

    writeFileSync(envFile, "NODE_ENV=production\n");
    const switching = await checkConfig({ ENV_FILE: envFile });
    expect(switching.code).toBe(1);
    expect(switching.stderr).toMatch(/would switch to production \(NODE_ENV=production\)/);
  });
});

describe("npm run keys:reencrypt refuses to re-encrypt under a weak key", () => {
  it("exit 2 before touching the database when the first entry is not random; a weak older entry is what rotation is for", async () => {
    const dir = mkdtempSync(join(tmpdir(), "byok-reencrypt-weak-"));
    const run = (spec: string) =>
      new Promise<Run>((resolve) => {
        execFile(
          process.execPath,
          ["--import", "tsx", "scripts/keys-reencrypt.ts"],
          {
            cwd: root,
            // A database URL nothing listens on: the refusal must come before any connection.
            env: {
              PATH: process.env.PATH ?? "",
              HOME: process.env.HOME ?? "",
              ENV_FILE: join(dir, ".env"),
              DEPLOY_ENV: "production",
              KEY_ENCRYPTION_KEYS: spec,
              DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
            },
            encoding: "utf8",
          },
          (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    try {
      const weak = await run(`${zeroKey("k2")},${generateKeyringEntry("k1")}`);
      expect(weak.code, weak.stderr).toBe(2);
      expect(weak.stderr).toMatch(/entry 1 .* is not 32 random bytes/);
      expect(weak.stderr).not.toContain(Buffer.alloc(32).toString("base64").slice(0, 12));
      // With a random first entry it goes on to the database (which is not there: exit 2, another reason).
      const rotating = await run(`${generateKeyringEntry("k2")},${zeroKey("k1")}`);
      expect(rotating.code).toBe(2);
      expect(rotating.stderr).toMatch(/could not open the pg database|re-encryption stopped/);
      expect(rotating.stderr).not.toMatch(/random bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("npm start checks the configuration before it listens", () => {
  const dir = mkdtempSync(join(tmpdir(), "byok-start-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const start = (env: Record<string, string>) => startLocalServer({ PORT: "0", ...env }, 120_000);

  it("production with configuration errors does not start: exit 1, each problem named", async () => {
    const server = await start({ DEPLOY_ENV: "production", PGLITE_DIR: join(dir, "prod-pglite"), ENV_FILE: join(dir, ".env") });
    expect({ url: server.url, code: server.exitCode }, server.output()).toEqual({ url: undefined, code: 1 });
    expect(server.output()).toMatch(/configuration error CLERK_JWT_KEY \/ CLERK_SECRET_KEY/);
    expect(server.output()).toMatch(/configuration error KEY_ENCRYPTION_KEYS/);
    expect(server.output()).toMatch(/not starting in production with 2 configuration error/);
  }, 150_000);

  it("development starts anyway, logs the problem once and health says misconfigured", async () => {
    const server = await start({ CLERK_JWT_KEY: brokenPem, PGLITE_DIR: join(dir, "dev-pglite"), ENV_FILE: join(dir, ".env") });
    try {
      expect(server.url, server.output()).toBeDefined();
      const response = await fetch(`${server.url}/api/health`);
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ status: "misconfigured", mode: "development", misconfigured: ["CLERK_JWT_KEY"] });
      await fetch(`${server.url}/api/health`);
      expect(server.output().match(/configuration error CLERK_JWT_KEY/g)).toHaveLength(1);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 150_000);
});
