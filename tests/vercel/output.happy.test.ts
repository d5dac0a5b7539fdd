/**
 * Runs what `vercel build` produced (scripts/vercel-build.sh) the way the platform runs it,
 * and checks the key service end to end through the built functions:
 *
 *   npm run test:vercel    (builds, then runs this file with vitest.vercel.config.ts)
 *
 * CI runs it after `vercel build`; `npm test` does not (it needs the build first).
 *
 * - Every api/ file has a built function and vice versa; each
 *   `.vc-config.json` names a Node.js handler module that exists; vercel.json's settings
 *   (maxDuration, the /api/openapi.json rewrite, static output) made it into the output.
 * - Each `.func` folder is copied out of the repository first, so a module the build failed
 *   to trace cannot be found in the repository's node_modules by accident.
 * - Each function runs in its own plain `node` process (no tsx, a clean environment) under
 *   @vercel/node's own bridge for Web-standard handlers (`dist/dev-server.mjs`: it imports
 *   the handler module, finds the exported GET/POST/… functions, and serves them over
 *   HTTP, answering 405 for a method the module does not export).
 * - No function carries PGlite (it is `npm start`'s embedded default only) and each is at most
 *   4 MiB (vercel.json's excludeFiles).
 * - Development pass (no VERCEL, no DEPLOY_ENV): saves, lists and deletes keys on a migrated
 *   fresh PostgreSQL database (TEST_DATABASE_URL's server, else 127.0.0.1:5432) and a temporary ENV_FILE. Production pass (VERCEL=1, DEBUG=true to
 *   prove it changes nothing, CLERK_JWT_KEY from a fresh 2048-bit key, KEY_ENCRYPTION_KEYS):
 *   no token is 401, a signed token saves and lists keys, another user sees nothing and gets
 *   404, and no .env file is written.
 * - A module-load recorder in each process proves the key endpoints do not load the Gemini or
 *   Exa SDKs at import, and the child processes' output never contains a key or a token.
 *
 * Each check is a soft assertion named after what it checks, inside one test per pass.
 */
import { fork, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateDatabase, openDatabase } from "../../db/client.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { createTestSigner, TEST_AZP, type TestSigner } from "../../testkit/clerk.js";
import { createPostgresDatabase } from "../helpers/db.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const outputDir = join(root, ".vercel", "output");
const functionsDir = join(outputDir, "functions");
/** The SDKs only blog generation may load; key endpoints must not pay for them. */
const generationSdks = ["@google/generative-ai", "exa-js"] as const;
/** The operator's health token in the production pass (not a secret of anything real). */
const HEALTH_TOKEN = "health-token-for-the-vercel-check-0123456789";
const generationFunctions = new Set(["api/blog/generate", "api/gateway"]);
/** ALwrity's AI steps (an Exa read and a Gemini analysis each): vercel.json gives them 120 s. */
const alwrityAiFunctions = new Set([
  "api/onboarding/style-detection/complete",
  "api/onboarding/step3/discover-competitors",
  "api/onboarding/step4/generate-personas-async",
]);
/** Functions that may carry @clerk/backend: the webhook verifies deliveries with it. */
const clerkBackendFunctions = new Set(["api/webhooks/clerk", "api/openapi"]);
/** Functions whose routes are development-only (production answers 404). */
const developmentOnlyFunctions = new Set(["api/frontend-env/update"]);
/** Each function's files, in bytes (issue 13: was 19–21 MiB with PGlite inside). */
const MAX_FUNCTION_BYTES = 4 * 1048576;

// ---- reporting ------------------------------------------------------------------------------

const notes: string[] = [];
/** Every key and token this file makes; redacted from anything it prints. */
const secrets: string[] = [];

function redact(text: string): string {
  let out = text;
  for (const secret of secrets) if (secret) out = out.split(secret).join("[redacted]");
  return out;
}

/** One named check: a soft assertion (the pass goes on and reports every failure). */
function check(name: string, ok: boolean, detail?: () => string): boolean {
  expect.soft(ok, ok || !detail ? name : `${name}\n${redact(detail())}`).toBe(true);
  return ok;
}

/** Api files as Vercel names their functions: `api/onboarding/api-keys`. */
function apiFunctionNames(dir = join(root, "api")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return apiFunctionNames(path);
    return entry.name.endsWith(".ts") ? [relative(root, path).replace(/\\/g, "/").replace(/\.ts$/, "")] : [];
  });
}

// ---- the build output -----------------------------------------------------------------------

interface VcConfig {
  handler?: string;
  runtime?: string;
  launcherType?: string;
  maxDuration?: number;
}

