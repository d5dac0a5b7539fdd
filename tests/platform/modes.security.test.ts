/**
 * Modes (DESIGN.md "Modes"): the seed's environment detection, made fail-closed.
 * - the mode table of `loadConfig`, row by row;
 * - production never reads or writes `.env` (nor the frontend file), whatever DEBUG says,
 *   and never hands out the operator's keys;
 * - production without Clerk serves no protected request;
 * - development writes `.env` (and the frontend file) so that dotenv, `node --env-file` and
 *   python-dotenv all read back what was saved;
 * - entry points never let a `.env` file switch to production.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.js";
import { generateKeyringEntry, parseKeyring } from "../../lib/platform/crypto.js";
import { ConfigError, hostingPlatforms, loadConfig, type Config, type RawEnv } from "../../lib/platform/env.js";
import { configProblems } from "../../lib/platform/config-check.js";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { providers } from "../../lib/providers/registry.js";
import { loadDevelopmentEnv } from "../../lib/platform/dev/dotenv.js";
import { routes } from "../../lib/routes.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, operatorHealth } from "../helpers/runtime.js";
import { parseWithDotenv, parseWithNode, parseWithPython, pythonDotenvMissing } from "../helpers/dotenv-parsers.js";

if (pythonDotenvMissing) console.warn(`[modes.security.test] python-dotenv check ${pythonDotenvMissing}`);

/** Asserts that all three parsers read `path` as exactly `expected`. */
function expectParsesAs(path: string, expected: Record<string, string>) {
  expect(parseWithDotenv(path), "dotenv").toEqual(expected);
  expect(parseWithNode(path), "node --env-file").toEqual(expected);
  if (!pythonDotenvMissing) expect(parseWithPython(path), "python-dotenv").toEqual(expected);
}

const DEBUG_WARNING = "DEBUG=true is ignored in production";

// ---- the mode table -------------------------------------------------------------------------

/** Does config's warnings list (lib/platform/config-check.ts) hold the DEBUG-ignored notice? */
const warnsDebugIgnored = (config: Readonly<Config>) =>
  configProblems(config).some((p) => p.severity === "warning" && p.message.includes(DEBUG_WARNING));

/** A value no mode reason may repeat (a platform variable's value can be a name, a URL or worse). */
const SECRETISH = "s3cr3t-Value_9f2c";

/**
 * Hosting platforms, written out here (not read from lib/platform/env.ts) so that dropping one from the
 * code fails this table: variable → platform id.
 */
const platforms: [string, string][] = [
  ["VERCEL", "vercel"],
  ["AWS_LAMBDA_FUNCTION_NAME", "lambda"],
  ["RENDER", "render"],
  ["NETLIFY", "netlify"],
  ["K_SERVICE", "cloud-run"],
  ["GAE_SERVICE", "app-engine"],
  ["FLY_APP_NAME", "fly"],
  ["RAILWAY_ENVIRONMENT", "railway"],
  ["RAILWAY_ENVIRONMENT_NAME", "railway"],
  ["DYNO", "heroku"],
  ["KUBERNETES_SERVICE_HOST", "kubernetes"],
  ["ECS_CONTAINER_METADATA_URI_V4", "ecs"],
  ["ECS_CONTAINER_METADATA_URI", "ecs"],
  ["WEBSITE_INSTANCE_ID", "azure-app-service"],
  ["CONTAINER_APP_NAME", "azure-container-apps"],
];

