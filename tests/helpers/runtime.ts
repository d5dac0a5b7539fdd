/**
 * Builds a runtime for in-process handler calls: its own config object (never a mutated
 * process.env), its own temp .env file, a capturing log sink and a Clerk test signer.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type RawEnv } from "../../lib/platform/env.js";
import { memorySink } from "../../lib/platform/log.js";
import { createRuntime, type Runtime } from "../../lib/platform/runtime.js";
import { createApp, type App } from "../../lib/app.js";
import { routes } from "../../lib/routes.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { createTestSigner, TEST_AZP, type TestSigner } from "../../testkit/clerk.js";
import { TEST_WEBHOOK_SECRET } from "../../testkit/webhooks.js";
import type { Database } from "../../db/client.js";

export interface TestRuntime {
  runtime: Runtime;
  dir: string;
  envFile: string;
  logs: string[];
  signer: TestSigner;
  /** The app over every route with this runtime. */
  app: App;
  /** Sends a request to the app (in-process). */
  fetch(request: Request): Promise<Response>;
  /** A valid session token for userId. */
  token(userId: string): string;
  cleanup(): void;
}

// Every runtime's temp folder is removed when the test worker exits, cleanup() or not.
const tempDirs = new Set<string>();
process.once("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

let sharedSigner: TestSigner | undefined;
/** One 2048-bit key per test file is plenty (generation takes ~100 ms). */
export function testSigner(): TestSigner {
  sharedSigner ??= createTestSigner();
  return sharedSigner;
}

/** HEALTH_TOKEN of every test runtime: send `operatorHealth` to read /api/health's details in production. */
export const TEST_HEALTH_TOKEN = "health-token-for-the-test-suite-0001";
export const operatorHealth: Readonly<Record<string, string>> = { "x-health-token": TEST_HEALTH_TOKEN };

export function makeRuntime(options: {
  database: Database;
  mode: "development" | "production";
  env?: RawEnv;
  signer?: TestSigner;
}): TestRuntime {
  const dir = mkdtempSync(join(tmpdir(), "byok-test-"));
  tempDirs.add(dir);
  const envFile = join(dir, ".env");
  const signer = options.signer ?? testSigner();
  const env: RawEnv = {
    ENV_FILE: envFile,
    KEY_ENCRYPTION_KEYS: generateKeyringEntry("test1"),
    CLERK_JWT_KEY: signer.publicPem,
    CLERK_AUTHORIZED_PARTIES: TEST_AZP,
    CLERK_WEBHOOK_SIGNING_SECRET: TEST_WEBHOOK_SECRET,
    LOG_LEVEL: "debug",
    HEALTH_TOKEN: TEST_HEALTH_TOKEN,
    ...(options.mode === "production" ? { DEPLOY_ENV: "production" } : {}),
    ...options.env,
  };
  const logs = memorySink();
  const runtime = createRuntime(loadConfig(env), { database: options.database, logSink: logs.sink });
  const app = createApp(routes, { runtime });
  return {
    runtime,
    app,
    dir,
    envFile,
    logs: logs.lines,
    signer,
    fetch: async (request) => app.fetch(request),
    token: (userId) => signer.sign({ sub: userId }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

/** `new Request(...)` for the handler under test. */
export function request(method: string, path: string, options: RequestOptions = {}): Request {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  return new Request(`http://localhost${path}`, { method, headers, body });
}

/** Reads a JSON response, failing with the whole body when the status is not the expected one. */
export async function expectStatus(response: Response, status: number): Promise<any> {
  const text = await response.text();
  if (response.status !== status) {
    throw new Error(`expected status ${status}, got ${response.status}: ${text}`);
  }
  return text ? JSON.parse(text) : undefined;
}

/** Sample well-formed keys, distinct per seed. */
export function sampleKeys(seed: number) {
  const hex = seed.toString(16).padStart(8, "0");
  return {
    // Shaped like the authorization keys AI Studio issues today: "AQ." and 50 more (docs/provider-facts.md).
    gemini: `AQ.Ab8R${"A".repeat(33)}${hex}${"x".repeat(5)}`,
    exa: `${hex}-1111-4222-8333-${seed.toString(16).padStart(12, "0")}`,
    copilotkit: `ck_pub_${"k".repeat(16)}${hex}`,
  };
}