interface BuiltFunction {
  /** Route name, e.g. `api/onboarding/api-keys`. */
  name: string;
  /** The `.func` folder as built. */
  builtDir: string;
  config: VcConfig;
  /** Top-level packages in the folder's node_modules (`@scope/name` or `name`), or in its bundle. */
  packages: string[];
  /** Set when scripts/bundle-functions.ts bundled the function. */
  manifest?: BundleManifest;
}

function findFuncDirs(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const path = join(dir, entry.name);
    if (entry.name.endsWith(".func")) found.push(path);
    else found.push(...findFuncDirs(path));
  }
  return found.sort();
}

/** What scripts/bundle-functions.ts wrote beside the output: packages per output file of a bundle. */
interface BundleManifest {
  entry: string;
  outputs: Record<string, { bytes: number; packages: Record<string, number>; imports: { path: string; kind: string }[] }>;
}

function readManifest(name: string): BundleManifest | undefined {
  const file = join(root, ".vercel", "bundles", `${name.replace(/\//g, "__")}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as BundleManifest) : undefined;
}

function listPackages(funcDir: string, manifest?: BundleManifest): string[] {
  if (manifest) {
    const names = new Set<string>();
    for (const output of Object.values(manifest.outputs))
      for (const pkg of Object.keys(output.packages)) if (pkg !== "(ours)") names.add(pkg);
    return [...names].sort();
  }
  const modules = join(funcDir, "node_modules");
  if (!existsSync(modules)) return [];
  const names: string[] = [];
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith(".")) continue;
    if (entry.startsWith("@")) for (const sub of readdirSync(join(modules, entry))) names.push(`${entry}/${sub}`);
    else names.push(entry);
  }
  return names.sort();
}

function dirSizeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirSizeBytes(path) : statSync(path).size;
  }
  return total;
}

function readBuiltFunctions(): BuiltFunction[] {
  return findFuncDirs(functionsDir).map((builtDir) => {
    const name = relative(functionsDir, builtDir)
      .replace(/\\/g, "/")
      .replace(/\.func$/, "");
    const configPath = join(builtDir, ".vc-config.json");
    const config = existsSync(configPath) ? (JSON.parse(readFileSync(configPath, "utf8")) as VcConfig) : {};
    const manifest = readManifest(name);
    return { name, builtDir, config, packages: listPackages(builtDir, manifest), ...(manifest ? { manifest } : {}) };
  });
}

function checkBuildOutput(functions: BuiltFunction[]): void {
  const built = new Set(functions.map((f) => f.name));
  const expected = new Set(apiFunctionNames());
  for (const name of expected) check(`${name}.ts was built as ${name}.func`, built.has(name));
  for (const name of built) check(`${name}.func is an api/ file`, expected.has(name));

  for (const fn of functions) {
    const { handler, runtime, launcherType } = fn.config;
    check(
      `${fn.name}: Node.js function (${runtime ?? "no runtime"}, ${launcherType ?? "no launcher"}) with handler ${handler ?? "?"}`,
      typeof handler === "string" &&
        existsSync(join(fn.builtDir, handler)) &&
        /^nodejs\d+\.x$/.test(runtime ?? "") &&
        launcherType === "Nodejs",
      () => JSON.stringify(fn.config, null, 2),
    );
    // Issue 22: what ships is one bundle per function, not the traced node_modules.
    const outputs = Object.keys(fn.manifest?.outputs ?? {});
    check(
      `${fn.name}: one ESM bundle (handler index.mjs, no node_modules, every output file and its source map present)`,
      fn.manifest !== undefined &&
        handler === "index.mjs" &&
        !existsSync(join(fn.builtDir, "node_modules")) &&
        outputs.every((o) => existsSync(join(fn.builtDir, o)) && existsSync(join(fn.builtDir, `${o}.map`))),
      () => `manifest: ${fn.manifest ? outputs.join(", ") : "missing (.vercel/bundles)"}; handler ${handler ?? "?"}`,
    );
    // Issue 22: session tokens are checked with WebCrypto (lib/platform/auth/rs256.ts); only the
    // Clerk webhook (and the OpenAPI function, whose route table names it) carries @clerk/backend.
    if (fn.manifest && !clerkBackendFunctions.has(fn.name)) {
      check(`${fn.name}: no @clerk/backend in the function`, !fn.packages.includes("@clerk/backend"), () => fn.packages.join(", "));
    }
    // Issue 13: embedded PGlite (16 MiB of WASM and data) is for `npm start` only; no deployed
    // function can use it, so none carries it, and each stays small (vercel.json excludeFiles).
    const pglite = fn.packages.filter((p) => p.startsWith("@electric-sql/"));
    check(`${fn.name}: no PGlite in the function`, pglite.length === 0, () => `packages: ${pglite.join(", ")}`);
    const bytes = dirSizeBytes(fn.builtDir);
    check(
      `${fn.name}: at most ${MAX_FUNCTION_BYTES / 1048576} MiB on disk`,
      bytes <= MAX_FUNCTION_BYTES,
      () => `${(bytes / 1048576).toFixed(2)} MiB`,
    );
    const wantDuration = generationFunctions.has(fn.name) ? 300 : alwrityAiFunctions.has(fn.name) ? 120 : 30;
    check(
      `${fn.name}: maxDuration ${wantDuration} from vercel.json`,
      fn.config.maxDuration === wantDuration,
      () => `maxDuration is ${String(fn.config.maxDuration)}`,
    );
  }

  const routing = JSON.parse(readFileSync(join(outputDir, "config.json"), "utf8")) as {
    routes?: { src?: string; dest?: string }[];
  };
  const rewrite = routing.routes?.find(
    (r) => r.dest === "/api/openapi" && r.src !== undefined && new RegExp(r.src).test("/api/openapi.json"),
  );
  check("rewrite /api/openapi.json -> /api/openapi is in config.json", rewrite !== undefined, () =>
    JSON.stringify(routing.routes, null, 2),
  );
  if (!built.has("api/openapi"))
    notes.push(
      "api/openapi.func is not built yet: /api/openapi.json rewrites to a function that does not exist (404) until api/openapi.ts lands",
    );

  const staticDir = join(outputDir, "static");
  const staticFiles = existsSync(staticDir) ? readdirSync(staticDir, { recursive: true }).map(String) : [];
  // public/ is robots.txt plus what scripts/build-web.ts wrote (vercel.json buildCommand): the pages and
  // content-hashed assets, each with .br/.gz twins. Nothing else may be served.
  const webAppFile = /^(robots\.txt|index\.html|docs|assets|docs\/index\.html|assets\/[a-z-]+-[0-9A-F]{8}\.(js|css))(\.br|\.gz)?$/;
  check(
    "static output holds only public/ (no source, no .env, no .data)",
    staticFiles.every((f) => webAppFile.test(f.replace(/\\/g, "/"))),
    () => `static files: ${staticFiles.join(", ")}`,
  );
  check(
    "the web app was built into the static output (index.html, docs/index.html, hashed assets)",
    ["index.html", "docs/index.html", "robots.txt"].every((f) => staticFiles.includes(f)) &&
      staticFiles.some((f) => /^assets\/app-[0-9A-F]{8}\.js$/.test(f)),
    () => `static files: ${staticFiles.join(", ")}`,
  );
  const tracedWebApp = [...built].filter((name) =>
    readdirSync(join(functionsDir, `${name}.func`), { recursive: true })
      .map(String)
      .some((f) => f.startsWith("public/") || f.startsWith("web/")),
  );
  check(
    "no function carries the web app (public/ or web/)",
    tracedWebApp.length === 0,
    () => `functions with it: ${tracedWebApp.join(", ")}`,
  );
  check(
    "vercel.json's security headers for the web app are in config.json",
    (routing.routes as { headers?: Record<string, string> }[]).some((r) =>
      r.headers?.["Content-Security-Policy"]?.startsWith("default-src 'self'"),
    ),
    () => JSON.stringify(routing.routes, null, 2),
  );
}

// ---- running a function the way the platform does --------------------------------------------

const require = createRequire(import.meta.url);
/** @vercel/node's bridge for Node.js functions (what `vercel dev` runs each function in). */
const vercelNodeBridge = join(dirname(require.resolve("@vercel/node/package.json")), "dist", "dev-server.mjs");

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

interface RunningFunction {
  call(method: string, path: string, init?: { headers?: Record<string, string>; body?: unknown }): Promise<Reply>;
  /** Everything the process loaded (ESM resolutions and CommonJS requires) so far. */
  loadedModules(): string[];
  /** What was loaded when the handler module had been imported, before any request. */
  loadedAtImport: string[];
  output(): string;
  stop(): Promise<void>;
}

/** Writes the module-load recorder that runs before anything else in a function's process. */
function writeRecorder(dir: string, logFile: string): string {
  const hooks = join(dir, "record-hooks.mjs");
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, nextResolve) {
  // The attempt counts too: a package missing from the folder still shows the code asked for it.
  appendFileSync(${JSON.stringify(logFile)}, "specifier " + specifier + "\\n");
  const result = await nextResolve(specifier, context);
  appendFileSync(${JSON.stringify(logFile)}, "import " + result.url + "\\n");
  return result;
}
`,
  );
  const preload = join(dir, "record-modules.mjs");
  writeFileSync(
    preload,
    `import Module, { register } from "node:module";
import { appendFileSync } from "node:fs";
register(${JSON.stringify(pathToFileURL(hooks).href)});
const load = Module._load;
Module._load = function (request, parent, isMain) {
  appendFileSync(${JSON.stringify(logFile)}, "require " + request + " from " + (parent?.filename ?? "?") + "\\n");
  return load.apply(this, arguments);
};
`,
  );
  return preload;
}