describe("loadConfig: the mode table of DESIGN.md", () => {
  // Row 1: a hosting platform, NODE_ENV=production, or DEPLOY_ENV other than local/development →
  // production, even with DEBUG=true. `reason` is a variable name modeReason must mention.
  const production: [label: string, env: RawEnv, reason: string][] = [
    ...platforms.map(([variable]): [string, RawEnv, string] => [`${variable} set`, { [variable]: SECRETISH }, variable]),
    ["VERCEL=1 on a deployment (VERCEL_ENV=production)", { VERCEL: "1", VERCEL_ENV: "production" }, "VERCEL"],
    ["VERCEL=1 on a preview (VERCEL_ENV=preview)", { VERCEL: "1", VERCEL_ENV: "preview" }, "VERCEL"],
    ["VERCEL=0 (set is set: fail closed)", { VERCEL: "0" }, "VERCEL"],
    ["NODE_ENV=production", { NODE_ENV: "production" }, "NODE_ENV"],
    ["NODE_ENV=Production (any case)", { NODE_ENV: " Production " }, "NODE_ENV"],
    ["DEPLOY_ENV=render (the seed's production)", { DEPLOY_ENV: "render" }, "DEPLOY_ENV"],
    ["DEPLOY_ENV=production", { DEPLOY_ENV: "production" }, "DEPLOY_ENV"],
    ["DEPLOY_ENV=staging", { DEPLOY_ENV: "staging" }, "DEPLOY_ENV"],
    ["DEPLOY_ENV=dev (anything but local or development)", { DEPLOY_ENV: "dev" }, "DEPLOY_ENV"],
    ["DEPLOY_ENV=localhost (not exactly local)", { DEPLOY_ENV: "localhost" }, "DEPLOY_ENV"],
    ["DEPLOY_ENV with blanks around it", { DEPLOY_ENV: " render " }, "DEPLOY_ENV"],
    ["DEPLOY_ENV holding something secret-looking", { DEPLOY_ENV: SECRETISH }, "DEPLOY_ENV"],
    ["a platform with DEPLOY_ENV=local (the platform wins)", { VERCEL: "1", DEPLOY_ENV: "local" }, "VERCEL"],
    ["Lambda with DEPLOY_ENV=local", { AWS_LAMBDA_FUNCTION_NAME: "byok-api", DEPLOY_ENV: "local" }, "AWS_LAMBDA_FUNCTION_NAME"],
    ["Render with DEPLOY_ENV=development", { RENDER: "true", DEPLOY_ENV: "development" }, "RENDER"],
    ["NODE_ENV=production with DEPLOY_ENV=local", { NODE_ENV: "production", DEPLOY_ENV: "local" }, "NODE_ENV"],
  ];
  // The vercel-dev exception lifts the VERCEL signal only: any other signal still means production.
  const vercelDev = { VERCEL: "1", VERCEL_ENV: "development", DEBUG: "true" };
  const productionDespiteVercelDev: [string, RawEnv, string][] = [
    ["vercel dev with DEBUG=true on Cloud Run too (K_SERVICE)", { ...vercelDev, K_SERVICE: SECRETISH }, "K_SERVICE"],
    ["vercel dev with DEBUG=true and NODE_ENV=production", { ...vercelDev, NODE_ENV: "production" }, "NODE_ENV"],
    ["vercel dev with DEBUG=true and DEPLOY_ENV=production", { ...vercelDev, DEPLOY_ENV: "production" }, "DEPLOY_ENV"],
    ["vercel dev with DEBUG=true on Lambda too", { ...vercelDev, AWS_LAMBDA_FUNCTION_NAME: SECRETISH }, "AWS_LAMBDA_FUNCTION_NAME"],
    // vercel dev without DEBUG=true is still Vercel.
    ["vercel dev (VERCEL=1, VERCEL_ENV=development) without DEBUG", { VERCEL: "1", VERCEL_ENV: "development" }, "VERCEL"],
    ["vercel dev with DEBUG=false", { VERCEL: "1", VERCEL_ENV: "development", DEBUG: "false" }, "VERCEL"],
  ];
  // Row 3: nothing says production → development; DEBUG=true says the same.
  const development: [string, RawEnv][] = [
    ["nothing set", {}],
    ["DEPLOY_ENV=local", { DEPLOY_ENV: "local" }],
    ["DEPLOY_ENV=LOCAL", { DEPLOY_ENV: "LOCAL" }],
    ["DEPLOY_ENV=development", { DEPLOY_ENV: "development" }],
    ["DEPLOY_ENV=Development", { DEPLOY_ENV: "Development" }],
    ["DEPLOY_ENV empty (empty is unset)", { DEPLOY_ENV: "" }],
    ["platform variables empty (empty is unset)", Object.fromEntries(platforms.map(([variable]) => [variable, " "]))],
    ["NODE_ENV=development", { NODE_ENV: "development" }],
    ["NODE_ENV=test", { NODE_ENV: "test" }],
    ["DEBUG=false", { DEBUG: "false" }],
    ["VERCEL_ENV=development without VERCEL", { VERCEL_ENV: "development" }],
  ];

  for (const [label, env, reason] of production) {
    for (const debug of [undefined, "true", "false"]) {
      it(`${label}${debug ? `, DEBUG=${debug}` : ""} → production`, () => {
        const config = loadConfig({ ...env, DEBUG: debug, GEMINI_API_KEY: "AIza-operator-key-000000000000000000", EXA_API_KEY: "x" });
        expect(config.mode, config.modeReason).toBe("production");
        expect(config.modeReason).toContain(reason);
        expect(config.modeReason).not.toContain(SECRETISH);
        // Never the operator's keys, whatever the process environment holds.
        expect(config.processEnvKeys).toEqual({});
        expect(warnsDebugIgnored(config)).toBe(debug === "true");
        expect(Object.isFrozen(config)).toBe(true);
      });
    }
  }

  for (const [label, env, reason] of productionDespiteVercelDev) {
    it(`${label} → production`, () => {
      const config = loadConfig({ ...env, GEMINI_API_KEY: "AIza-operator-key-000000000000000000" });
      expect(config.mode, config.modeReason).toBe("production");
      expect(config.modeReason).toContain(reason);
      expect(config.modeReason).not.toContain(SECRETISH);
      expect(config.processEnvKeys).toEqual({});
    });
  }

  it("says why vercel dev without DEBUG=true is production", () => {
    expect(loadConfig({ VERCEL: "1", VERCEL_ENV: "development" }).modeReason).toMatch(/DEBUG=true/);
  });

  for (const [label, env] of development) {
    for (const debug of [undefined, "true"]) {
      it(`${label}${debug ? `, DEBUG=${debug}` : ""} → development`, () => {
        const config = loadConfig({ ...env, DEBUG: debug, GEMINI_API_KEY: "AIza-operator-key-000000000000000000" });
        expect(config.mode, config.modeReason).toBe("development");
        expect(config.platform).toBeNull();
        expect(config.processEnvKeys.gemini).toBe("AIza-operator-key-000000000000000000");
        expect(warnsDebugIgnored(config)).toBe(false);
      });
    }
  }

  // Row 2: the one exception, the user's own local workflow.
  for (const debug of ["true", "1", "TRUE"]) {
    it(`vercel dev (VERCEL=1, VERCEL_ENV=development, as vercel env pull writes them) with DEBUG=${debug} → development`, () => {
      const config = loadConfig({
        VERCEL: "1",
        VERCEL_ENV: "development",
        DEBUG: debug,
        GEMINI_API_KEY: "AIza-operator-key-000000000000000000",
      });
      expect(config.mode).toBe("development");
      expect(config.modeReason).toMatch(/vercel dev/);
      expect(config.platform).toBeNull();
      expect(config.processEnvKeys.gemini).toBe("AIza-operator-key-000000000000000000");
      expect(warnsDebugIgnored(config)).toBe(false);
    });
  }

  it("DEBUG=true never turns a platform into development, except vercel dev", () => {
    for (const [variable] of platforms) {
      for (const vercelEnv of [undefined, "development", "production"]) {
        const config = loadConfig({ [variable]: SECRETISH, DEBUG: "true", VERCEL_ENV: vercelEnv });
        const isVercelDev = variable === "VERCEL" && vercelEnv === "development";
        expect(config.mode, `${variable}, VERCEL_ENV=${vercelEnv}`).toBe(isVercelDev ? "development" : "production");
      }
    }
  });

  it("names the platform it detected", () => {
    for (const [variable, platform] of platforms) expect(loadConfig({ [variable]: "x" }).platform, variable).toBe(platform);
    expect(loadConfig({ DEPLOY_ENV: "render" }).platform).toBeNull();
    expect(loadConfig({ NODE_ENV: "production" }).platform).toBeNull();
  });

  it("the README's mode table names every platform variable the code recognises, and NODE_ENV, DEPLOY_ENV, VERCEL_ENV", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
    const section = readme.slice(readme.indexOf("\n## Modes\n"), readme.indexOf("\n## ", readme.indexOf("\n## Modes\n") + 5));
    const table = section
      .split("\n")
      .filter((line) => line.startsWith("|"))
      .join("\n");
    for (const { variable } of hostingPlatforms) expect(table, variable).toContain(`\`${variable}\``);
    for (const [variable] of platforms) expect(table, variable).toContain(`\`${variable}\``);
    for (const signal of ["`NODE_ENV=production`", "`DEPLOY_ENV`", "`VERCEL_ENV=development`", "`DEBUG=true`"])
      expect(table).toContain(signal);
  });

  it("check-config --production assumes production and says so", () => {
    const config = loadConfig({}, { assumeProduction: true });
    expect(config.mode).toBe("production");
    expect(config.modeReason).toMatch(/--production/);
  });
});