async function startFunction(fn: BuiltFunction, stagedDir: string, env: Record<string, string>, workDir: string): Promise<RunningFunction> {
  const logFile = join(workDir, `modules-${fn.name.replace(/\//g, "_")}-${randomBytes(3).toString("hex")}.log`);
  writeFileSync(logFile, "");
  const preload = writeRecorder(workDir, logFile);
  let output = "";
  const child: ChildProcess = fork(vercelNodeBridge, [], {
    cwd: stagedDir,
    // Plain node, as on the platform: no tsx loader inherited from this script.
    execArgv: ["--import", pathToFileURL(preload).href],
    env: {
      ...env,
      VERCEL_DEV_ENTRYPOINT: fn.config.handler ?? "",
      VERCEL_DEV_CONFIG: "{}",
      VERCEL_DEV_BUILD_ENV: "{}",
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  child.stdout?.on("data", (d) => (output += String(d)));
  child.stderr?.on("data", (d) => (output += String(d)));
  // A process that died (e.g. its handler failed to import) must fail its checks, not this script.
  child.on("error", (error) => (output += `\n[check-vercel-output] child process error: ${error.message}\n`));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));

  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`${fn.name} did not start within 60 s:\n${redact(output)}`)), 60_000);
    child.once("message", (message) => {
      clearTimeout(timer);
      resolvePort((message as { port: number }).port);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${fn.name} exited with ${String(code)} before serving:\n${redact(output)}`));
    });
  });
  const readLog = () => readFileSync(logFile, "utf8").split("\n").filter(Boolean);
  const loadedAtImport = readLog();

  return {
    loadedAtImport,
    loadedModules: readLog,
    output: () => output,
    async call(method, path, init = {}) {
      // Production runs behind Vercel's edge (its host name); development is `vercel dev` on the
      // developer's machine, addressed as localhost.
      const host = env.VERCEL ? "byok-functions.vercel.app" : "localhost:3000";
      const headers: Record<string, string> = { "x-forwarded-host": host, host, ...init.headers };
      let body: string | undefined;
      if (init.body !== undefined) {
        body = JSON.stringify(init.body);
        headers["content-type"] = "application/json";
      }
      const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
      const text = await response.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: response.status, headers: response.headers, text, json };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send("shutdown");
      else child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---- helpers for the passes -----------------------------------------------------------------

function fakeKeys() {
  const keys = {
    gemini: "AQ." + randomBytes(40).toString("base64url").slice(0, 50), // an AI Studio key's shape
    exa: randomUUID(),
    copilotkit: "ck_pub_" + randomBytes(24).toString("base64url").slice(0, 28),
  };
  secrets.push(keys.gemini, keys.exa, keys.copilotkit);
  return keys;
}

const show = (reply: Reply) => `status ${reply.status}\n${reply.text}`;

function expectStatus(label: string, reply: Reply, status: number): boolean {
  return check(`${label} -> ${status}`, reply.status === status, () => show(reply));
}

function expectProblem(label: string, reply: Reply, status: number, code: string): boolean {
  const body = reply.json as { code?: string; requestId?: string; status?: number } | undefined;
  return check(
    `${label} -> ${status} ${code} (problem+json with the request id)`,
    reply.status === status &&
      (reply.headers.get("content-type") ?? "").startsWith("application/problem+json") &&
      body?.code === code &&
      body.status === status &&
      typeof body.requestId === "string" &&
      body.requestId === reply.headers.get("x-request-id"),
    () => show(reply),
  );
}

function sameSet(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return Array.isArray(a) && a.length === b.length && b.every((x) => a.includes(x));
}

function envFileValue(file: string, name: string): string | undefined {
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m && m[1] === name) return m[2]!.replace(/^(["'])(.*)\1$/, "$2");
  }
  return undefined;
}

/**
 * A fresh, migrated PostgreSQL database for one pass (deployed functions carry no PGlite):
 * TEST_DATABASE_URL's server, or the local one. Dropped after the file.
 */
async function migratedPostgres(): Promise<string> {
  const { url, drop } = await createPostgresDatabase(postgresBaseUrl);
  drops.push(drop);
  const database = await openDatabase({ driver: "pg", url });
  await migrateDatabase(database);
  await database.close();
  return url;
}
const postgresBaseUrl = process.env.TEST_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
const drops: Array<() => Promise<void>> = [];

interface Pass {
  name: string;
  env: Record<string, string>;
  envFile: string;
  functions: BuiltFunction[];
  staged: Map<string, string>;
  workDir: string;
}

/** Runs one function for the duration of `body`, then stops it and checks its output. */
async function withFunction(pass: Pass, name: string, body: (fn: RunningFunction) => Promise<void>): Promise<void> {
  const fn = pass.functions.find((f) => f.name === name);
  if (!check(`${name}.func exists`, fn !== undefined)) return;
  let running: RunningFunction;
  try {
    running = await startFunction(fn!, pass.staged.get(name)!, pass.env, pass.workDir);
  } catch (error) {
    check(`${name}: starts under @vercel/node's bridge`, false, () => (error instanceof Error ? error.message : String(error)));
    return;
  }
  try {
    await body(running);
  } catch (error) {
    const tail = running.output().split("\n").slice(-40).join("\n");
    check(
      `${name}: answered every request`,
      false,
      () => `${error instanceof Error ? error.message : String(error)}\nprocess output (last lines):\n${tail}`,
    );
  } finally {
    await running.stop();
  }
  importChecks(pass.name, fn!, running);
  const leaked = secrets.filter((s) => running.output().includes(s));
  check(`${name}: its logs hold no key and no token`, leaked.length === 0, () => `${leaked.length} secret(s) found in the output`);
}

const loadedSdk = (modules: string[], sdk: string) =>
  modules.some(
    (m) =>
      m.includes(`/node_modules/${sdk}/`) ||
      m === `specifier ${sdk}` ||
      m.startsWith(`specifier ${sdk}/`) ||
      m.startsWith(`require ${sdk} `),
  );

const importReport: string[] = [];
/**
 * A bundled function loads its packages from its own output files: "import file:…/X.func/chunks/c.mjs"
 * also yields "/node_modules/<package>/ (bundled)" for each package inside that file (.vercel/bundles manifest).
 */
function withBundledPackages(fn: BuiltFunction, modules: string[]): string[] {
  if (!fn.manifest) return modules;
  const out = [...modules];
  for (const m of modules) {
    const at = m.indexOf(".func/");
    if (!m.startsWith("import file:") || at < 0) continue;
    const output = fn.manifest.outputs[decodeURIComponent(m.slice(at + ".func/".length))];
    for (const pkg of Object.keys(output?.packages ?? {})) out.push(`/node_modules/${pkg}/ (bundled)`);
  }
  return out;
}

function importChecks(passName: string, fn: BuiltFunction, running: RunningFunction): void {
  const atImport = withBundledPackages(fn, running.loadedAtImport);
  if (passName === "development") {
    const ownModules = new Set(atImport.filter((m) => m.startsWith("import file:") && m.includes(".func/")));
    const packagesAtImport = new Set<string>();
    for (const m of atImport) {
      const pkg = /\.func\/node_modules\/((?:@[^/]+\/)?[^/]+)\/|^\/node_modules\/((?:@[^/]+\/)?[^/]+)\/ \(bundled\)$/.exec(m);
      if (pkg) packagesAtImport.add(pkg[1] ?? pkg[2]!);
    }
    const bundled = generationSdks.filter((sdk) => fn.packages.includes(sdk));
    importReport.push(
      `${fn.name}: ${(dirSizeBytes(fn.builtDir) / 1048576).toFixed(1)} MiB, ${fn.packages.length} packages; generation SDKs in its folder: ${bundled.length ? bundled.join(", ") : "none"}`,
      `    at import: ${ownModules.size} ES modules of its own, from ${[...packagesAtImport].sort().join(", ") || "no package"}`,
    );
  }
  if (generationFunctions.has(fn.name)) return;
  for (const sdk of generationSdks) {
    check(`${fn.name}: ${sdk} not loaded at import`, !loadedSdk(atImport, sdk));
    check(
      `${fn.name}: ${sdk} not loaded by the ${passName} requests either`,
      !loadedSdk(withBundledPackages(fn, running.loadedModules()), sdk),
    );
  }
}