// ---- entry points and the .env file ---------------------------------------------------------

describe("loadDevelopmentEnv (lib/server/dotenv.ts)", () => {
  let dir: string;
  let envFile: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "byok-modes-dotenv-"));
    envFile = join(dir, ".env");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // [label, .env text, the variable the refusal must name]
  const switching: [string, string, string][] = [
    ["DEPLOY_ENV=production", "DEPLOY_ENV=production\n", "DEPLOY_ENV"],
    ["DEPLOY_ENV=render with DEBUG=true", "DEBUG=true\nDEPLOY_ENV=render\n", "DEPLOY_ENV"],
    ["NODE_ENV=production", "NODE_ENV=production\n", "NODE_ENV"],
    ["VERCEL=1", "VERCEL=1\n", "VERCEL"],
    ["VERCEL=1 with VERCEL_ENV=development but no DEBUG", 'VERCEL="1"\nVERCEL_ENV="development"\n', "VERCEL"],
    ["AWS_LAMBDA_FUNCTION_NAME", "export AWS_LAMBDA_FUNCTION_NAME=byok-api\n", "AWS_LAMBDA_FUNCTION_NAME"],
    ["RENDER", "RENDER=true\n", "RENDER"],
    ["K_SERVICE", `K_SERVICE=${SECRETISH}\n`, "K_SERVICE"],
    ["KUBERNETES_SERVICE_HOST with DEBUG=true", `DEBUG=true\nKUBERNETES_SERVICE_HOST=${SECRETISH}\n`, "KUBERNETES_SERVICE_HOST"],
    ["DYNO", "DYNO=web.1\n", "DYNO"],
  ];
  for (const [label, text, variable] of switching) {
    it(`refuses a .env that sets ${label}, naming ${variable} but not its value`, () => {
      writeFileSync(envFile, `# local settings\nGEMINI_API_KEY=AIzaFromTheFile0000000000000000000000\n${text}`);
      const env: Record<string, string> = { ENV_FILE: envFile };
      expect(() => loadDevelopmentEnv(env)).toThrow(ConfigError);
      let message = "";
      try {
        loadDevelopmentEnv({ ENV_FILE: envFile });
      } catch (error) {
        message = String(error);
      }
      expect(message).toMatch(/production never reads \.env/);
      expect(message).toContain(variable);
      expect(message).not.toContain(SECRETISH);
      expect(message).not.toContain("AIzaFromTheFile");
    });
  }

  it("loads a .env written by vercel env pull (VERCEL=1, VERCEL_ENV=development) with DEBUG=true: development", () => {
    writeFileSync(envFile, 'VERCEL="1"\nVERCEL_ENV="development"\nDEBUG=true\nGEMINI_API_KEY=AIzaFromTheFile0000000000000000000000\n');
    const env: Record<string, string> = { ENV_FILE: envFile };
    const config = loadDevelopmentEnv(env);
    expect(config.mode).toBe("development");
    // Loaded like every variable, but the file's key is read from the file (lib/keys/resolver.ts), never from this copy.
    expect(env.GEMINI_API_KEY).toBe("AIzaFromTheFile0000000000000000000000");
    expect(config.processEnvKeys.gemini).toBeUndefined();
  });

  it("loads a development .env (real environment first)", () => {
    writeFileSync(envFile, "DEBUG=true\nDEPLOY_ENV=local\nGEMINI_API_KEY=AIzaFromTheFile0000000000000000000000\nDEV_USER_ID=from-file\n");
    const env: Record<string, string> = { ENV_FILE: envFile, DEV_USER_ID: "from-real-env" };
    const config = loadDevelopmentEnv(env);
    expect(config.mode).toBe("development");
    expect(config.processEnvKeys.gemini).toBeUndefined(); // the copy of the file loaded at start is never a fallback
    expect(config.devUserId).toBe("from-real-env");
    // A key of the real environment is one.
    const real: Record<string, string> = { ENV_FILE: envFile, GEMINI_API_KEY: "AIzaFromTheShell000000000000000000000" };
    expect(loadDevelopmentEnv(real).processEnvKeys.gemini).toBe("AIzaFromTheShell000000000000000000000");
  });

  const productionEnvs: [string, Record<string, string>][] = [
    ["DEPLOY_ENV=production", { DEPLOY_ENV: "production" }],
    ["VERCEL=1 with DEBUG=true", { VERCEL: "1", DEBUG: "true" }],
    ["RENDER with DEPLOY_ENV=local in the file", { RENDER: "true" }],
  ];
  for (const [label, real] of productionEnvs) {
    it(`does not read .env at all in production (${label})`, () => {
      const text = `DEPLOY_ENV=local\nDEBUG=true\nGEMINI_API_KEY=AIzaFromTheFile0000000000000000000000\nKEY_ENCRYPTION_KEYS=${generateKeyringEntry("file")}\nDEV_USER_ID=from-file\n`;
      writeFileSync(envFile, text);
      const env: Record<string, string> = { ENV_FILE: envFile, ...real };
      const config = loadDevelopmentEnv(env);
      expect(config.mode).toBe("production");
      expect(env).toEqual({ ENV_FILE: envFile, ...real }); // nothing was loaded into it
      expect(config.keyEncryptionKeys).toBeUndefined();
      expect(config.processEnvKeys).toEqual({});
      expect(config.devUserId).toBe("local-dev");
      expect(readFileSync(envFile, "utf8")).toBe(text);
    });
  }
});