/** Every function answers a CORS preflight: it loads, and the bridge finds its handlers. */
async function smokeOthers(pass: Pass, covered: Set<string>): Promise<void> {
  for (const fn of pass.functions.filter((f) => !covered.has(f.name))) {
    await withFunction(pass, fn.name, async (running) => {
      // The gateway serves only paths under it (vercel.json rewrites /api/gateway/:path* to it).
      const reply = await running.call("OPTIONS", fn.name === "api/gateway" ? "/api/gateway/gemini/v1beta/models" : `/${fn.name}`);
      if (developmentOnlyFunctions.has(fn.name) && pass.name !== "development") {
        // A development-only route does not exist in production: 404, even to a preflight.
        check(`${fn.name}: OPTIONS -> 404 in ${pass.name}`, reply.status === 404, () => show(reply));
        return;
      }
      check(`${fn.name}: OPTIONS -> 204 with an Allow header`, reply.status === 204 && Boolean(reply.headers.get("allow")), () =>
        show(reply),
      );
      if (fn.name === "api/openapi") {
        // What /api/openapi.json rewrites to (config.json above): no auth in either mode.
        const doc = await running.call("GET", "/api/openapi");
        const body = doc.json as { openapi?: string; paths?: Record<string, unknown> } | undefined;
        check(
          "GET /api/openapi -> 200, an OpenAPI 3.1 document with the key endpoints",
          doc.status === 200 && (body?.openapi ?? "").startsWith("3.1") && body?.paths?.["/api/onboarding/api-keys"] !== undefined,
          () => show(doc),
        );
      }
    });
  }
}

// ---- the passes -----------------------------------------------------------------------------

async function developmentPass(pass: Pass): Promise<void> {
  const keys = fakeKeys();

  await withFunction(pass, "api/health", async (fn) => {
    const reply = await fn.call("GET", "/api/health");
    const body = reply.json as { mode?: string; database?: string; driver?: string } | undefined;
    check(
      "GET /api/health -> 200 development, database ok, pg",
      reply.status === 200 && body?.mode === "development" && body.database === "ok" && body.driver === "pg",
      () => show(reply),
    );
    check("responses carry x-request-id", /^req_/.test(reply.headers.get("x-request-id") ?? ""), () => [...reply.headers].join("\n"));
    expectStatus("POST /api/health (not exported: the platform's 405)", await fn.call("POST", "/api/health"), 405);
    // Development serves the developer's keys without sign-in: a request for another host name is refused.
    const foreign = { host: "byok-functions.vercel.app", "x-forwarded-host": "byok-functions.vercel.app" };
    expectProblem(
      "GET /api/health for a foreign host in development",
      await fn.call("GET", "/api/health", { headers: foreign }),
      421,
      "misdirected-request",
    );
  });

  await withFunction(pass, "api/onboarding/api-keys", async (fn) => {
    const path = "/api/onboarding/api-keys";
    const empty = await fn.call("GET", path);
    const emptyBody = empty.json as { userId?: string; keys?: unknown[]; missing?: string[] } | undefined;
    check(
      "GET api-keys before saving -> 200 local-dev, no keys, all missing",
      empty.status === 200 &&
        emptyBody?.userId === "local-dev" &&
        emptyBody.keys?.length === 0 &&
        sameSet(emptyBody.missing, ["gemini", "exa", "copilotkit"]),
      () => show(empty),
    );

    expectProblem("POST a malformed gemini key", await fn.call("POST", path, { body: { gemini: "not-a-key" } }), 400, "invalid-key-format");
    expectProblem(
      "POST an unknown field",
      await fn.call("POST", path, { body: { gemini: keys.gemini, openai: "x" } }),
      400,
      "invalid-request",
    );

    const saved = await fn.call("POST", path, { body: keys });
    const savedBody = saved.json as
      | { storage?: string[]; saved?: string[]; keys?: { provider: string; hint: string; value?: string }[] }
      | undefined;
    if (expectStatus("POST three keys", saved, 200)) {
      check("saved to the database and the .env file", sameSet(savedBody?.storage, ["database", "env"]), () => show(saved));
      check("all three providers saved", sameSet(savedBody?.saved, ["gemini", "exa", "copilotkit"]), () => show(saved));
      const view = new Map(savedBody?.keys?.map((k) => [k.provider, k]));
      check(
        "key views show hints only; copilotkit (publishable) returns its value",
        view.get("gemini")?.hint === "…" + keys.gemini.slice(-4) &&
          view.get("gemini")?.value === undefined &&
          view.get("exa")?.value === undefined &&
          view.get("copilotkit")?.value === keys.copilotkit,
        () => show(saved),
      );
      check("the response holds neither the gemini nor the exa key", !saved.text.includes(keys.gemini) && !saved.text.includes(keys.exa));
    }
    check(
      "the .env file (ENV_FILE) got GEMINI_API_KEY, EXA_API_KEY, COPILOTKIT_API_KEY",
      envFileValue(pass.envFile, "GEMINI_API_KEY") === keys.gemini &&
        envFileValue(pass.envFile, "EXA_API_KEY") === keys.exa &&
        envFileValue(pass.envFile, "COPILOTKIT_API_KEY") === keys.copilotkit,
    );
    check(
      "development generated KEY_ENCRYPTION_KEYS into the .env file",
      /^[A-Za-z0-9_-]+:/.test(envFileValue(pass.envFile, "KEY_ENCRYPTION_KEYS") ?? ""),
    );

    const listed = await fn.call("GET", path);
    const listedBody = listed.json as { keys?: unknown[]; missing?: string[] } | undefined;
    check(
      "GET api-keys -> 200 with three keys, none missing",
      listed.status === 200 && listedBody?.keys?.length === 3 && listedBody.missing?.length === 0,
      () => show(listed),
    );

    expectStatus("DELETE ?provider=exa", await fn.call("DELETE", `${path}?provider=exa`), 204);
    const after = await fn.call("GET", path);
    check("GET after delete -> exa missing", sameSet((after.json as { missing?: string[] } | undefined)?.missing, ["exa"]), () =>
      show(after),
    );
    check(
      "the .env file lost EXA_API_KEY and kept GEMINI_API_KEY",
      envFileValue(pass.envFile, "EXA_API_KEY") === undefined && envFileValue(pass.envFile, "GEMINI_API_KEY") === keys.gemini,
    );
    expectProblem("DELETE ?provider=exa again", await fn.call("DELETE", `${path}?provider=exa`), 404, "key-not-found");
    expectStatus("PUT api-keys (not exported: the platform's 405)", await fn.call("PUT", path, { body: {} }), 405);
  });

  await withFunction(pass, "api/onboarding/session", async (fn) => {
    const path = "/api/onboarding/session";
    const first = await fn.call("GET", path);
    const firstBody = first.json as { userId?: string; apiKeysComplete?: boolean } | undefined;
    check(
      "GET session -> 200 local-dev; keys incomplete after the exa delete (same database as api-keys)",
      first.status === 200 && firstBody?.userId === "local-dev" && firstBody.apiKeysComplete === false,
      () => show(first),
    );
    const put = await fn.call("PUT", path, { body: { currentStep: 3, progress: 50 } });
    const putBody = put.json as { currentStep?: number; progress?: number } | undefined;
    check("PUT session {3, 50} -> 200 with the new step", put.status === 200 && putBody?.currentStep === 3 && putBody.progress === 50, () =>
      show(put),
    );
    expectProblem(
      "PUT session with currentStep 9",
      await fn.call("PUT", path, { body: { currentStep: 9, progress: 50 } }),
      400,
      "invalid-request",
    );
  });

  await smokeOthers(pass, new Set(["api/health", "api/onboarding/api-keys", "api/onboarding/session"]));
}