// ---- against a database ---------------------------------------------------------------------

async function rowCounts(database: Database) {
  const [row] = await database.rows<Record<string, number | string>>(sql`
    select (select count(*) from api_keys) as keys, (select count(*) from onboarding_sessions) as sessions,
           (select count(*) from key_events) as events
  `);
  return { keys: Number(row?.keys), sessions: Number(row?.sessions), events: Number(row?.events) };
}

/** A valid request for each protected route and method (so only auth can make it fail). */
function validRequest(path: string, method: string, headers: Record<string, string>, seed: number): Request {
  const url = `http://localhost${path}`;
  if (path === "/api/onboarding/api-keys" && method === "POST") {
    return new Request(url, {
      method,
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(sampleKeys(seed)),
    });
  }
  if (path === "/api/onboarding/api-keys" && method === "DELETE") return new Request(`${url}?provider=gemini`, { method, headers });
  if (path === "/api/onboarding/session" && method === "PUT") {
    return new Request(url, {
      method,
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ currentStep: 2, progress: 20 }),
    });
  }
  if (path === "/api/blog/generate" && method === "POST") {
    return new Request(url, {
      method,
      headers: { ...headers, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ topic: "Bring your own key" }),
    });
  }
  if (method === "GET" || method === "DELETE") return new Request(url, { method, headers });
  return new Request(url, { method, headers: { ...headers, "content-type": "application/json" }, body: "{}" });
}