async function productionPass(pass: Pass, signer: TestSigner): Promise<void> {
  const keys = fakeKeys();
  const userA = `user_ci_a_${randomBytes(4).toString("hex")}`;
  const userB = `user_ci_b_${randomBytes(4).toString("hex")}`;
  const tokenA = signer.sign({ sub: userA });
  const tokenB = signer.sign({ sub: userB });
  const forged = createTestSigner().sign({ sub: userA });
  secrets.push(tokenA, tokenB, forged);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  await withFunction(pass, "api/health", async (fn) => {
    // The operator's answer (x-health-token): strangers get status and mode only.
    const stranger = await fn.call("GET", "/api/health");
    check(
      "GET /api/health -> a stranger gets status and mode only",
      stranger.status === 200 && JSON.stringify(Object.keys((stranger.json ?? {}) as object)) === '["status","mode"]',
      () => show(stranger),
    );
    const reply = await fn.call("GET", "/api/health", { headers: { "x-health-token": HEALTH_TOKEN } });
    const body = reply.json as { mode?: string; warnings?: string[] } | undefined;
    check(
      "GET /api/health -> 200 production, with the DEBUG-ignored warning",
      reply.status === 200 && body?.mode === "production" && (body.warnings ?? []).some((w) => w.includes("DEBUG")),
      () => show(reply),
    );
  });

  await withFunction(pass, "api/onboarding/api-keys", async (fn) => {
    const path = "/api/onboarding/api-keys";
    const anonymous = await fn.call("GET", path);
    expectProblem("GET api-keys without a token", anonymous, 401, "unauthorized");
    check("401 carries WWW-Authenticate: Bearer", (anonymous.headers.get("www-authenticate") ?? "").startsWith("Bearer"), () =>
      show(anonymous),
    );
    expectProblem("POST keys without a token", await fn.call("POST", path, { body: keys }), 401, "unauthorized");
    expectProblem(
      "POST keys with a token signed by another key",
      await fn.call("POST", path, { body: keys, headers: bearer(forged) }),
      401,
      "unauthorized",
    );

    const saved = await fn.call("POST", path, { body: keys, headers: bearer(tokenA) });
    const savedBody = saved.json as { userId?: string; mode?: string; storage?: string[] } | undefined;
    check(
      "POST keys with user A's token -> 200, user A, database only",
      saved.status === 200 && savedBody?.userId === userA && savedBody.mode === "production" && sameSet(savedBody.storage, ["database"]),
      () => show(saved),
    );
    const listA = await fn.call("GET", path, { headers: { cookie: `__session=${tokenA}` } });
    const listABody = listA.json as { userId?: string; keys?: { provider: string }[]; missing?: string[] } | undefined;
    check(
      "GET api-keys as user A (__session cookie) -> three keys",
      listA.status === 200 && listABody?.userId === userA && listABody.keys?.length === 3 && listABody.missing?.length === 0,
      () => show(listA),
    );
    const listB = await fn.call("GET", path, { headers: bearer(tokenB) });
    const listBBody = listB.json as { userId?: string; keys?: unknown[] } | undefined;
    check(
      "GET api-keys as user B -> none of A's keys",
      listB.status === 200 && listBBody?.userId === userB && listBBody.keys?.length === 0,
      () => show(listB),
    );
    expectProblem(
      "DELETE gemini as user B (A's key is not B's business)",
      await fn.call("DELETE", `${path}?provider=gemini`, { headers: bearer(tokenB) }),
      404,
      "key-not-found",
    );
    const stillA = await fn.call("GET", path, { headers: bearer(tokenA) });
    check("user A still has three keys", (stillA.json as { keys?: unknown[] } | undefined)?.keys?.length === 3, () => show(stillA));
  });
  check("production wrote no .env file", !existsSync(pass.envFile));

  await withFunction(pass, "api/onboarding/session", async (fn) => {
    const path = "/api/onboarding/session";
    expectProblem("GET session without a token", await fn.call("GET", path), 401, "unauthorized");
    const reply = await fn.call("GET", path, { headers: bearer(tokenA) });
    const body = reply.json as { userId?: string; apiKeysComplete?: boolean } | undefined;
    check(
      "GET session as user A -> 200, keys complete",
      reply.status === 200 && body?.userId === userA && body.apiKeysComplete === true,
      () => show(reply),
    );
  });

  await smokeOthers(pass, new Set(["api/health", "api/onboarding/api-keys", "api/onboarding/session"]));
}

// ---- the passes -----------------------------------------------------------------------------

const haveOutput = existsSync(join(outputDir, "config.json")) && existsSync(functionsDir);

describe.skipIf(!haveOutput && !process.env.CI)("the built Vercel functions (.vercel/output)", () => {
  let functions: BuiltFunction[];
  let work: string;
  const staged = new Map<string, string>();

  beforeAll(() => {
    if (!haveOutput) throw new Error("no .vercel/output here; run `bash scripts/vercel-build.sh` first");
    functions = readBuiltFunctions();
    work = mkdtempSync(join(tmpdir(), "byok-vercel-check-"));
    // The platform unpacks each function on its own: copy each one out of the repository so
    // nothing resolves through the repository's node_modules.
    for (const fn of functions) {
      const dest = join(work, "functions", `${fn.name.replace(/\//g, "__")}.func`);
      cpSync(fn.builtDir, dest, { recursive: true });
      staged.set(fn.name, dest);
    }
  });
  afterAll(async () => {
    for (const drop of drops) await drop();
    if (work) rmSync(work, { recursive: true, force: true });
    if (importReport.length > 0)
      console.info(["Generation SDKs per function:", ...importReport, ...notes.map((n) => `note: ${n}`)].join("\n  "));
  });

  it("build output: one function per api/ file, settings from vercel.json, static output only public/", () => {
    checkBuildOutput(functions);
  });

  it("development pass: no VERCEL, no DEPLOY_ENV, PostgreSQL, .env writes", async () => {
    const devDir = join(work, "development");
    mkdirSync(devDir, { recursive: true });
    const devEnvFile = join(devDir, ".env");
    await developmentPass({
      name: "development",
      env: { DATABASE_URL: await migratedPostgres(), ENV_FILE: devEnvFile, LOG_LEVEL: "info" },
      envFile: devEnvFile,
      functions,
      staged,
      workDir: devDir,
    });
  }, 180_000);

  it("production pass: VERCEL=1 (and DEBUG=true), Clerk RS256 tokens, database only", async () => {
    const prodDir = join(work, "production");
    mkdirSync(prodDir, { recursive: true });
    const databaseUrl = await migratedPostgres();
    const signer = createTestSigner();
    const keyEncryptionKeys = generateKeyringEntry("ci1");
    secrets.push(keyEncryptionKeys.split(":")[1] ?? keyEncryptionKeys);
    const prodEnvFile = join(prodDir, ".env");
    await productionPass(
      {
        name: "production",
        env: {
          VERCEL: "1",
          DEBUG: "true",
          DATABASE_URL: databaseUrl,
          ENV_FILE: prodEnvFile,
          // As pasted into a dashboard that keeps newlines as the two characters `\n`.
          CLERK_JWT_KEY: signer.publicPem.trim().replace(/\n/g, "\\n"),
          CLERK_AUTHORIZED_PARTIES: TEST_AZP,
          KEY_ENCRYPTION_KEYS: keyEncryptionKeys,
          HEALTH_TOKEN,
          LOG_LEVEL: "info",
        },
        envFile: prodEnvFile,
        functions,
        staged,
        workDir: prodDir,
      },
      signer,
    );
  }, 180_000);
});