const protectedMethods = async () => routes.filter((r) => r.auth).map((r) => ({ path: r.path, method: r.method as string }));

for (const backend of backends) {
  describe.skipIf(!backend.available)(`modes ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await backend.open();
    });
    afterAll(async () => {
      await database.destroy();
    });

    const operator = sampleKeys(9001);
    const operatorEnv = { GEMINI_API_KEY: operator.gemini, EXA_API_KEY: operator.exa, COPILOTKIT_API_KEY: operator.copilotkit };
    const variants: [string, RawEnv][] = [
      ["DEBUG=true, VERCEL=1", { DEBUG: "true", VERCEL: "1", DEPLOY_ENV: undefined }],
      ["DEBUG=true, AWS_LAMBDA_FUNCTION_NAME", { DEBUG: "true", AWS_LAMBDA_FUNCTION_NAME: "byok-api", DEPLOY_ENV: undefined }],
      ["DEBUG=true, RENDER", { DEBUG: "true", RENDER: "true", DEPLOY_ENV: undefined }],
      ["DEBUG=true, DEPLOY_ENV=render", { DEBUG: "true", DEPLOY_ENV: "render" }],
      ["DEBUG=true, VERCEL=1, DEPLOY_ENV=local", { DEBUG: "true", VERCEL: "1", DEPLOY_ENV: "local" }],
    ];

    for (const [index, [label, env]] of variants.entries()) {
      it(`production (${label}) never reads or writes .env and never returns the operator's keys`, async () => {
        const dir = mkdtempSync(join(tmpdir(), "byok-modes-prod-"));
        const envFile = join(dir, ".env");
        const frontendFile = join(dir, "frontend.env");
        const prod = makeRuntime({
          database,
          mode: "production",
          env: { ...env, ...operatorEnv, ENV_FILE: envFile, FRONTEND_ENV_FILE: frontendFile },
        });
        try {
          expect(prod.runtime.config.mode).toBe("production");
          const envText = `# operator's local settings\nDEBUG=true\nDEPLOY_ENV=local\n${Object.entries(operatorEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join("\n")}\nKEY_ENCRYPTION_KEYS=${generateKeyringEntry("file")}\n`;
          writeFileSync(envFile, envText);
          writeFileSync(frontendFile, `REACT_APP_COPILOTKIT_API_KEY=${operator.copilotkit}\n`);
          const past = new Date("2001-02-03T04:05:06Z");
          for (const file of [envFile, frontendFile]) utimesSync(file, past, past);
          const snapshot = () => ({
            env: readFileSync(envFile, "latin1"),
            envMtime: statSync(envFile).mtimeMs,
            frontend: readFileSync(frontendFile, "latin1"),
            frontendMtime: statSync(frontendFile).mtimeMs,
            files: readdirSync(dir).sort(),
          });
          const before = snapshot();

          const healthBody = await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 200);
          expect(healthBody.mode).toBe("production");
          expect(healthBody.warnings.some((w: string) => w.includes(DEBUG_WARNING))).toBe(true);

          // A user without keys gets none (not the operator's from .env or the environment).
          const nobody = `user_modes_nobody_${index}`;
          expect(await userApiKeys(prod.runtime, nobody)).toEqual({ source: "database", keys: {}, unreadable: [], versions: {} });
          const listed = await expectStatus(
            await prod.fetch(request("GET", "/api/onboarding/api-keys", { token: prod.token(nobody) })),
            200,
          );
          expect(listed).toMatchObject({ mode: "production", keys: [], missing: [...providers] });

          // Saving stores in the database only; resolving reads the user's own keys.
          const user = `user_modes_${index}`;
          const keys = sampleKeys(9100 + index);
          const saved = await expectStatus(
            await prod.fetch(request("POST", "/api/onboarding/api-keys", { token: prod.token(user), body: keys })),
            200,
          );
          expect(saved).toMatchObject({ mode: "production", storage: ["database"] });
          expect((await userApiKeys(prod.runtime, user)).keys).toEqual(keys);
          await expectStatus(
            await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=exa", { token: prod.token(user) })),
            204,
          );
          expect((await userApiKeys(prod.runtime, user)).keys).toEqual({ gemini: keys.gemini, copilotkit: keys.copilotkit });

          expect(snapshot()).toEqual(before);
          expect(prod.logs.some((l) => l.includes(`[PROD MODE] Using database for user ${user}`))).toBe(true);
          expect(prod.logs.some((l) => l.includes("[DEV MODE]"))).toBe(false);
          for (const line of prod.logs)
            for (const key of [...Object.values(operator), ...Object.values(keys)]) expect(line).not.toContain(key);
        } finally {
          prod.cleanup();
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }

    it("production cannot even try: with ENV_FILE and FRONTEND_ENV_FILE naming directories, every key flow works", async () => {
      // Reading or writing a directory as a file throws, so any attempt would surface as a 500.
      const holder = mkdtempSync(join(tmpdir(), "byok-modes-dir-"));
      const envDir = join(holder, ".env");
      const frontendDir = join(holder, "frontend.env");
      mkdirSync(envDir);
      mkdirSync(frontendDir);
      const prod = makeRuntime({
        database,
        mode: "production",
        env: { DEBUG: "true", VERCEL: "1", ENV_FILE: envDir, FRONTEND_ENV_FILE: frontendDir, ...operatorEnv },
      });
      try {
        const user = "user_modes_dirs";
        const keys = sampleKeys(9200);
        const token = prod.token(user);
        await expectStatus(await prod.fetch(request("POST", "/api/onboarding/api-keys", { token, body: keys })), 200);
        await expectStatus(await prod.fetch(request("GET", "/api/onboarding/api-keys", { token })), 200);
        expect((await userApiKeys(prod.runtime, user)).keys).toEqual(keys);
        await expectStatus(await prod.fetch(request("DELETE", "/api/onboarding/api-keys?provider=copilotkit", { token })), 204);
        expect(readdirSync(envDir)).toEqual([]);
        expect(readdirSync(frontendDir)).toEqual([]);
        expect(readdirSync(holder).sort()).toEqual([".env", "frontend.env"]);
      } finally {
        prod.cleanup();
        rmSync(holder, { recursive: true, force: true });
      }
    });

    it("production without KEY_ENCRYPTION_KEYS does not take the one in .env: 500 server-misconfigured", async () => {
      const prod = makeRuntime({ database, mode: "production", env: { DEBUG: "true", KEY_ENCRYPTION_KEYS: undefined } });
      try {
        const text = `KEY_ENCRYPTION_KEYS=${generateKeyringEntry("file")}\n`;
        writeFileSync(prod.envFile, text);
        const before = await rowCounts(database);
        const response = await prod.fetch(
          request("POST", "/api/onboarding/api-keys", { token: prod.token("user_modes_nokek"), body: sampleKeys(9300) }),
        );
        const body = await expectStatus(response, 500);
        expect(body.code).toBe("server-misconfigured");
        expect(await rowCounts(database)).toEqual(before);
        expect(readFileSync(prod.envFile, "utf8")).toBe(text);
      } finally {
        prod.cleanup();
      }
    });

    it("production without Clerk configuration answers every protected endpoint 500 server-misconfigured", async () => {
      const prod = makeRuntime({
        database,
        mode: "production",
        env: { CLERK_JWT_KEY: undefined, CLERK_SECRET_KEY: undefined, CLERK_AUTHORIZED_PARTIES: undefined },
      });
      try {
        const app = prod.app;
        const targets = await protectedMethods();
        expect(targets.length).toBeGreaterThanOrEqual(5);
        const before = await rowCounts(database);
        const token = prod.token("user_modes_noclerk");
        let seed = 9400;
        for (const { path, method } of targets) {
          for (const [how, headers] of [
            ["no token", {}],
            ["bearer", { authorization: `Bearer ${token}` }],
            ["cookie", { cookie: `__session=${token}` }],
          ] as [string, Record<string, string>][]) {
            const response = await app.fetch(validRequest(path, method, headers, seed++));
            const text = await response.text();
            expect(response.status, `${method} ${path} (${how}): ${text}`).toBe(500);
            expect(response.headers.get("content-type")).toBe("application/problem+json");
            expect(JSON.parse(text)).toMatchObject({ code: "server-misconfigured", status: 500 });
            expect(response.headers.get("x-request-id")).toBe(JSON.parse(text).requestId);
          }
        }
        expect(await rowCounts(database)).toEqual(before);
        // Health tells the truth: misconfigured, naming the variables (never values).
        const healthBody = await expectStatus(await prod.fetch(request("GET", "/api/health", { headers: operatorHealth })), 503);
        expect(healthBody).toMatchObject({ status: "misconfigured", misconfigured: ["CLERK_JWT_KEY", "CLERK_SECRET_KEY"] });
        for (const line of prod.logs) expect(line).not.toContain(token);
      } finally {
        prod.cleanup();
      }
    });

    it("development writes .env and FRONTEND_ENV_FILE so that dotenv, node --env-file and python-dotenv agree", async () => {
      // A fresh checkout: an empty database (keys sealed with another key id would stop the
      // development key from being generated; tests/keys/keys-lost-key.error.test.ts).
      const database = await backend.open();
      const dir = mkdtempSync(join(tmpdir(), "byok-modes-dev-"));
      const envFile = join(dir, ".env");
      const frontendFile = join(dir, "frontend.env");
      const dev = makeRuntime({
        database,
        mode: "development",
        // No KEY_ENCRYPTION_KEYS: development generates one into .env, like a fresh checkout.
        env: { KEY_ENCRYPTION_KEYS: undefined, ENV_FILE: envFile, FRONTEND_ENV_FILE: frontendFile, DEV_USER_ID: "user_modes_dev" },
      });
      try {
        expect(dev.runtime.config.mode).toBe("development");
        writeFileSync(
          envFile,
          "# local backend settings\nDEBUG=true\n\nexport GEMINI_API_KEY=AIzaOldOldOldOldOldOldOldOldOldOld0000\nPORT=3000\n",
        );
        writeFileSync(frontendFile, "# frontend\nREACT_APP_API_URL=http://localhost:3000\n");
        // Keys using every character class a key may have: letters, digits, "-", "_" and "." (AI Studio's keys).
        const keys = {
          gemini: "AQ.Dev-Key_0123456789abcdefghijklmnop_-Z.ABCDEFGHIJKL",
          exa: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
          copilotkit: "ck_pub_dev-Key_0123456789ABCDEF-xyz",
        };
        const body = await expectStatus(await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: keys })), 200);
        expect(body).toMatchObject({ userId: "user_modes_dev", mode: "development", storage: ["database", "env"] });

        const written = readFileSync(envFile, "utf8");
        const kekLine = /^KEY_ENCRYPTION_KEYS=(.+)$/m.exec(written);
        expect(kekLine, written).not.toBeNull();
        const generated = kekLine![1]!;
        expect(parseKeyring(generated).ok).toBe(true);
        expect(written).toContain(`export GEMINI_API_KEY=${keys.gemini}\n`); // replaced in place
        expect(written.match(/GEMINI_API_KEY=/g)).toHaveLength(1);
        expect(written.startsWith("# local backend settings\nDEBUG=true\n\n")).toBe(true);
        expectParsesAs(envFile, {
          DEBUG: "true",
          GEMINI_API_KEY: keys.gemini,
          PORT: "3000",
          KEY_ENCRYPTION_KEYS: generated,
          EXA_API_KEY: keys.exa,
          COPILOTKIT_API_KEY: keys.copilotkit,
        });
        expectParsesAs(frontendFile, { REACT_APP_API_URL: "http://localhost:3000", REACT_APP_COPILOTKIT_API_KEY: keys.copilotkit });

        // The resolver reads that file, for whoever asks.
        // (The developer's, every request without a session token: lib/keys/resolver.ts usesDevelopmentKeys.)
        expect(await userApiKeys(dev.runtime, "user_modes_dev")).toMatchObject({ source: "env", keys, unreadable: [] });
        // The database copy is sealed with the generated key.
        const [row] = await database.rows<{ key_version: string }>(sql`
          select k.key_version from api_keys k join onboarding_sessions s on s.id = k.session_id
          where s.user_id = 'user_modes_dev' and k.provider = 'gemini'`);
        expect(row?.key_version).toBe(generated.slice(0, generated.indexOf(":")));

        // A second save replaces in place; the generated key stays.
        const next = { gemini: "AQ.Second_Key-0123456789abcdefghijklm-_Q.ABCDEFGHIJKL", copilotkit: "ck_pub_second-Key_0123456789ABCD" };
        await expectStatus(await dev.fetch(request("POST", "/api/onboarding/api-keys", { body: next })), 200);
        expectParsesAs(envFile, {
          DEBUG: "true",
          GEMINI_API_KEY: next.gemini,
          PORT: "3000",
          KEY_ENCRYPTION_KEYS: generated,
          EXA_API_KEY: keys.exa,
          COPILOTKIT_API_KEY: next.copilotkit,
        });
        expectParsesAs(frontendFile, { REACT_APP_API_URL: "http://localhost:3000", REACT_APP_COPILOTKIT_API_KEY: next.copilotkit });
        expect(dev.logs.filter((l) => l.includes("[DEV MODE] Using .env file"))).toHaveLength(1);
        await userApiKeys(dev.runtime, "someone-else");
        expect(dev.logs.filter((l) => l.includes("[DEV MODE] Using .env file"))).toHaveLength(1);
      } finally {
        dev.cleanup();
        rmSync(dir, { recursive: true, force: true });
        await database.destroy();
      }
    });
  });
}
